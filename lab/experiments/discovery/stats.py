"""Inversion statistics: norms and pairwise angles of the inverted latents against N(0, I) noise of the same
size, and how well one linear domain classifier tells unseen, in-domain and Gaussian latents apart."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from lab.diffusion import latents as geo
from lab.experiments.discovery.config import DiscoveryConfig
from lab.experiments.discovery.data import inverted, load_in_domain, load_model, load_target, t0_used
from lab.metrics.domain import separability
from lab.models.loaded import LoadedModel
from lab.progress import ProgressFn
from lab.seeding import randn
from lab.viz.discovery import density_figure


@dataclass
class StatsResult:
    rows: list[dict]
    norm_figure: object = field(repr=False)
    angle_figure: object = field(repr=False)
    separability: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        write_csv(run.add("latent_stats.csv"), self.rows)
        for fig, stem in ((self.norm_figure, "latent_norms"), (self.angle_figure, "latent_angles")):
            for path in save_figure(fig, run.path(stem)):
                run.add(path.name)
        run.save_json("latent_stats.json", {"rows": self.rows, "separability": self.separability,
                                            "notes": self.notes})


def latent_summary(name: str, z: torch.Tensor) -> dict:
    """Norms, pairwise angles and entry statistics of one latent set (d = entries per latent)."""
    d = z[0].numel()
    n = geo.norms(z)
    a = geo.pairwise_angles(z) if len(z) > 1 else torch.zeros(1, dtype=torch.float64)
    f = geo.flat(z)
    return {"set": name, "n": len(z), "d": d, "norm_mean": float(n.mean()), "norm_std": float(n.std()),
            "sqrt_d": math.sqrt(d), "angle_mean": float(a.mean()), "angle_std": float(a.std()),
            "angle_min": float(a.min()), "entry_mean": float(f.mean()), "entry_std": float(f.std()),
            "mean_latent_norm": float(f.mean(0).norm())}


def run_stats(config: DiscoveryConfig, files=None, progress: ProgressFn | None = None,
              model: LoadedModel | None = None) -> StatsResult:
    """Norms and pairwise angles of the inverted few-shot set (and in-domain images) vs N(0, I)."""
    config.validate()
    model = model or load_model(config)
    target = load_target(config, model, files)
    x = target.fewshot
    sets = {f"unseen inverted ({target.name})": inverted(model, x, config, progress=progress)}
    in_dom, in_name = load_in_domain(config, model, len(x))
    if in_dom is not None:
        sets[f"in-domain inverted ({in_name})"] = inverted(model, in_dom, config, progress=progress)
    sets["Gaussian N(0, I)"] = randn(tuple(sets[next(iter(sets))].shape), config.seed + 12345)
    rows = [latent_summary(k, v) for k, v in sets.items()]
    d = rows[0]["d"]
    t = t0_used(model, config.t0, config.steps)
    norm_fig = density_figure({k: geo.norms(v).numpy() for k, v in sets.items()},
                              f"Latent norms at t0 = {t} (√d = {math.sqrt(d):.1f})", "‖x_t0‖")
    angle_fig = density_figure({k: geo.pairwise_angles(v).numpy() for k, v in sets.items()},
                               f"Pairwise angles between latents at t0 = {t}", "angle (degrees)")
    names = list(sets)
    apart = {}
    if in_dom is not None:
        apart["unseen vs in-domain"] = separability(sets[names[0]], sets[names[1]], config.seed)
    apart["unseen vs Gaussian"] = separability(sets[names[0]], sets[names[-1]], config.seed)
    return StatsResult(rows, norm_fig, angle_fig, apart, target.notes)
