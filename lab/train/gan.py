"""``python -m lab train gan``: the DCGAN baseline (lab.models.gan), with its own loop because ``fit()`` trains one
network on one loss, and a GAN alternates two networks with two optimizers. It runs in one process (one device):
under data parallelism BatchNorm's batch statistics would change with the process count.

Non-saturating loss (Goodfellow et al. 2014): D minimises BCE(D(x), 1) + BCE(D(G(z)), 0), G minimises
BCE(D(G(z)), 1); Adam(lr, β₁ = 0.5, β₂ = 0.999) for both, as DCGAN. Batches and z are drawn from (seed, step),
checkpoints hold both networks and both optimizers, so a resumed run continues exactly. With ``--ema`` the
generator's EMA (diffusers' ``EMAModel``) is what is saved and sampled (off by default: BatchNorm's running
statistics belong to the raw weights).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from lab.device import autocast_for, resolve_device
from lab.errors import Cancelled, LabError
from lab.models.gan import Discriminator, Generator
from lab.models.store import stored
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.config import TrainConfig
from lab.train.loop import FitResult, batch_index, evaluate_on_ema
from lab.train.shard import share

log = logging.getLogger(__name__)


def discriminator_loss(d, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real_logits, fake_logits = d(real), d(fake.detach())
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(d, fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss −log D(G(z))."""
    logits = d(fake)
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def gan_step(g, d, opt_g, opt_d, real: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    """One D update then one G update; returns (D loss, G loss)."""
    fake = g(z)
    loss_d = discriminator_loss(d, real, fake)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    loss_g = generator_loss(d, fake)
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def train_gan_loop(g: Generator, d: Discriminator, images: torch.Tensor, config: TrainConfig,
                   checkpoint_dir: Path | None = None, resume: bool = True, progress: ProgressFn | None = None,
                   evaluate=None, evaluate_every: int = 0) -> FitResult:
    """Train (g, d) on [-1, 1] ``images``; leaves the generator's EMA weights in ``g``. ``evaluate(g)`` as in
    ``fit()`` (e.g. FID as training progresses), on the EMA weights."""
    config.validate()
    if share()[1] > 1:  # launched by accelerate / torchrun with several processes
        raise LabError("`train gan` trains in one process: BatchNorm's batch statistics would differ per process "
                       "under data parallelism. Run it without `accelerate launch --num_processes N`.")
    device = resolve_device(config.device)
    g.to(device).train()
    d.to(device).train()
    opt_g = torch.optim.Adam(g.parameters(), lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.lr, betas=(0.5, 0.999))
    ema = EMAModel(g.parameters(), decay=config.ema_decay) if config.ema_decay else None
    state = {"step": 0, "wall_seconds": 0.0, "losses": [], "evaluations": []}
    if checkpoint_dir is not None and resume and (checkpoint_dir / "state.json").exists():
        state = _load(checkpoint_dir, g, d, opt_g, opt_d, ema, device)
    start, step = time.perf_counter() - state["wall_seconds"], state["step"]
    sums, count = [0.0, 0.0], 0
    try:
        while step < config.steps:
            real = images[batch_index(len(images), config.batch_size, step, config.seed)].to(device)
            gen = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
            z = torch.randn(len(real), g.config.latent_dim, generator=gen).to(device)
            with autocast_for(device, config.cpu_bf16):
                ld, lg = gan_step(g, d, opt_g, opt_d, real, z)
            if not (ld == ld and lg == lg):
                raise LabError(f"The GAN losses became NaN at step {step}: lower the learning rate.")
            if ema is not None:
                ema.step(g.parameters())
            step += 1
            sums, count = [sums[0] + ld, sums[1] + lg], count + 1
            if step % config.log_every == 0 or step == config.steps:
                state["losses"].append((step, sums[0] / count, sums[1] / count))
                sums, count = [0.0, 0.0], 0
            if evaluate is not None and evaluate_every and (step % evaluate_every == 0 or step == config.steps):
                state["evaluations"].append({"step": step, **evaluate_on_ema(g, ema, evaluate)})
            state["step"], state["wall_seconds"] = step, time.perf_counter() - start
            if checkpoint_dir is not None and step % config.checkpoint_every == 0:
                _save(checkpoint_dir, g, d, opt_g, opt_d, ema, state)
            if progress is not None:
                last = state["losses"][-1] if state["losses"] else (step, ld, lg)
                progress(step, config.steps, f"Training (D {last[1]:.3f}, G {last[2]:.3f})")
    except (Cancelled, KeyboardInterrupt):
        if checkpoint_dir is not None:
            _save(checkpoint_dir, g, d, opt_g, opt_d, ema, state)
        raise
    if checkpoint_dir is not None:
        _save(checkpoint_dir, g, d, opt_g, opt_d, ema, state)
    if ema is not None:
        ema.copy_to(g.parameters())
    g.eval()
    return FitResult(step, state["wall_seconds"], str(device), [tuple(x) for x in state["losses"]],
                     state["evaluations"])


def _save(folder: Path, g, d, opt_g, opt_d, ema, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"g.{k}": v for k, v in g.state_dict().items()} | {f"d.{k}": v for k, v in d.state_dict().items()}
    if ema is not None:
        tensors |= {f"ema.{i}": p for i, p in enumerate(ema.shadow_params)}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, folder / "networks.safetensors")
    torch.save({"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "ema_step": ema.optimization_step if ema is not None else 0}, folder / "optimizers.pt")
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / "state.json")  # written last: a checkpoint without it is ignored


def _load(folder: Path, g, d, opt_g, opt_d, ema, device) -> dict:
    try:
        state = json.loads((folder / "state.json").read_text())
        tensors = load_file(folder / "networks.safetensors", device=str(device))
        g.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("g.")})
        d.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("d.")})
        rest = torch.load(folder / "optimizers.pt", map_location=device, weights_only=True)
        opt_g.load_state_dict(rest["opt_g"])
        opt_d.load_state_dict(rest["opt_d"])
        if ema is not None:
            ema.shadow_params = [tensors[f"ema.{i}"] for i in range(len(ema.shadow_params))]
            ema.optimization_step = rest["ema_step"]
    except Exception as err:  # noqa: BLE001
        raise LabError(f"The checkpoint in {folder} cannot be resumed ({err}); delete that folder to start "
                       "afresh, or pass --no-resume.") from err
    return state


