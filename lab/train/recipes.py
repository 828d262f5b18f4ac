"""What ``python -m lab train ...`` runs: build a model, train it with ``fit``, save a model folder."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from lab.data import ImageSet, load_dataset
from lab.diffusion.schedules import geometric_sigmas, make_ddpm_scheduler, make_score_scheduler
from lab.errors import LabError
from lab.models.cnn import ConvNet
from lab.models.store import save_classifier, save_diffusion
from lab.models.unet import build_unet, preset_for
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.losses import ClassifierLoss, EpsilonLoss, ScoreMatchingLoss
from lab.train.loop import FitResult, TrainConfig, fit

log = logging.getLogger(__name__)


def data_summary(ds: ImageSet, split: str, style: str = "plain") -> dict:
    return {"name": ds.name, "split": split, "count": len(ds), "size": ds.size, "channels": ds.channels,
            "style": style, "classes": ds.classes}


def _fit_info(result: FitResult, config: TrainConfig, command: str, model) -> dict:
    return {"command": command, "train_config": asdict(config), "steps": result.steps,
            "wall_seconds": round(result.wall_seconds, 1), "device": result.device,
            "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": result.losses[-1][1] if result.losses else float("nan"), "losses": result.losses}


def train_diffusion(kind: str, out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                    channels: int | None = None, limit: int | None = None, style: str = "plain",
                    config: TrainConfig | None = None, sigma_max: float = 2.0, sigma_min: float = 0.02,
                    levels: int = 10, resume: bool = True, command: str = "",
                    progress: ProgressFn | None = None, dataset: ImageSet | None = None,
                    path: str | None = None, init_from: str | None = None) -> Path:
    """Train a DDPM (ε-prediction) or score model (DSM over geometric σ) and save it to ``out``.

    ``init_from``: continue from the weights of a saved model of the same kind and size (a fresh optimizer and
    learning-rate schedule), e.g. when its training checkpoint is gone."""
    config = config or TrainConfig()
    seed_everything(config.seed)
    ds = dataset or load_dataset(data, split, size=size, channels=channels, limit=limit, style=style, path=path)
    unet = build_unet(preset_for(ds.size, ds.channels), formulation=kind)
    if kind == "ddpm":
        scheduler = make_ddpm_scheduler()
        loss = EpsilonLoss(scheduler)
        description = (f"A DDPM (ε-prediction, linear β 1e-4→0.02, T=1000) on {ds.name}: a diffusers "
                       "UNet2DModel trained with the simple loss.")
    elif kind == "score":
        scheduler = make_score_scheduler(sigma_max, sigma_min, levels)
        loss = ScoreMatchingLoss(geometric_sigmas(sigma_max, sigma_min, levels))
        description = (f"A score model s(x, σ) on {ds.name}: denoising score matching over {levels} geometric noise "
                       f"levels σ = {sigma_max} … {sigma_min} (NCSN); sample with annealed Langevin dynamics.")
    else:
        raise LabError(f"Unknown diffusion kind {kind!r}: use 'ddpm' or 'score'.")
    if init_from:
        _load_weights(unet, kind, init_from)
    result = fit(unet, loss, ds.to_float(), ds.labels, config, checkpoint_dir=out / "checkpoint",
                 resume=resume, progress=progress)
    save_diffusion(out, unet, scheduler, kind, {
        "description": description, "data": data_summary(ds, split, style),
        **_fit_info(result, config, command, unet), "init_from": init_from})
    log.info("saved %s", out)
    return out


def _load_weights(unet, kind: str, source: str) -> None:
    from lab.models.store import load_diffusion

    start = load_diffusion(source)
    if start.kind != kind:
        raise LabError(f"{source} is a {start.kind} model; --init-from needs a {kind} model.")
    try:
        unet.load_state_dict(start.unet.state_dict())
    except RuntimeError as err:
        raise LabError(f"{source} does not fit this {kind} UNet (another size or channel count): {err}") from None


def train_classifier(out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                     channels: int | None = None, limit: int | None = None, style: str = "plain",
                     config: TrainConfig | None = None, resume: bool = True, command: str = "",
                     progress: ProgressFn | None = None, dataset: ImageSet | None = None,
                     path: str | None = None) -> Path:
    """Train the lab's ConvNet on a labelled dataset and save it, with its test accuracy, to ``out``."""
    from lab.metrics.classify import accuracy

    config = config or TrainConfig(steps=3000, lr=1e-3, warmup=100, ema_decay=None)
    seed_everything(config.seed)
    ds = dataset or load_dataset(data, split, size=size, channels=channels, limit=limit, style=style, path=path)
    net = ConvNet(in_channels=ds.channels, image_size=ds.size, num_classes=len(ds.classes))
    result = fit(net, ClassifierLoss(augment=True), ds.to_float(), ds.labels, config,
                 checkpoint_dir=out / "checkpoint", resume=resume, progress=progress)
    metrics = {}
    if dataset is None and data != "folder":
        test = load_dataset(data, "test", size=ds.size, channels=ds.channels, style=style)
        metrics = {"test_accuracy": accuracy(net, test.to_float(), test.labels), "test_count": len(test)}
    save_classifier(out, net, {
        "kind": "classifier", "description": f"The lab's ConvNet (conv 32-64-128 + 2 FC) classifying {ds.name}.",
        "data": data_summary(ds, split, style), "metrics": metrics,
        **_fit_info(result, config, command, net)})
    return out
