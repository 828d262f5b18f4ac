"""The class-conditional grid: ``run_grid`` samples one row per requested class (the same noise in every row of a
column, so only the label differs), then measures conditional accuracy, FID and a t-SNE of the judge's features."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from PIL import Image

from lab.diffusion.samplers import ddim_sample, ddpm_sample
from lab.errors import LabError
from lab.experiments.conditional.config import MAX_SAMPLES, ConditionalConfig
from lab.experiments.conditional.measure import Metrics, find_judge, measure
from lab.experiments.conditional.methods import Conditioner, get
from lab.models.labels import LabelSpec
from lab.progress import ProgressFn, part
from lab.seeding import randn
from lab.viz.grids import image_grid
from lab.viz.rows import label_rows
from lab.viz.tsne import MIN_POINTS, tsne_figure


def prepare(config: ConditionalConfig) -> Conditioner:
    """The configured method, loaded and ready to sample."""
    config.validate()
    return get(config.method).prepare(config)


def sample_labelled(cond: Conditioner, labels: torch.Tensor, noise: torch.Tensor, config: ConditionalConfig,
                    progress: ProgressFn | None = None, desc: str = "Sampling") -> torch.Tensor:
    """Samples for ``labels`` from ``noise`` (one x_T per label), in batches; [-1, 1] on the CPU."""
    out, n = [], len(labels)
    batches = max(1, -(-n // config.batch_size))
    for b in range(batches):
        sl = slice(b * config.batch_size, min(n, (b + 1) * config.batch_size))
        x = noise[sl].to(cond.device)
        eps = cond.eps_for(labels[sl].to(cond.device))
        g = torch.Generator().manual_seed(config.seed * 104_729 + b + 1)
        step = part(progress, b, batches, desc)
        if config.sampler == "ddpm":
            traj = ddpm_sample(eps, x, cond.scheduler, config.steps, generator=g, snapshots=2, progress=step)
        else:
            traj = ddim_sample(eps, x, cond.scheduler, config.steps, eta=config.eta, generator=g, snapshots=2,
                               progress=step)
        out.append(traj.samples.cpu())
    return torch.cat(out)


def paired_batch(spec: LabelSpec, rows: list[int], per_class: int, size: int, channels: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, noise) row by row: every row reuses the same ``per_class`` noise images, so the only
    difference between rows of one column is the label."""
    bank = randn((per_class, channels, size, size), seed)
    labels = spec.row_labels(rows).repeat_interleave(per_class, dim=0)
    return labels, bank.repeat(len(rows), 1, 1, 1)


@dataclass
class GridResult:
    config: ConditionalConfig
    rows: list[str]
    samples: torch.Tensor = field(repr=False)
    labels: torch.Tensor = field(repr=False)
    grid: Image.Image = field(repr=False)
    metrics: Metrics | None
    seconds: float                          # sampling time only
    description: str = ""
    tsne: object = field(repr=False, default=None)

    def table(self) -> list[dict]:
        return self.metrics.per_class if self.metrics else []

    def summary(self) -> dict:
        m = self.metrics
        out = {"method": self.config.method, "description": self.description, "scale": self.config.scale_used,
               "sampler": self.config.sampler, "steps": self.config.steps, "n": len(self.samples),
               "sampling_seconds": round(self.seconds, 2), "rows": self.rows}
        if m is not None:
            out.update(accuracy=round(m.accuracy, 4), fid=None if m.fid is None else round(m.fid, 3),
                       fid_floor=None if m.fid_floor is None else round(m.fid_floor, 3),
                       accuracy_floor=round(m.accuracy_floor, 4), judge=m.judge, per_class=m.per_class,
                       notes=m.notes)
        return out

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("grid.png"))
        torch.save({"samples": self.samples, "labels": self.labels}, run.add("samples.pt"))
        run.save_json("result.json", self.summary())
        if self.metrics is not None:
            write_csv(run.add("per_class.csv"), self.table())
            run.log_metrics(accuracy=self.metrics.accuracy, fid=self.metrics.fid, n=len(self.samples),
                            sampling_seconds=round(self.seconds, 2))
        if self.tsne is not None:
            for path in save_figure(self.tsne, run.path("tsne"), formats=("html", "png", "svg")):
                run.add(path.name)


def run_grid(config: ConditionalConfig, progress: ProgressFn | None = None, measure_it: bool = True,
             cond: Conditioner | None = None, intervals: bool = True) -> GridResult:
    """One row per requested class, ``per_class`` samples each; metrics and t-SNE when ``measure_it`` (with
    bootstrap intervals of the per-class FIDs when ``intervals``)."""
    cond = cond or prepare(config)
    rows = cond.spec.parse_rows(config.classes)
    if len(rows) * config.per_class > MAX_SAMPLES:
        raise LabError(f"{len(rows)} classes × {config.per_class} samples is more than {MAX_SAMPLES}: ask for fewer.")
    judge_path = find_judge(cond.data, cond.spec, config.judge) if measure_it else None
    labels, noise = paired_batch(cond.spec, rows, config.per_class, cond.size, cond.channels, config.seed)
    start = time.perf_counter()
    samples = sample_labelled(cond, labels, noise, config, progress, f"Sampling {len(labels)} images")
    seconds = time.perf_counter() - start
    shown = min(config.per_class, config.grid_columns)
    keep = torch.cat([torch.arange(r * config.per_class, r * config.per_class + shown) for r in range(len(rows))])
    scale = max(1, 64 // cond.size)
    names = [cond.spec.names[r] for r in rows]
    grid = label_rows(image_grid(samples[keep], nrow=shown, scale=scale), names, cell=cond.size * scale)
    metrics = fig = None
    if measure_it:
        metrics = measure(samples, labels, rows, cond.spec, cond.data, judge_path, fid=config.fid, progress=progress,
                          intervals=intervals)
        if config.tsne and len(samples) >= MIN_POINTS:
            fig = _tsne(metrics, cond.spec, rows, config)
    return GridResult(config, names, samples, labels, grid, metrics, seconds, cond.description, fig)


def _tsne(metrics: Metrics, spec: LabelSpec, rows: list[int], config: ConditionalConfig):
    """The judge's features coloured by requested class; ✕ where the judge disagrees."""
    requested = [spec.names[r] for r in rows for _ in range(config.per_class)]
    if spec.kind == "class":
        judged = [f"judged {spec.names[i]}" for i in metrics.predicted.tolist()]
    else:
        judged = ["judged present" if ok else "judged absent" for ok in metrics.correct.tolist()]
    correct = metrics.correct.tolist()
    return tsne_figure(metrics.features, requested, f"t-SNE of the judge's features: {get(config.method).label}",
                       symbols=["circle" if ok else "x" for ok in correct],
                       hover=[f"requested {a}, {b}" for a, b in zip(requested, judged)],
                       legend_title="requested class", seed=config.seed)
