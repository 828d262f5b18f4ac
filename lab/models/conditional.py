"""Class-conditional diffusion models and the noise-aware classifier of classifier guidance.

``ConditionalUNet`` wraps a diffusers ``UNet2DModel`` in one of three ways (``method``):

- ``label-embed`` — the label is embedded and added to the time embedding. One class: diffusers'
  own ``num_class_embeds = K + 1`` (index K is the null label that classifier-free guidance drops
  to); a ±1 multi-attribute vector: ``class_embed_type="identity"`` fed by a small MLP.
- ``condnorm`` — the GroupNorms inside the resnet blocks become conditional norms whose γ/β are
  shifted per class (conditional BatchNorm as in the seed, or a conditional GroupNorm).
- ``auxclf`` — the UNet itself ignores the label; a classifier head on its bottleneck is trained
  jointly. Sampling can only be steered through that head's gradient (self-guidance).

``NoisyClassifier`` is the downsampling half of the same UNet with a pooled linear head,
p(y | x_t, t), for classifier guidance. Both are diffusers ``ModelMixin``/``ConfigMixin``
models (config.json + safetensors); folders also hold ``scheduler/``, ``training.json`` and a card,
and load through ``load_conditional`` / ``load_noisy_classifier``.

Labels: ``LabelSpec`` says whether a model takes one class index (``class``) or a vector of
binary attributes coded +1 (present), −1 (absent), 0 (unspecified) (``attributes``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, DDPMScheduler, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from lab.errors import LabError

METHODS = ("label-embed", "condnorm", "auxclf")
NORMS = ("batch", "group")
LABEL_KINDS = ("class", "attributes")
_CLASS_EMBED_KEYS = ("class_embed_type", "num_class_embeds")


# --- labels ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabelSpec:
    """What a model is conditioned on: ``class`` (one of ``names``) or ``attributes`` (±1/0 vectors)."""

    kind: str
    names: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in LABEL_KINDS:
            raise LabError(f"Unknown label kind {self.kind!r}: use 'class' or 'attributes'.")
        if len(self.names) < 2 and self.kind == "class":
            raise LabError("A class-conditional model needs at least 2 classes.")

    @property
    def num(self) -> int:
        return len(self.names)

    def null(self, n: int, device=None) -> torch.Tensor:
        """The unconditional label: index K for classes, the all-zero (all unspecified) vector for attributes."""
        if self.kind == "class":
            return torch.full((n,), self.num, dtype=torch.long, device=device)
        return torch.zeros(n, self.num, device=device)

    def row_labels(self, rows: list[int] | None = None) -> torch.Tensor:
        """One label per grid row: class i, or attribute i active (+1) with the others unspecified (0)."""
        rows = list(range(self.num)) if rows is None else rows
        if self.kind == "class":
            return torch.tensor(rows, dtype=torch.long)
        return torch.eye(self.num)[rows]

    def index(self, name) -> int:
        """A row (class or attribute) from its name or its number; unknown ones are a clear error."""
        text = str(name).strip()
        if text in self.names:
            return self.names.index(text)
        lower = [n.lower() for n in self.names]
        if text.lower() in lower:
            return lower.index(text.lower())
        if text.lstrip("-").isdigit():
            i = int(text)
            if 0 <= i < self.num:
                return i
        what = "class" if self.kind == "class" else "attribute"
        raise LabError(f"Unknown {what} {text!r}: this model knows {', '.join(self.names)} "
                       f"(or their numbers 0…{self.num - 1}).")

    def parse_rows(self, text: str | None) -> list[int]:
        """'all' (or empty) → every row; otherwise names or numbers separated by commas."""
        if text is None or not str(text).strip() or str(text).strip().lower() == "all":
            return list(range(self.num))
        rows = [self.index(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
        if not rows:
            raise LabError("Give at least one class, or 'all'.")
        return list(dict.fromkeys(rows))

    def check(self, labels: torch.Tensor, allow_null: bool = True) -> torch.Tensor:
        """Validate a batch of labels: class indices in [0, K] (K = null), or vectors of −1/0/+1."""
        labels = torch.as_tensor(labels)
        if self.kind == "class":
            if labels.ndim != 1 or labels.dtype.is_floating_point:
                raise LabError(f"Class labels must be a 1-D tensor of integers, not {tuple(labels.shape)} "
                               f"{labels.dtype}.")
            top = self.num if allow_null else self.num - 1
            if len(labels) and (labels.min() < 0 or labels.max() > top):
                raise LabError(f"Class labels must be between 0 and {self.num - 1}"
                               + (f" ({self.num} = the null label)" if allow_null else "")
                               + f"; got {labels.min().item()} … {labels.max().item()}.")
            return labels.long()
        if labels.ndim != 2 or labels.shape[1] != self.num:
            raise LabError(f"Attribute labels must have shape [N, {self.num}] ({', '.join(self.names)}), "
                           f"not {tuple(labels.shape)}.")
        labels = labels.float()
        if not torch.isin(labels, torch.tensor([-1.0, 0.0, 1.0], device=labels.device)).all():
            raise LabError("Attribute labels must be +1 (present), −1 (absent) or 0 (unspecified).")
        return labels

    def drop(self, labels: torch.Tensor, p: float, generator: torch.Generator,
             p_attribute: float = 0.0) -> torch.Tensor:
        """Classifier-free-guidance label dropout: each label becomes null with probability ``p``;
        for attribute vectors each attribute is also unspecified (0) with probability ``p_attribute``."""
        n = labels.shape[0]
        if p <= 0 and p_attribute <= 0:
            return labels
        u = torch.rand(n, generator=generator, device=generator.device).to(labels.device)
        if self.kind == "class":
            return torch.where(u < p, torch.full_like(labels, self.num), labels)
        keep = (u >= p).float().unsqueeze(1)
        if p_attribute > 0:
            v = torch.rand(labels.shape, generator=generator, device=generator.device).to(labels.device)
            keep = keep * (v >= p_attribute).float()
        return labels * keep

    def log_prob(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """log p(y | x) per sample: log-softmax of the class, or Σ over specified attributes of log σ(±logit)."""
        if self.kind == "class":
            return logits.log_softmax(1).gather(1, labels.long().view(-1, 1)).squeeze(1)
        return (labels.abs() * F.logsigmoid(labels * logits)).sum(1)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (classes) or binary cross-entropy over the specified attributes."""
        if self.kind == "class":
            return F.cross_entropy(logits, labels.long())
        mask = labels.abs()
        bce = F.binary_cross_entropy_with_logits(logits, (labels + 1) / 2, reduction="none")
        return (bce * mask).sum() / mask.sum().clamp_min(1)

    def correct(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per sample: does the classifier agree with every specified part of the label?"""
        if self.kind == "class":
            return logits.argmax(1) == labels.long()
        agree = (torch.sign(logits) == labels) | (labels == 0)
        return agree.all(1)

    def as_config(self) -> dict:
        return {"label_kind": self.kind, "label_names": list(self.names)}


def spec_of(model) -> LabelSpec:
    return LabelSpec(model.config.label_kind, tuple(model.config.label_names))


# --- UNet configuration helpers ----------------------------------------------------------------

def unet_kwargs(unet_or_config) -> dict:
    """The ``UNet2DModel`` constructor arguments of a model (or its config), without class embedding."""
    config = unet_or_config.config if hasattr(unet_or_config, "config") else unet_or_config
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()
            if not k.startswith("_") and k not in _CLASS_EMBED_KEYS}


def unet_config_for(size: int, channels: int) -> dict:
    """The lab's UNet preset for this size; a preset of the same size with its channels changed
    serves other channel counts (e.g. 32 px RGB faces)."""
    from lab.models.unet import PRESETS, build_unet

    for name, cfg in PRESETS.items():
        if cfg["sample_size"] == size and cfg["in_channels"] == channels:
            return unet_kwargs(build_unet(name).config)
    for name, cfg in PRESETS.items():
        if cfg["sample_size"] == size:
            return unet_kwargs(build_unet(name, in_channels=channels, out_channels=channels).config)
    sizes = sorted({c["sample_size"] for c in PRESETS.values()})
    raise LabError(f"No UNet preset for {size} px: train at one of {', '.join(map(str, sizes))} px (--size).")


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ScaledEmbedding(nn.Embedding):
    """An embedding table times ``gain``, zero at the start. Under Adam the product moves ``gain`` times
    faster than a plain table (a learning-rate multiplier by reparametrisation, as StyleGAN's equalized
    learning rate), so new conditioning layers catch up with warm-started weights within a few thousand steps."""

    def __init__(self, num: int, dim: int, gain: float = 1.0):
        super().__init__(num, dim)
        self.gain = gain
        nn.init.zeros_(self.weight)

    def forward(self, x):
        return super().forward(x) * self.gain


class ScaledLinear(nn.Linear):
    """``ScaledEmbedding``'s counterpart for ±1 attribute vectors."""

    def __init__(self, fan_in: int, fan_out: int, gain: float = 1.0, bias: bool = False):
        super().__init__(fan_in, fan_out, bias=bias)
        self.gain = gain
        _zero(self)

    def forward(self, x):
        return super().forward(x) * self.gain


def _label_layer(spec: LabelSpec, width: int, gain: float) -> nn.Module:
    """Label → ``width`` numbers, zero at first: a table with a null row (classes) or a linear map of the ±1 vector."""
    return ScaledEmbedding(spec.num + 1, width, gain) if spec.kind == "class" else ScaledLinear(spec.num, width, gain)


# --- conditional normalization -----------------------------------------------------------------

class ConditionalNorm(nn.Module):
    """Normalize without affine, then scale and shift per label: (γ + Δγ_y) x̂ + (β + Δβ_y).

    ``kind="batch"`` is conditional BatchNorm (de Vries et al. 2017; the seed's choice),
    ``kind="group"`` a conditional GroupNorm. γ, β are named ``weight``/``bias`` like the
    GroupNorm they replace (so an unconditional UNet's weights load into them); the per-label
    Δγ, Δβ start at zero, so a warm-started model starts as the unconditional one. The labels
    are set on the module by ``ConditionalUNet.forward`` just before the UNet runs.
    """

    def __init__(self, channels: int, kind: str, groups: int, eps: float, spec: LabelSpec, gain: float = 1.0):
        super().__init__()
        if kind not in NORMS:
            raise LabError(f"Unknown conditional norm {kind!r}: use 'batch' or 'group'.")
        self.kind, self.groups, self.eps = kind, groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.bn = nn.BatchNorm2d(channels, eps=eps, affine=False) if kind == "batch" else None
        self.delta = _label_layer(spec, 2 * channels, gain)
        self.labels: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            raise RuntimeError("ConditionalNorm called without labels: call the ConditionalUNet, not its .unet.")
        h = self.bn(x) if self.bn is not None else F.group_norm(x, self.groups, eps=self.eps)
        dg, db = self.delta(self.labels).to(h.dtype).chunk(2, dim=1)
        return h * (self.weight + dg)[:, :, None, None] + (self.bias + db)[:, :, None, None]


# --- the conditional UNet ----------------------------------------------------------------------

class ConditionalUNet(ModelMixin, ConfigMixin):
    """ε_θ(x_t, t, y) for the label-embedding and conditional-norm methods; ε_θ(x_t, t) plus a
    classifier head p_φ(y | x_t, t) for the auxiliary-classifier method. Call it as
    ``model(x, t, labels)``; ``labels=None`` is the null label (classes: index K)."""

    @register_to_config
    def __init__(self, unet_config: dict | None = None, method: str = "label-embed", label_kind: str = "class",
                 label_names: list[str] | tuple[str, ...] = tuple(str(i) for i in range(10)),
                 norm: str = "batch", head_hidden: int = 128, cond_gain: float = 10.0):
        super().__init__()
        if method not in METHODS:
            raise LabError(f"Unknown conditioning method {method!r}: use one of {', '.join(METHODS)}.")
        spec = LabelSpec(label_kind, tuple(label_names))
        kwargs = dict(unet_config or unet_config_for(28, 1))
        for key in _CLASS_EMBED_KEYS:
            kwargs.pop(key, None)
        self.label_mlp = None
        if method == "label-embed":
            if spec.kind == "class":
                kwargs["num_class_embeds"] = spec.num + 1
            else:
                kwargs["class_embed_type"] = "identity"
        self.unet = UNet2DModel(**kwargs)
        temb = self.unet.time_embedding.linear_2.out_features
        if method == "label-embed":
            if spec.kind == "class":  # diffusers' nn.Embedding(K + 1, temb), as a zero-initialised ScaledEmbedding
                self.unet.class_embedding = ScaledEmbedding(spec.num + 1, temb, cond_gain)
            else:
                self.label_mlp = nn.Sequential(nn.Linear(spec.num, temb), nn.SiLU(),
                                               ScaledLinear(temb, temb, cond_gain, bias=True))
        self.cond_norms: list[ConditionalNorm] = []  # a plain list: they are registered inside self.unet
        if method == "condnorm":
            for block in self.unet.modules():
                if isinstance(block, ResnetBlock2D):
                    for name in ("norm1", "norm2"):
                        old = getattr(block, name)
                        new = ConditionalNorm(old.num_channels, norm, old.num_groups, old.eps, spec, cond_gain)
                        setattr(block, name, new)
                        self.cond_norms.append(new)
        self.aux_head = None
        self._bottleneck: torch.Tensor | None = None
        if method == "auxclf":
            if self.unet.mid_block is None:
                raise LabError("The auxiliary classifier reads the UNet's mid block: use a UNet with one.")
            channels = self.unet.config.block_out_channels[-1]
            self.aux_head = nn.Sequential(
                nn.GroupNorm(self.unet.config.norm_num_groups, channels), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
                nn.Flatten(), nn.Linear(channels, head_hidden), nn.SiLU(), nn.Linear(head_hidden, spec.num))
            self.unet.mid_block.register_forward_hook(self._keep_bottleneck)

    def _keep_bottleneck(self, module, inputs, output) -> None:
        self._bottleneck = output

    @property
    def spec(self) -> LabelSpec:
        return spec_of(self)

    @property
    def label_free(self) -> bool:
        """The denoiser ignores labels (auxiliary-classifier method)."""
        return self.config.method == "auxclf"

    def forward(self, sample: torch.Tensor, timestep, class_labels: torch.Tensor | None = None,
                return_dict: bool = True, return_logits: bool = False):
        """ε for (x_t, t, labels); with ``return_logits`` (auxclf) also the head's logits: (ε, logits)."""
        spec = self.spec
        n = sample.shape[0]
        labels = spec.null(n, sample.device) if class_labels is None else class_labels.to(sample.device)
        if self.config.method == "label-embed":
            extra = self.label_mlp(labels.to(self.dtype)) if self.label_mlp is not None else labels.long()
            out = self.unet(sample, timestep, class_labels=extra).sample
        elif self.config.method == "condnorm":
            for norm in self.cond_norms:
                norm.labels = labels if spec.kind == "class" else labels.to(self.dtype)
            try:
                out = self.unet(sample, timestep).sample
            finally:
                for norm in self.cond_norms:
                    norm.labels = None
        else:
            out = self.unet(sample, timestep).sample
            if return_logits:
                logits = self.aux_head(self._bottleneck)
                self._bottleneck = None
                return out, logits
        if return_logits:
            raise LabError(f"A {self.config.method} model has no classifier head (only auxclf models do).")
        return _Output(out) if return_dict else (out,)


@dataclass
class _Output:
    sample: torch.Tensor


# --- the noise-aware classifier ------------------------------------------------------------------

class NoisyClassifier(ModelMixin, ConfigMixin):
    """p_φ(y | x_t, t): the encoder (conv_in, time embedding, down blocks, mid block) of a diffusers
    UNet2DModel, then GroupNorm → SiLU → global average pool → MLP. Its module names equal the
    UNet's, so an unconditional DDPM's encoder can warm-start it."""

    @register_to_config
    def __init__(self, unet_config: dict | None = None, label_kind: str = "class",
                 label_names: list[str] | tuple[str, ...] = tuple(str(i) for i in range(10)), hidden: int = 128):
        super().__init__()
        spec = LabelSpec(label_kind, tuple(label_names))
        full = UNet2DModel(**dict(unet_config or unet_config_for(28, 1)))
        if full.mid_block is None:
            raise LabError("The noisy classifier needs a UNet configuration with a mid block.")
        self.conv_in, self.time_proj, self.time_embedding = full.conv_in, full.time_proj, full.time_embedding
        self.down_blocks, self.mid_block = full.down_blocks, full.mid_block
        channels = full.config.block_out_channels[-1]
        self.head = nn.Sequential(nn.GroupNorm(full.config.norm_num_groups, channels), nn.SiLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, hidden), nn.SiLU(),
                                  nn.Linear(hidden, spec.num))

    @property
    def spec(self) -> LabelSpec:
        return spec_of(self)

    def forward(self, x: torch.Tensor, timestep) -> torch.Tensor:
        t = per_sample_t(timestep, x)
        emb = self.time_embedding(self.time_proj(t).to(x.dtype))
        h = self.conv_in(x)
        for block in self.down_blocks:
            h, _ = block(hidden_states=h, temb=emb)
        return self.head(self.mid_block(h, emb))


