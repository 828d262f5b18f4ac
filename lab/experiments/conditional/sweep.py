"""``run_sweep``: one method's conditional accuracy and FID at several guidance scales (same noise, same judge)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from PIL import Image

from lab.experiments.conditional.config import SweepConfig
from lab.experiments.conditional.methods import get
from lab.experiments.conditional.sample import run_grid
from lab.progress import ProgressFn, part
from lab.viz.twin_axes import twin_axes_figure


@dataclass
class SweepResult:
    method: str
    scale_name: str
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    figure: object = field(repr=False, default=None)

    def best(self) -> dict:
        return max(self.rows, key=lambda r: (r["accuracy"], -(r.get("FID") or 0)))

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        write_csv(run.add("sweep.csv"), self.rows)
        for grid, name in self.grids:
            grid.save(run.add(f"grid_{self.scale_name}{name}.png"))
        if self.figure is not None:
            for path in save_figure(self.figure, run.path("sweep"), formats=("html", "png", "svg")):
                run.add(path.name)


def run_sweep(config: SweepConfig, progress: ProgressFn | None = None) -> SweepResult:
    """A grid, its accuracy and FID at each of ``config.scales``."""
    scales = config.validate().scales
    method = get(config.method)
    name = method.scale_name
    result = SweepResult(config.method, name, [], [])
    for k, s in enumerate(scales):
        r = run_grid(replace(config, scale=float(s), tsne=False),
                     progress=part(progress, k, len(scales), f"{name} = {s:g}: {{desc}}"), intervals=False)
        summary = r.summary()
        result.rows.append({"scale": float(s), "accuracy": summary["accuracy"], "FID": summary["fid"],
                            "n": summary["n"], "sampling seconds": summary["sampling_seconds"]})
        result.grids.append((r.grid, f"{s:g}"))
    rows = result.rows
    result.figure = twin_axes_figure(
        [r["scale"] for r in rows], {"conditional accuracy": [r["accuracy"] for r in rows]},
        {"FID (classifier features)": [r.get("FID") for r in rows]},
        f"{method.label}: accuracy and FID against {name}", f"guidance scale {name}", "conditional accuracy",
        "FID (lower is better)", left_range=(0, 1.02))
    return result
