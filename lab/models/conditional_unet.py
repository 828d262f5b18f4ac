"""The networks of class-conditional diffusion and of classifier guidance (diffusers ``ModelMixin`` models).

``ConditionalUNet`` wraps a diffusers ``UNet2DModel`` in one of three ways (``method``):

- ``label-embed`` — the label is embedded and added to the time embedding. One class: diffusers'
  own ``num_class_embeds = K + 1`` (index K is the null label that classifier-free guidance drops
  to); a ±1 multi-attribute vector: ``class_embed_type="identity"`` fed by a small MLP.
- ``condnorm`` — the GroupNorms inside the resnet blocks become conditional norms whose γ/β are
  shifted per class (conditional BatchNorm as in the seed, or a conditional GroupNorm).
- ``auxclf`` — the UNet itself ignores the label; a classifier head on its bottleneck is trained
  jointly. Sampling can only be steered through that head's gradient (self-guidance).

``NoisyClassifier`` is the downsampling half of the same UNet with a pooled linear head,
p(y | x_t, t), for classifier guidance. Their folders load and save through ``lab.models.conditional``;
``lab.models.warm_start`` starts them from an unconditional DDPM.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin, UNet2DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from lab.errors import LabError
from lab.models.labels import LabelSpec, per_sample_t, spec_of

METHODS = ("label-embed", "condnorm", "auxclf")
NORMS = ("batch", "group")
CLASS_EMBED_KEYS = ("class_embed_type", "num_class_embeds")


# --- UNet configuration helpers ----------------------------------------------------------------

def unet_kwargs(unet_or_config) -> dict:
    """The ``UNet2DModel`` constructor arguments of a model (or its config), without class embedding."""
    config = unet_or_config.config if hasattr(unet_or_config, "config") else unet_or_config
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()
            if not k.startswith("_") and k not in CLASS_EMBED_KEYS}


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
        for key in CLASS_EMBED_KEYS:
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
