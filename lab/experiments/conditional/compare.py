"""``run_compare``: several conditioning methods on the same classes, the same noise, the same sampler and the
same judge, with the judge's own accuracy and FID floor on real test images as the last row."""
from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from lab.errors import LabError
from lab.experiments.conditional.config import CompareConfig
from lab.experiments.conditional.methods import get
from lab.experiments.conditional.sample import run_grid
from lab.progress import ProgressFn, part


@dataclass
class CompareResult:
    rows: list[dict]
    grids: list[tuple[Image.Image, str]] = field(repr=False)
    per_class: list[dict] = field(default_factory=list)   # method × class accuracy
    details: list[dict] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import write_csv

        write_csv(run.add("compare.csv"), self.rows)
        write_csv(run.add("compare_per_class.csv"), self.per_class)
        for grid, name in self.grids:
            grid.save(run.add(f"grid_{name}.png"))
        run.save_json("compare.json", {"rows": self.rows, "details": self.details})


def run_compare(config: CompareConfig, progress: ProgressFn | None = None) -> CompareResult:
    """Every method of ``config.methods`` with its model and scale; one grid, accuracy and FID each."""
    entries = config.validate().entries()
    if not entries:
        raise LabError("Choose at least one method to compare.")
    result = CompareResult([], [])
    for k, e in enumerate(entries):
        method = get(e.method)
        r = run_grid(e, progress=part(progress, k, len(entries), f"{e.method}: {{desc}}"), intervals=False)
        s = r.summary()
        result.rows.append({"method": method.label, "model": f"{e.model} + {e.classifier}" if method.uses_classifier
                            else e.model, "scale": s["scale"], "conditional accuracy": s["accuracy"],
                            "FID": s["fid"], "n": s["n"], "sampling seconds": s["sampling_seconds"]})
        result.per_class.append({"method": e.method, **{row["class"]: row["accuracy"] for row in s["per_class"]}})
        result.grids.append((r.grid, e.method))
        result.details.append(s)
    d = result.details[0]
    result.rows.append({"method": "real test images (judge's accuracy floor)", "model": d["judge"],
                        "scale": None, "conditional accuracy": d["accuracy_floor"], "FID": d["fid_floor"],
                        "n": d["n"], "sampling seconds": None})
    return result
