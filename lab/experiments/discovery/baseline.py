"""The tuning baseline: plain ε-loss fine-tuning of a copy of the frozen model on the few-shot set, then DDIM
samples from noise, judged like the discovered ones."""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image

from lab.diffusion.samplers import ddim_generate
from lab.experiments.discovery.config import BaselineSettings, DiscoveryConfig
from lab.experiments.discovery.data import load_model, load_target
from lab.experiments.discovery.evaluate import heldout_needed, judge, sample_rows
from lab.models.loaded import LoadedModel
from lab.progress import ProgressFn
from lab.seeding import randn
from lab.viz.discovery import nearest_pairs_grid, samples_grid


@dataclass
class BaselineResult:
    samples: torch.Tensor = field(repr=False)
    unet: object = field(repr=False)
    losses: list
    train_seconds: float
    sample_seconds: float
    metrics: dict
    grid: Image.Image = field(repr=False)
    pairs_grid: Image.Image = field(repr=False)
    loss_figure: object = field(repr=False)
    scheduler: object = field(repr=False, default=None)
    info: dict = field(default_factory=dict)   # the model card's training record, when kept
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict]:
        return sample_rows("fine-tuned", self.metrics)

    def save(self, run, keep_model: bool = False) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("finetuned_samples.png"))
        self.pairs_grid.save(run.add("nearest_fewshot.png"))
        torch.save(self.samples, run.add("finetuned_samples.pt"))
        if self.rows():
            write_csv(run.add("metrics.csv"), self.rows())
        for path in save_figure(self.loss_figure, run.path("finetune_loss"), formats=("html", "png", "svg")):
            run.add(path.name)
        run.save_json("finetune.json", {"losses": self.losses, "train_seconds": self.train_seconds,
                                        "sample_seconds": self.sample_seconds, "notes": self.notes,
                                        "metrics": {k: v for k, v in self.metrics.items() if k != "nearest_index"}})
        if keep_model:
            from lab.models.store import save_diffusion

            save_diffusion(run.path("model"), self.unet, self.scheduler, "ddpm", self.info)
            run.add("model")


def run_finetune(config: DiscoveryConfig, settings: BaselineSettings | None = None, files=None,
                 progress: ProgressFn | None = None, model: LoadedModel | None = None) -> BaselineResult:
    """Fine-tune a copy of the model on the few-shot set with the ε-loss, then sample with DDIM.

    ``config`` gives the model, the domain and the DDIM steps; ``settings`` (default: ``config`` itself, then a
    ``BaselineSettings``) the training, the samples and the metrics."""
    from lab.train.config import TrainConfig
    from lab.train.loop import fit
    from lab.train.losses import EpsilonLoss
    from lab.viz.plots import loss_figure

    settings = config if settings is None else settings
    if not isinstance(settings, BaselineSettings):
        raise TypeError("run_finetune needs BaselineSettings")
    settings.validate()
    config.validate()
    model = model or load_model(config)
    target = load_target(config, model, files, heldout=heldout_needed(settings))
    notes = list(target.notes)
    unet = copy.deepcopy(model.unet)
    train = TrainConfig(steps=settings.train_steps, batch_size=min(settings.train_batch, len(target.fewshot)),
                        lr=settings.lr, warmup=min(50, settings.train_steps // 10), ema_decay=settings.ema_decay,
                        checkpoint_every=settings.train_steps + 1, log_every=max(1, settings.train_steps // 50),
                        seed=config.seed, device=str(model.device))
    fitted = fit(unet, EpsilonLoss(model.scheduler), target.fewshot,
                 torch.zeros(len(target.fewshot), dtype=torch.long), train, progress=progress)
    unet.eval()
    noise = randn((settings.count, model.channels, model.size, model.size), config.seed * 7919 + 1)
    start = time.perf_counter()
    samples = ddim_generate(unet, noise, model.scheduler, config.steps, None, config.batch_size, progress=progress)
    sample_seconds = time.perf_counter() - start
    metrics, nearest = judge(samples, target, config, settings, notes, progress=progress)
    steps, losses = zip(*fitted.losses) if fitted.losses else ((), ())
    info = {"description": f"{config.model} fine-tuned on {len(target.fewshot)} images of {target.name} with the "
                           f"ε-loss: the tuning baseline of the Domain-discovery experiment.",
            "data": {"name": target.name, "split": "train", "count": len(target.fewshot), "size": model.size,
                     "channels": model.channels},
            "base_model": config.model, "train_config": asdict(train), "steps": fitted.steps,
            "wall_seconds": round(fitted.wall_seconds, 1), "device": fitted.device,
            "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in unet.parameters()),
            "final_loss": fitted.losses[-1][1] if fitted.losses else float("nan"), "losses": fitted.losses}
    return BaselineResult(samples, unet, list(fitted.losses), fitted.wall_seconds, sample_seconds, metrics,
                          samples_grid(samples), nearest_pairs_grid(samples, target.fewshot, nearest),
                          loss_figure(list(steps), list(losses), "Fine-tuning loss (ε-MSE)"), model.scheduler, info,
                          notes)
