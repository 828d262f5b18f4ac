"""Domain-adversarial training: the objective as a loss module and one two-domain training run.

Each step draws a labelled source batch and an unlabelled target batch, forwards them together
(BatchNorm statistics see both domains) and minimises

    CE(label net(x_s), y_s) + adversary(tap(x_s), tap(x_t), logits_s, logits_t)

where ``tap`` is the tensor at the GRL's placement and the adversary is the method's loss module
(``lab.train.adversarial``: DANN's BCE(D(GRL_λ(tap)), domain); CDAN's on GRL_λ(tap ⊗ softmax); CDAN+E's weighted by
the predictions' entropy). The GRL makes the discriminator D minimise the domain loss while everything before the tap
maximises it, scaled by λ (Ganin et al., 2016). Learning rate μ_p = μ₀ / (1 + 10p)^0.75 and
λ_p = λ_max (2 / (1 + exp(−10p)) − 1), p ∈ [0, 1] the training progress, as in the paper. ``fit`` of lab.train.loop
trains one domain, so this file has its own loop; it reuses the lab's batching, seeding, AMP and progress
conventions. Its settings are declared in ``lab.train.dann_config``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lab.device import autocast_for, resolve_device
from lab.errors import LabError
from lab.metrics.classify import accuracy, as_model_input
from lab.models.dann import DANNNet
from lab.models.dann_registry import PLACEMENTS, check_method, row_name
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.adversarial import build_adversary
from lab.train.dann_config import DANNTrainConfig
from lab.train.loop import batch_index
from lab.train.losses import random_affine


def dann_lambda(p: float, lambda_max: float = 1.0, schedule: str = "dann", gamma: float = 10.0) -> float:
    """λ_p = λ_max (2 / (1 + exp(−γp)) − 1) (0 at the start, → λ_max), or λ_max when constant."""
    return lambda_max if schedule == "constant" else lambda_max * (2.0 / (1.0 + math.exp(-gamma * p)) - 1.0)


def dann_lr(p: float, lr: float, schedule: str = "annealed", alpha: float = 10.0, beta: float = 0.75) -> float:
    """μ_p = μ₀ / (1 + αp)^β, or μ₀ when constant."""
    return lr if schedule == "constant" else lr / (1.0 + alpha * p) ** beta


class DANNObjective(nn.Module):
    """Source cross-entropy plus, with an adversary, the domain-adversarial loss at the net's tap.

    ``forward(net, x_s, y_s, x_t)`` returns (loss, {"cls": …, "domain": …, "domain_acc": …}).
    Without an adversary the target batch is forwarded only if ``sees_target`` (then BatchNorm
    sees both domains, and the run differs from DANN with λ = 0 by nothing at all).
    """

    def __init__(self, adversary: nn.Module | None = None, sees_target: bool = False):
        super().__init__()
        self.adversary = adversary
        self.sees_target = sees_target or adversary is not None

    def set_lambda(self, value: float) -> None:
        if self.adversary is not None:
            self.adversary.grl.coeff = value

    def forward(self, net: DANNNet, x_s, y_s, x_t):
        n = len(x_s)
        x = torch.cat([x_s, x_t]) if self.sees_target else x_s
        logits, _, tap = net.tapped(x)
        cls = F.cross_entropy(logits[:n].float(), y_s)
        if self.adversary is None:
            return cls, {"cls": cls.item(), "domain": float("nan"), "domain_acc": float("nan")}
        domain = self.adversary(tap[:n], tap[n:], logits[:n], logits[n:n + len(x_t)])
        return cls + domain, {"cls": cls.item(), "domain": domain.item(),
                              "domain_acc": self.adversary.domain_accuracy}


@dataclass
class DomainPair:
    """uint8 images [N, C, H, W] of both domains: labelled source, unlabelled target, both test sets."""
    source_x: torch.Tensor
    source_y: torch.Tensor
    target_x: torch.Tensor
    source_test_x: torch.Tensor
    source_test_y: torch.Tensor
    target_test_x: torch.Tensor
    target_test_y: torch.Tensor
    classes: list[str]
    source_name: str = "source"
    target_name: str = "target"
    renderings: dict = field(default_factory=dict)   # 'source train' … → the USPS rendering (lab.data.usps)
    notes: list = field(default_factory=list)        # the datasets' notes (fallback data, renderings)

    @property
    def channels(self) -> int:
        return self.source_x.shape[1]

    @property
    def size(self) -> int:
        return self.source_x.shape[-1]


@dataclass
class DANNRun:
    placement: str
    seed: int
    backbone: str
    weights: str                                   # which weights the backbone started from
    pretrained: bool
    source_acc: float                              # on the full test sets after training
    target_acc: float
    history: list[dict] = field(default_factory=list)   # one entry per epoch
    seconds: float = 0.0
    device: str = "cpu"
    features: dict = field(default_factory=dict, repr=False)  # source/target → features (backbone), seen, labels
    net: DANNNet | None = field(default=None, repr=False)
    method: str = "dann"                           # the adaptation method (lab.models.dann_registry.METHODS)
    pads: dict = field(default_factory=dict)       # proxy A-distance per view: backbone, seen, hidden, logits

    @property
    def row(self) -> str:
        """The table row this run belongs to: 'source only' or 'DANN @ stage3' …"""
        return row_name(self.placement, self.method)

    def summary(self) -> dict:
        keep = ("placement", "method", "seed", "backbone", "weights", "pretrained", "source_acc", "target_acc",
                "seconds", "device", "history", "pads")
        return {k: v for k, v in asdict(self).items() if k in keep}


@torch.no_grad()
def backbone_features(net: DANNNet, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Stage-1 features (the backbone's output) of uint8 images, on the CPU."""
    return views(net, images, batch_size=batch_size)["features"]


