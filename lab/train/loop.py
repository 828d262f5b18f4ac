"""One training loop for every model of the lab, on Hugging Face accelerate: AdamW, warm-up + cosine LR, gradient
clipping, EMA (diffusers' ``EMAModel``), mixed precision, gradient accumulation, data parallel over any number of
processes, periodic checkpoints and exact resume (with any number of processes), progress.

Batches and noise are drawn from generators seeded by (seed, step), so a resumed run continues
exactly as an uninterrupted one would.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from lab.device import training_attention
from lab.errors import Cancelled, LabError
from lab.progress import ProgressFn
from lab.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    steps: int
    wall_seconds: float
    device: str
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean loss since the last entry)
    evaluations: list[dict] = field(default_factory=list)          # {"step": k, ...} from ``evaluate``
    processes: int = 1                                             # data-parallel processes (accelerate)
    mixed_precision: str = "no"                                    # accelerate's setting


def batch_index(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[k * batch_size:(k + 1) * batch_size] if n >= batch_size else perm


def fit(model: torch.nn.Module, loss_fn: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
        config: TrainConfig, checkpoint_dir: Path | None = None, resume: bool = True,
        progress: ProgressFn | None = None, callback=None, evaluate=None, evaluate_every: int = 0) -> FitResult:
    """Train ``model`` on (images, labels) with ``loss_fn(model, x, y, generator)``, on accelerate.

    One process or many (``accelerate launch``): each optimiser step takes ``config.grad_accum`` global batches
    of ``config.batch_size`` images, split evenly over the processes (DDP averages the gradients, so the update
    equals one process's on the whole batch; lab.train.shard gives every process its slice of the same noise).
    Leaves the EMA weights in ``model`` at the end. With ``checkpoint_dir`` the main process writes the state
    every ``checkpoint_every`` steps and when the run is cancelled or interrupted; it resumes with any number of
    processes. ``callback(step, model)``, if given, runs after every step (log, stop early by raising).
    ``evaluate(model) -> dict`` runs on the main process every ``evaluate_every`` steps and at the end on the EMA
    weights, in eval mode (e.g. FID as training progresses); its results are kept, with the step, in
    ``FitResult.evaluations`` and in the checkpoint, so a resumed run continues the same curve.
    """
    from lab.train.accel import accelerator_for

    config.validate()
    accelerator = accelerator_for(config.device, config.cpu_bf16, config.grad_accum)
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if config.batch_size % world:
        raise LabError(f"The batch size {config.batch_size} does not split evenly over {world} processes.")
    share = config.batch_size // world
    model.to(device).train()
    loss_fn.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = get_cosine_schedule_with_warmup(opt, min(config.warmup, config.steps // 2), config.steps)
    ema = (EMAModel(model.parameters(), decay=config.ema_decay, use_ema_warmup=True, power=3 / 4)
           if config.ema_decay else None)
    state = {"step": 0, "wall_seconds": 0.0, "losses": [], "evaluations": []}
    if checkpoint_dir is not None and resume and (checkpoint_dir / "state.json").exists():
        state = _load_checkpoint(checkpoint_dir, model, opt, sched, ema, device)
        state.setdefault("evaluations", [])
        log.info("resumed from %s at step %d", checkpoint_dir, state["step"])
    trained, opt_p, sched_p = accelerator.prepare(model, opt, sched)
    main = accelerator.is_main_process
    bf16 = accelerator.mixed_precision == "bf16"

    def save() -> None:
        if checkpoint_dir is not None and main:
            _save_checkpoint(checkpoint_dir, model, opt, sched, ema, state, config)
        accelerator.wait_for_everyone()

    start, running, count = time.perf_counter() - state["wall_seconds"], 0.0, 0
    step = state["step"]
    try:
        while step < config.steps:
            total = 0.0
            for micro in range(config.grad_accum):
                draw = step * config.grad_accum + micro
                index = batch_index(len(images), config.batch_size, draw, config.seed)[rank * share:(rank + 1) * share]
                x = images[index].to(device, non_blocking=True)
                y = labels[index].to(device, non_blocking=True)
                gen = torch.Generator(device).manual_seed(config.seed * 1_000_003 + draw)
                with accelerator.accumulate(trained), training_attention(device, bf16):
                    with accelerator.autocast():
                        loss = loss_fn(trained, x, y, gen)
                    if not torch.isfinite(loss):
                        raise LabError(f"The loss became {loss.item()} at step {step}: lower the learning rate.")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(trained.parameters(), config.grad_clip)
                    opt_p.step()
                    sched_p.step()
                    opt_p.zero_grad(set_to_none=True)
                total += float(accelerator.reduce(loss.detach(), "mean")) / config.grad_accum
            if ema is not None:
                ema.step(model.parameters())
            step += 1
            running, count = running + total, count + 1
            if step % config.log_every == 0 or step == config.steps:
                state["losses"].append((step, running / count))
                running, count = 0.0, 0
            if evaluate is not None and evaluate_every and main and (step % evaluate_every == 0
                                                                      or step == config.steps):
                state["evaluations"].append({"step": step, **evaluate_on_ema(model, ema, evaluate)})
            state["step"], state["wall_seconds"] = step, time.perf_counter() - start
            if step % config.checkpoint_every == 0:
                save()
            if callback is not None:
                callback(step, model)
            if progress is not None and main:
                last = state["losses"][-1][1] if state["losses"] else total
                progress(step, config.steps, f"Training (loss {last:.4f})")
    except (Cancelled, KeyboardInterrupt):
        if checkpoint_dir is not None and main:
            _save_checkpoint(checkpoint_dir, model, opt, sched, ema, state, config)
        raise
    save()
    if ema is not None:
        ema.copy_to(model.parameters())
    model.eval()
    return FitResult(step, state["wall_seconds"], str(device), [tuple(x) for x in state["losses"]],
                     list(state.get("evaluations", [])), world, str(accelerator.mixed_precision))


def evaluate_on_ema(model, ema, evaluate) -> dict:
    """``evaluate(model)`` on the EMA weights (the ones that will be saved), in eval mode; training resumes after."""
    params = list(model.parameters())
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    model.eval()
    try:
        with torch.no_grad():
            return evaluate(model)
    finally:
        model.train()
        if ema is not None:
            ema.restore(params)


def _save_checkpoint(folder: Path, model, opt, sched, ema, state: dict, config: TrainConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "state.json.tmp"
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, folder / "model.safetensors")
    if ema is not None:
        save_file({str(i): p.detach().contiguous().cpu() for i, p in enumerate(ema.shadow_params)},
                  folder / "ema.safetensors")
    torch.save({"optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict(),
                "ema_step": ema.optimization_step if ema is not None else 0}, folder / "optimizer.pt")
    tmp.write_text(json.dumps({**state, "config": asdict(config)}))
    tmp.replace(folder / "state.json")  # written last: a checkpoint without it is ignored


def _load_checkpoint(folder: Path, model, opt, sched, ema, device) -> dict:
    try:
        state = json.loads((folder / "state.json").read_text())
        model.load_state_dict(load_file(folder / "model.safetensors", device=str(device)))
        rest = torch.load(folder / "optimizer.pt", map_location=device, weights_only=True)
        opt.load_state_dict(rest["optimizer"])
        sched.load_state_dict(rest["lr_scheduler"])
        if ema is not None and (folder / "ema.safetensors").exists():
            shadow = load_file(folder / "ema.safetensors", device=str(device))
            ema.shadow_params = [shadow[str(i)] for i in range(len(shadow))]
            ema.optimization_step = rest["ema_step"]
    except Exception as err:
        raise LabError(f"The checkpoint in {folder} cannot be resumed ({err}); delete that folder to start "
                       "afresh, or pass --no-resume.") from err
    return state