def train_gan(out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
              channels: int | None = None, limit: int | None = None, style: str = "plain", path: str | None = None,
              config: TrainConfig | None = None, latent_dim: int = 64, width: int = 32, resume: bool = True,
              command: str = "", progress: ProgressFn | None = None, fid_every: int = 0, fid_n: int = 500) -> Path:
    """Train the DCGAN on a dataset and save the generator (diffusers folder ``generator/``) with a card."""
    from lab.data import load_dataset
    from lab.models.store import write_info
    from lab.train.recipes import data_summary

    config = config or TrainConfig(steps=5000, batch_size=128, lr=2e-4, warmup=0, ema_decay=None)
    seed_everything(config.seed)
    ds = load_dataset(data, split, size=size, channels=channels, limit=limit, style=style, path=path)
    g = Generator(image_size=ds.size, channels=ds.channels, latent_dim=latent_dim, width=width)
    d = Discriminator(image_size=ds.size, channels=ds.channels, width=2 * width)
    probe, extra = None, {}
    if fid_every:
        from lab.models.gan import gan_samples
        from lab.train.fid_curve import FidProbe

        probe = FidProbe(ds.name.split("-")[0], ds.size, ds.channels, fid_n,
                         lambda net, n: gan_samples(net, n, seed=1234), "generator, z ~ N(0, I)")
        extra["fid_curve_settings"] = {"every": fid_every, **probe.describe()}
    result = train_gan_loop(g, d, ds.to_float(), config, out / "checkpoint", resume, progress, probe, fid_every)
    if result.evaluations:
        extra["fid_curve"] = result.evaluations
    out.mkdir(parents=True, exist_ok=True)
    stored(g, config.fp16_weights).save_pretrained(out / "generator")
    params = {"generator": sum(p.numel() for p in g.parameters()), "discriminator": sum(p.numel() for p in d.parameters())}
    last = result.losses[-1] if result.losses else (0, float("nan"), float("nan"))
    write_info(out, {
        "kind": "gan", "description": f"A DCGAN on {ds.name}: generator {params['generator']:,} and discriminator "
        f"{params['discriminator']:,} parameters, non-saturating loss, Adam (β₁ 0.5); "
        + (f"the generator's EMA (decay {config.ema_decay})." if config.ema_decay
           else "the generator's last weights (no EMA)."),
        "data": data_summary(ds, split, style), "command": command, "train_config": config.__dict__,
        "steps": result.steps, "wall_seconds": round(result.wall_seconds, 1), "device": result.device,
        "threads": torch.get_num_threads(), "parameters": params["generator"] + params["discriminator"],
        "parameters_by_network": params, "final_loss": last[2], "final_losses": {"D": last[1], "G": last[2]},
        "losses": result.losses, **extra})
    log.info("saved %s", out)
    return out
