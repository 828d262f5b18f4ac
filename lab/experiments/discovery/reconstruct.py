"""Unseen reconstruction: invert images to x_{t0} with deterministic DDIM (η = 0), generate them back, and
measure MSE / PSNR per domain and t0."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from PIL import Image

from lab.diffusion.samplers import ddim_generate
from lab.errors import LabError
from lab.experiments.discovery.config import DiscoveryConfig
from lab.experiments.discovery.data import inverted, load_in_domain, load_model, load_target, t0_used
from lab.metrics.psnr import psnr_mse
from lab.models.loaded import LoadedModel
from lab.progress import ProgressFn, part
from lab.viz.discovery import psnr_figure, reconstruction_grid


@dataclass
class ReconstructionResult:
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    figure: object = field(repr=False)
    t0s: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def psnr(self, domain: str, t0: int | None = None) -> float | None:
        for row in self.rows:
            if row["domain"] == domain and (t0 is None or row["t0"] == t0):
                return row["psnr_mean"]
        return None

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        for (grid, _), t0 in zip(self.grids, self.t0s):
            grid.save(run.add(f"reconstruction_t0_{t0}.png"))
        write_csv(run.add("reconstruction.csv"), self.rows)
        for path in save_figure(self.figure, run.path("psnr_vs_t0"), formats=("html", "png", "svg", "pdf")):
            run.add(path.name)
        run.save_json("reconstruction.json", {"rows": self.rows, "notes": self.notes})


def run_reconstruct(config: DiscoveryConfig, t0s: list[int] | None = None, n_images: int = 10, files=None,
                    progress: ProgressFn | None = None, model: LoadedModel | None = None) -> ReconstructionResult:
    """Invert ``n_images`` unseen (and in-domain) images at each t0 (default: ``config.t0``) and generate them
    back."""
    config.validate()
    model = model or load_model(config)
    t0s = sorted(set(t0s or [config.t0]))
    if not 1 <= n_images <= 1000:
        raise LabError(f"Images per domain must be between 1 and 1000, not {n_images}.")
    for t0 in t0s:
        if config.steps > t0:
            raise LabError(f"{config.steps} inversion steps do not fit below t0 = {t0}: use fewer steps or a larger "
                           "t0.")
    target = load_target(replace(config, shots=max(config.shots, n_images)), model, files)
    sets = [(f"unseen ({target.name})", target.fewshot[:n_images])]
    in_dom, in_name = load_in_domain(config, model, n_images)
    notes = list(target.notes)
    if in_dom is not None:
        sets.append((f"in-domain ({in_name})", in_dom))
    else:
        notes.append("No in-domain contrast: the model's card does not name a dataset the lab can load "
                     "(choose one under 'In-domain data').")
    rows, grids = [], []
    for k, t0 in enumerate(t0s):
        pairs = []
        for s, (domain, x) in enumerate(sets):
            sub = part(progress, k * len(sets) + s, len(t0s) * len(sets), f"t0 = {t0}, {domain}: {{desc}}")
            start = time.perf_counter()
            z = inverted(model, x, config, t0=t0, progress=part(sub, 0, 2))
            back = ddim_generate(model.unet, z, model.scheduler, config.steps, t0, config.batch_size,
                                 progress=part(sub, 1, 2))
            psnr, mse = psnr_mse(back, x)
            rows.append({"domain": domain.split(" ")[0], "data": domain, "t0": t0,
                         "t0_used": t0_used(model, t0, config.steps), "steps": config.steps, "n": len(x),
                         "mse_mean": float(mse.mean()), "psnr_mean": float(psnr.mean()),
                         "psnr_std": float(psnr.std()) if len(x) > 1 else 0.0,
                         "seconds": round(time.perf_counter() - start, 2)})
            pairs.append((x, back))
        label = f"t0 = {t0} (rows: " + ", ".join(f"{d} / reconstruction" for d, _ in sets) + ")"
        grids.append((reconstruction_grid(pairs, min(10, n_images)), label))
    fig = psnr_figure(rows, t0s, [d for d, _ in sets], config.steps)
    return ReconstructionResult(rows, grids, fig, t0s, notes)