@torch.no_grad()
def views(net: DANNNet, images: torch.Tensor, adversary: nn.Module | None = None, taps: tuple[str, ...] = (),
          batch_size: int = 500) -> dict[str, torch.Tensor]:
    """What the networks see of uint8 images, on the CPU: 'features' (the backbone's output), 'seen' (the input of
    the adversary's discriminator, when there is one) and each tensor named in ``taps`` (hidden, logits, …)."""
    was, device = net.training, next(net.parameters()).device
    net.eval()
    spot = PLACEMENTS[net.placement]
    maps = tuple(t for t in (*taps, spot.tap) if t and t not in ("backbone", "hidden", "logits"))
    out: dict[str, list] = {}
    for i in range(0, len(images), batch_size):
        with autocast_for(device):
            named = net.named(as_model_input(images[i:i + batch_size], device), maps)
            found = {"features": named["backbone"], **{t: named[t] for t in taps}}
            if adversary is not None:
                found["seen"] = adversary.view(named[spot.tap], named["logits"])
        for key, value in found.items():
            out.setdefault(key, []).append(value.float().flatten(1).cpu())
    net.train(was)
    return {key: torch.cat(parts) for key, parts in out.items()}


def _subset(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int = 0):
    if limit is None or limit >= len(x):
        return x, y
    index = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit]
    return x[index], y[index]


def _augment(x: torch.Tensor, generator: torch.Generator, config: DANNTrainConfig) -> torch.Tensor:
    if config.augment:
        x = random_affine(x, generator, max_shift=0.1, max_degrees=10.0, max_scale=config.augment_scale)
    if config.flip:
        flip = torch.rand(len(x), generator=generator, device=generator.device).to(x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    return x


def _optimizer(net: DANNNet, disc: nn.Module | None, config: DANNTrainConfig) -> torch.optim.Optimizer:
    # a pretrained backbone learns 10× slower than the new layers (the usual fine-tuning rule)
    groups = [{"params": list(net.backbone_parameters()), "lr_mult": 0.1 if net.weights.pretrained else 1.0},
              {"params": net.head_parameters(), "lr_mult": 1.0}]
    if disc is not None:
        groups.append({"params": list(disc.parameters()), "lr_mult": 1.0})
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, nesterov=True)
    return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)


