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
from lab.models.precondition import precondition_score
from lab.models.unet import build_unet, preset_for
from lab.progress import ProgressFn
from lab.seeding import seed_everything
from lab.train.config import TrainConfig
from lab.train.loop import FitResult, fit
from lab.train.losses import ClassifierLoss, EDMScoreLoss, EpsilonLoss, ScoreMatchingLoss
from lab.train.shard import is_main

log = logging.getLogger(__name__)


def data_summary(ds: ImageSet, split: str, style: str = "plain") -> dict:
    return {"name": ds.name, "split": split, "count": len(ds), "size": ds.size, "channels": ds.channels,
            "style": style, "classes": ds.classes}


def fit_info(result: FitResult, config: TrainConfig, command: str, model) -> dict:
    return {"command": command, "train_config": asdict(config), "steps": result.steps,
            "wall_seconds": round(result.wall_seconds, 1), "device": result.device,
            "processes": result.processes, "mixed_precision": result.mixed_precision,
            "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": result.losses[-1][1] if result.losses else float("nan"), "losses": result.losses}


def train_diffusion(kind: str, out: Path, data: str = "mnist", split: str = "train", size: int | None = None,
                    channels: int | None = None, limit: int | None = None, style: str = "plain",
                    config: TrainConfig | None = None, sigma_max: float | None = 2.0, sigma_min: float = 0.02,
                    levels: int | None = 10, continuous: bool = False, resume: bool = True, command: str = "",
                    progress: ProgressFn | None = None, dataset: ImageSet | None = None,
                    path: str | None = None, init_from: str | None = None, timesteps: int = 1000,
                    fid_every: int = 0, fid_n: int = 500) -> Path:
    """Train a DDPM (ε-prediction) or a score model and save it to ``out``.

    Score models: ``continuous`` trains the variance-exploding SDE with EDM's preconditioning and loss (sampled
    by DPM-Solver or predictor–corrector from σ_max), else NCSN's fixed geometric levels. ``sigma_max`` None takes the largest pairwise
    distance of the training images and ``levels`` None the NCSNv2 overlap rule (lab.diffusion.ncsn).
    ``init_from``: continue from the weights of a saved model of the same kind and size (a fresh optimizer and
    learning-rate schedule), e.g. when its training checkpoint is gone. ``timesteps``: the DDPM's T (the seed's
    sweep trains T = 10, 100, 1000 with the same β range). ``fid_every`` > 0: FID of ``fid_n`` samples (lab
    classifier features) every that many steps and at the end, into ``training.json`` (``fid_curve``)."""
    config = config or TrainConfig()
    seed_everything(config.seed)
    ds = dataset or load_dataset(data, split, size=size, channels=channels, limit=limit, style=style, path=path)
    unet = build_unet(preset_for(ds.size, ds.channels), formulation=kind)
    images, extra = ds.to_float(), {}
    if kind == "ddpm":
        scheduler = make_ddpm_scheduler(num_train_timesteps=timesteps)
        loss = EpsilonLoss(scheduler)
        description = (f"A DDPM (ε-prediction, linear β 1e-4→0.02, T={timesteps}) on {ds.name}: a diffusers "
                       "UNet2DModel trained with the simple loss.")
    elif kind == "score":
        from lab.diffusion import ncsn

        sigma_max = sigma_max or round(ncsn.sigma_max_for(images), 2)
        levels = levels or ncsn.levels_for(images[0].numel(), sigma_max, sigma_min)
        scheduler = make_score_scheduler(sigma_max, sigma_min, levels)
        sigmas = geometric_sigmas(sigma_max, sigma_min, levels)
        extra = {"score": {"sigma_max": sigma_max, "sigma_min": sigma_min, "levels": levels,
                           "continuous": continuous, "langevin_eps_T5": ncsn.step_size_for(sigmas, 5)}}
        if continuous:
            sigma_data = round(float(images.pow(2).mean().sqrt()), 2)  # the data's scale (RMS: they are not centred)
            precondition_score(unet, sigma_data)
            extra["score"]["preconditioning"] = {"name": "edm", "sigma_data": sigma_data}
            loss = EDMScoreLoss(sigma_data)
            extra["score"]["training_sigmas"] = f"ln σ ~ N({loss.p_mean:.2f}, {loss.p_std}²) (EDM's, at this σ_data)"
            description = (f"A score model s(x, σ) on {ds.name}: denoising score matching of the variance-exploding "
                           f"SDE with EDM's preconditioning and loss (Karras et al. 2022: σ_data = {sigma_data}, "
                           f"ln σ ~ N({loss.p_mean:.2f}, {loss.p_std}²) while training); sampled from σ_max = {sigma_max} (the largest "
                           f"distance between two training images, NCSNv2 technique 1) with DPM-Solver on the "
                           f"probability-flow ODE or the reverse SDE, predictor–corrector, or annealed Langevin over "
                           f"the {levels} levels of the overlap rule (technique 2).")
        else:
            loss = ScoreMatchingLoss(sigmas)
            description = (f"A score model s(x, σ) on {ds.name}: denoising score matching over {levels} geometric "
                           f"noise levels σ = {sigma_max} … {sigma_min} (NCSN); sample with annealed Langevin dynamics.")
    else:
        raise LabError(f"Unknown diffusion kind {kind!r}: use 'ddpm' or 'score'.")
    if init_from:
        _load_weights(unet, kind, init_from)
    probe = None
    if fid_every:
        from lab.train.fid_curve import FidProbe, diffusion_sampler

        probe = FidProbe(ds.name.split("-")[0], ds.size, ds.channels, fid_n, *diffusion_sampler(kind, scheduler))
        extra["fid_curve_settings"] = {"every": fid_every, **probe.describe()}
    result = fit(unet, loss, images, ds.labels, config, checkpoint_dir=out / "checkpoint",
                 resume=resume, progress=progress, evaluate=probe, evaluate_every=fid_every)
    if result.evaluations:
        extra["fid_curve"] = result.evaluations
    if not is_main():  # data-parallel runs: the main process writes the model folder
        return out
    save_diffusion(out, unet, scheduler, kind, {
        "description": description, "data": data_summary(ds, split, style),
        **fit_info(result, config, command, unet), "init_from": init_from, **extra}, fp16=config.fp16_weights)
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
    if not is_main():
        return out
    metrics = {}
    if dataset is None and data != "folder":
        test = load_dataset(data, "test", size=ds.size, channels=ds.channels, style=style)
        metrics = {"test_accuracy": accuracy(net, test.to_float(), test.labels), "test_count": len(test)}
    save_classifier(out, net, {
        "kind": "classifier", "description": f"The lab's ConvNet (conv 32-64-128 + 2 FC) classifying {ds.name}.",
        "data": data_summary(ds, split, style), "metrics": metrics,
        **fit_info(result, config, command, net)}, fp16=config.fp16_weights)
    return out