def per_sample_t(t, x: torch.Tensor) -> torch.Tensor:
    """A timestep (number, 0-d or [N] tensor) as a [N] tensor on x's device."""
    if not torch.is_tensor(t):
        t = torch.tensor(float(t))
    t = t.to(x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


# --- warm start, save and load -----------------------------------------------------------------

def copy_matching(target: nn.Module, source: dict[str, torch.Tensor], prefix: str = "") -> tuple[int, list[str]]:
    """Copy every tensor of ``source`` whose name (with ``prefix``) and shape match into ``target``.
    Returns (tensors copied, names of ``target`` left as initialised)."""
    own = target.state_dict()
    copied = set()
    with torch.no_grad():
        for name, value in source.items():
            key = prefix + name
            if key in own and own[key].shape == value.shape:
                own[key].copy_(value)
                copied.add(key)
    return len(copied), [k for k in own if k not in copied]


def warm_start(model: nn.Module, base_unet: UNet2DModel) -> dict:
    """Initialise from an unconditional DDPM: every matching weight copied; new conditioning layers
    keep their zero (or identity) initialisation. Returns a summary for the model card."""
    prefix = "unet." if isinstance(model, ConditionalUNet) else ""
    base = unet_kwargs(base_unet)
    mine = dict(model.config.unet_config or {})
    for key in _CLASS_EMBED_KEYS:
        mine.pop(key, None)
    keep = ("sample_size", "in_channels", "block_out_channels", "down_block_types", "layers_per_block")
    if any(_norm(base.get(k)) != _norm(mine.get(k)) for k in keep):
        raise LabError("The model to warm-start from has a different UNet layout "
                       f"({', '.join(f'{k}={base.get(k)}' for k in keep)}); train without --init-from, "
                       "or from a DDPM of the same size and channels.")
    copied, fresh = copy_matching(model, base_unet.state_dict(), prefix)
    return {"copied_tensors": copied, "new_tensors": len(fresh),
            "new_tensor_names": sorted({k.rsplit(".", 1)[0] for k in fresh})[:12]}


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


@dataclass
class ConditionalDiffusion:
    model: ConditionalUNet
    scheduler: DDPMScheduler
    source: str
    info: dict = field(default_factory=dict)

    @property
    def spec(self) -> LabelSpec:
        return self.model.spec

    @property
    def size(self) -> int:
        return int(self.model.unet.config.sample_size)

    @property
    def channels(self) -> int:
        return int(self.model.unet.config.in_channels)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def has_null(self) -> bool:
        """Trained with label dropout, so ε(x, t, ∅) is meaningful (classifier-free guidance)."""
        return float(self.info.get("p_uncond", 0) or 0) > 0 or self.model.label_free


@dataclass
class NoisyClassifierModel:
    net: NoisyClassifier
    scheduler: DDPMScheduler
    source: str
    info: dict = field(default_factory=dict)

    @property
    def spec(self) -> LabelSpec:
        return self.net.spec


def _scheduler(folder: Path) -> DDPMScheduler:
    from lab.diffusion.schedules import make_ddpm_scheduler

    if (folder / "scheduler" / "scheduler_config.json").exists():
        return DDPMScheduler.from_pretrained(folder / "scheduler")
    return make_ddpm_scheduler()


def _load(name_or_path, cls, what: str, hint: str):
    from lab.models.store import read_info, resolve_model_path

    where = resolve_model_path(name_or_path)
    if not isinstance(where, Path):
        raise LabError(f"{what} are loaded from local folders; {where!r} is not one.")
    config = where / "config.json"
    try:
        found = json.loads(config.read_text()).get("_class_name") if config.exists() else None
    except (OSError, json.JSONDecodeError) as err:
        raise LabError(f"{config} is not readable JSON ({err}); the folder may be corrupt: {hint}") from err
    if found != cls.__name__:
        kind = ("a diffusers pipeline" if (where / "model_index.json").exists()
                else f"a {found}" if found else "no model (no config.json)")
        raise LabError(f"{where} is not a {cls.__name__} folder (it holds {kind}). {hint}")
    try:
        model = cls.from_pretrained(where, low_cpu_mem_usage=False)
        scheduler = _scheduler(where)
    except Exception as err:  # truncated safetensors, missing tensors ...
        from lab.models.store import load_failure

        raise load_failure(where, f"{where} could not be loaded as a {cls.__name__} ({type(err).__name__}: {err}). "
                                  f"The folder may be incomplete or corrupt: {hint}") from err
    return model.eval(), scheduler, str(where), read_info(where)


def load_conditional(name_or_path, device=None) -> ConditionalDiffusion:
    """A class-conditional DDPM folder written by ``python -m lab train label-embed|cfg|condnorm|auxclf``."""
    model, scheduler, source, info = _load(
        name_or_path, ConditionalUNet, "Conditional models",
        "train one with `python -m lab train cfg --init-from ddpm-mnist --out checkpoints/cfg-mnist`.")
    if device is not None:
        model.to(device)
    return ConditionalDiffusion(model, scheduler, source, info)


def load_noisy_classifier(name_or_path, device=None) -> NoisyClassifierModel:
    """A noise-aware classifier folder written by ``python -m lab train noisy-classifier``."""
    net, scheduler, source, info = _load(
        name_or_path, NoisyClassifier, "Noisy classifiers",
        "train one with `python -m lab train noisy-classifier --init-from ddpm-mnist "
        "--out checkpoints/noisy-classifier-mnist`.")
    if device is not None:
        net.to(device)
    return NoisyClassifierModel(net, scheduler, source, info)


def save_model(folder: Path, model: ModelMixin, scheduler: DDPMScheduler, info: dict) -> None:
    """config.json + safetensors, scheduler/, training.json and a model card."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    scheduler.save_pretrained(folder / "scheduler")
    write_card(folder, info)


def write_card(folder: Path, info: dict) -> None:
    from lab.models.store import model_card, read_info, write_info

    write_info(folder, info)
    info = read_info(folder)
    card = model_card(folder.name, info)
    head, _, _ = card.partition("## Use")
    (folder / "README.md").write_text(head + _conditional_card(folder.name, info))


def update_card_metrics(folder: Path, metrics: dict) -> None:
    from lab.models.store import read_info

    info = read_info(folder)
    info.setdefault("metrics", {}).update(metrics)
    info.pop("created", None)
    info.pop("versions", None)
    write_card(folder, info)


def _conditional_card(name: str, info: dict) -> str:
    labels = info.get("labels", {})
    lines = ["## Conditioning", "", f"- method: **{info.get('method', info.get('kind'))}** — "
             f"{info.get('method_note', '')}",
             f"- labels: {labels.get('kind', '?')} ({', '.join(labels.get('names', []))})"]
    if info.get("p_uncond") is not None:
        lines.append(f"- label dropout for classifier-free guidance: p = {info['p_uncond']}")
    if info.get("init_from"):
        lines.append(f"- warm-started from `{info['init_from']}` ({info.get('warm_start', {}).get('copied_tensors', '?')}"
                     " tensors copied; the new conditioning layers started at zero, i.e. as the unconditional "
                     f"model), then trained {info.get('steps', '?')} steps")
    lines += ["", "## Use", "", "```python"]
    if info.get("kind") == "noisy-classifier":
        lines += ["from lab.models.conditional import load_noisy_classifier",
                  f'clf = load_noisy_classifier("{name}")  # logits = clf.net(x_t, t)',
                  "# classifier guidance: lab.diffusion.guidance.classifier_guided(eps_model, clf.net, labels, s, "
                  "clf.scheduler)"]
    else:
        lines += ["from lab.models.conditional import load_conditional",
                  f'm = load_conditional("{name}")', "eps = m.model(x_t, t, labels).sample",
                  "# sampling with guidance: lab.experiments.conditional (or python -m lab conditional --help)"]
    lines += ["```", ""]
    return "\n".join(lines)
