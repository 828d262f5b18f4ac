"""Latent discovery: new latents from the inverted few-shot set (slerp, mixing, a Gaussian fit), kept when they
pass the geometric filter (``lab.diffusion.latents``), generated with the frozen model and judged."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image

from lab.diffusion import latents as geo
from lab.diffusion.samplers import ddim_generate
from lab.errors import LabError
from lab.experiments.discovery.config import DiscoveryConfig, DiscoverySettings
from lab.experiments.discovery.data import inverted, load_model, load_target, t0_used
from lab.experiments.discovery.evaluate import heldout_needed, judge, sample_rows
from lab.models.loaded import LoadedModel
from lab.progress import ProgressFn
from lab.viz.discovery import geometry_figure, nearest_pairs_grid, samples_grid


@dataclass
class DiscoveryResult:
    samples: torch.Tensor = field(repr=False)
    accepted: int
    proposed: int
    thresholds: geo.GeometryThresholds
    targets: dict
    provenance: list[str]
    metrics: dict
    grid: Image.Image = field(repr=False)
    pairs_grid: Image.Image = field(repr=False)
    figure: object = field(repr=False)
    seconds: dict
    t0_used: int
    notes: list[str] = field(default_factory=list)

    @property
    def acceptance(self) -> float:
        return self.accepted / max(self.proposed, 1)

    def rows(self) -> list[dict]:
        return sample_rows("discovered", self.metrics)

    def summary(self) -> dict:
        return {"accepted": self.accepted, "proposed": self.proposed, "acceptance": self.acceptance,
                "thresholds": asdict(self.thresholds), "targets": self.targets, "t0_used": self.t0_used,
                "seconds": self.seconds, "metrics": {k: v for k, v in self.metrics.items() if k != "nearest_index"},
                "notes": self.notes}

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        self.grid.save(run.add("discovered.png"))
        self.pairs_grid.save(run.add("nearest_fewshot.png"))
        torch.save(self.samples, run.add("discovered.pt"))
        if self.rows():
            write_csv(run.add("metrics.csv"), self.rows())
        write_csv(run.add("provenance.csv"), [{"sample": i, "made_by": p} for i, p in enumerate(self.provenance)])
        for path in save_figure(self.figure, run.path("geometry")):
            run.add(path.name)
        run.save_json("discovery.json", self.summary())
        m = self.metrics
        run.log_metrics(acceptance=self.acceptance, accepted=self.accepted,
                        fid=m.get("fid", {}).get("fid") if m.get("fid") else None,
                        nn_copy_fraction=m.get("copies", {}).get("nn_copy_fraction"))


def run_discover(config: DiscoveryConfig, settings: DiscoverySettings | None = None, files=None,
                 progress: ProgressFn | None = None, model: LoadedModel | None = None) -> DiscoveryResult:
    """Invert the few-shot set, propose and filter new latents, generate them with the frozen model.

    ``config`` gives the model, the domain and the inversion; ``settings`` (default: ``config`` itself, then a
    ``DiscoverySettings``) the proposals, the filter and the metrics."""
    settings = config if settings is None else settings
    if not isinstance(settings, DiscoverySettings):
        raise TypeError("run_discover needs DiscoverySettings")
    settings.validate()
    config.validate()
    model = model or load_model(config)
    target = load_target(config, model, files, heldout=heldout_needed(settings))
    notes, seconds = list(target.notes), {}
    start = time.perf_counter()
    refs = inverted(model, target.fewshot, config, progress=progress)
    seconds["inversion"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    ref_measures = geo.reference_geometry(refs)
    targets = {k: float(v.mean()) for k, v in ref_measures.items()}
    thresholds, _ = geo.thresholds_around(refs, None if settings.norm_tol is None else settings.norm_tol / 100.0,
                                          settings.origin_tol, settings.pair_tol, targets=targets)
    found = geo.search(refs, settings.count, settings.method, thresholds, torch.Generator().manual_seed(config.seed),
                       settings.max_candidates, settings.t_margin, settings.mix_count, progress=progress)
    seconds["proposals"] = round(time.perf_counter() - start, 2)
    z = found.latents
    if len(z) == 0:
        raise LabError(f"None of {found.proposed} {settings.method} proposals passed the geometric checks "
                       f"({thresholds.describe()}): widen the tolerances or switch a check off.")
    if len(z) < settings.count:
        notes.append(f"Only {len(z)} of {found.proposed} proposals passed the checks (budget "
                     f"{settings.max_candidates}): widen the tolerances for more samples.")
    start = time.perf_counter()
    samples = ddim_generate(model.unet, z, model.scheduler, config.steps, config.t0, config.batch_size,
                            progress=progress)
    seconds["generation"] = round(time.perf_counter() - start, 2)
    metrics, nearest = judge(samples, target, config, settings, notes, progress=progress)
    return DiscoveryResult(samples, len(z), found.proposed, thresholds, targets, found.provenance, metrics,
                           samples_grid(samples), nearest_pairs_grid(samples, target.fewshot, nearest),
                           geometry_figure(found.shown, ref_measures, thresholds), seconds,
                           t0_used(model, config.t0, config.steps), notes)