def train_dann(data: DomainPair, placement: str, backbone: str = "lenet", config: DANNTrainConfig | None = None,
               weights: str = "auto", progress: ProgressFn | None = None, on_epoch=None,
               method: str = "dann") -> DANNRun:
    """Train one label network (and, unless ``placement`` or ``method`` is 'none', the method's discriminator at
    the placement) on ``data``.

    Seeded by ``config.seed``: the same seed gives the same run, and the label network starts from
    the same weights for every placement and method. ``on_epoch(entry)`` sees each epoch's history entry.
    """
    config = config or DANNTrainConfig()
    config.validate()
    check_method(method)
    method = "none" if placement == "none" else method
    placement = "none" if method == "none" else placement
    device = resolve_device(config.device)
    seed_everything(config.seed)
    # the label network first, so a seeded one starts from the same weights whatever the placement and method
    net = DANNNet(backbone, placement, len(data.classes), data.channels, data.size, weights=weights)
    net.to(device).train()
    adversary = None if placement == "none" else build_adversary(method, net.tap_shape(), len(data.classes))
    if adversary is not None:
        adversary.to(device).train()
    objective = DANNObjective(adversary, sees_target=config.source_only_sees_target)
    opt = _optimizer(net, adversary, config)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not torch.cuda.is_bf16_supported())
    eval_s = _subset(data.source_test_x, data.source_test_y, config.eval_limit or None)  # 0: all
    eval_t = _subset(data.target_test_x, data.target_test_y, config.eval_limit or None)
    total, history = config.total_steps, []
    start = time.perf_counter()
    sums = {"cls": 0.0, "domain": 0.0, "domain_acc": 0.0}
    for step in range(total):
        p = step / total
        lam, lr = dann_lambda(p, config.lambda_max, config.lambda_schedule), dann_lr(p, config.lr, config.lr_schedule)
        objective.set_lambda(lam)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        i_s = batch_index(len(data.source_x), config.batch_size, step, config.seed)
        i_t = batch_index(len(data.target_x), config.batch_size, step, config.seed + 500_009)
        gen = torch.Generator(device).manual_seed(config.seed * 1_000_003 + step)
        x_s = _augment(as_model_input(data.source_x[i_s], device), gen, config)
        x_t = as_model_input(data.target_x[i_t], device)
        with autocast_for(device):
            loss, parts = objective(net, x_s, data.source_y[i_s].to(device), x_t)
        if not torch.isfinite(loss):
            raise LabError(f"The loss became {loss.item()} at step {step}: lower the learning rate or λ.")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        for k in sums:
            sums[k] += parts[k]
        if (step + 1) % config.steps_per_epoch == 0:
            k = config.steps_per_epoch
            entry = {"epoch": (step + 1) // k, "step": step + 1, "lambda": round(lam, 5), "lr": lr,
                     "cls_loss": sums["cls"] / k, "domain_loss": sums["domain"] / k,
                     "domain_acc": sums["domain_acc"] / k,
                     "source_acc": accuracy(net, *eval_s), "target_acc": accuracy(net, *eval_t),
                     "seconds": round(time.perf_counter() - start, 2)}
            history.append(entry)
            sums = dict.fromkeys(sums, 0.0)
            if on_epoch is not None:
                on_epoch(entry)
        if progress is not None:
            last = history[-1] if history else None
            desc = f"{row_name(placement, method)}, seed {config.seed}" + (
                f" (epoch {last['epoch']}: target {last['target_acc']:.3f})" if last else "")
            progress(step + 1, total, desc)
    net.eval()
    source_acc = accuracy(net, data.source_test_x, data.source_test_y)
    target_acc = accuracy(net, data.target_test_x, data.target_test_y)
    features = {}
    taps = ("hidden", "logits") if adversary is None else ()   # source only: its PAD at each placement too
    for domain, x, y in (("source", data.source_test_x, data.source_test_y),
                         ("target", data.target_test_x, data.target_test_y)):
        fx, fy = _subset(x, y, config.feature_points, seed=1)
        features[domain] = {**views(net, fx, adversary, taps), "labels": fy.clone()}
    return DANNRun(placement, config.seed, backbone, net.weights.note, net.weights.pretrained, source_acc,
                   target_acc, history, time.perf_counter() - start, str(device), features, net, method)
