"""A DANN comparison's result: one row per (placement, method) — mean ± std over seeds —, its figures, ``save(run)``
into a run record and ``load_result`` back from one.

What a run folder keeps of each run's features is what its t-SNE needs (``TSNE_POINTS`` per domain, projected on
their ``TSNE_DIMS`` principal components: small); the full feature tensors (backbone and what the discriminator saw,
float16) are written beside the folder, in ``<run>.features/``, so the run's zip stays small, and ``features_zip``
offers them separately.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lab.errors import LabError
from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.reference import (
    PUBLIC_REFERENCE,
    SEED_REFERENCE,
    beside_reference,
)
from lab.experiments.dann.table import display_rows, verdict
from lab.metrics import mean_std
from lab.models.dann_registry import METHODS, PLACEMENTS
from lab.runs import read_saved_run
from lab.train.dann import DANNRun

TSNE_POINTS, TSNE_DIMS = 500, 50
PAD_KEYS = ("backbone", "seen", "hidden", "logits")


def _slug(run: DANNRun) -> str:
    return f"{run.placement}-{run.method}-seed{run.seed}"


def compact_features(features: dict, points: int = TSNE_POINTS, dims: int = TSNE_DIMS) -> dict:
    """The first ``points`` backbone features per domain on their joint top ``dims`` principal components (what the
    t-SNE needs: distances kept up to the discarded variance), with their labels."""
    if not features:
        return {}
    xs, xt = features["source"]["features"][:points].float(), features["target"]["features"][:points].float()
    x = torch.cat([xs, xt])
    centred = x - x.mean(0)
    if centred.shape[1] > dims:
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        centred = centred @ v[:dims].T
    return {"source": {"features": centred[:len(xs)].contiguous(), "labels": features["source"]["labels"][:points]},
            "target": {"features": centred[len(xs):].contiguous(), "labels": features["target"]["labels"][:points]}}


def features_folder(run_dir: Path) -> Path:
    return Path(run_dir).parent / f"{Path(run_dir).name}.features"


def features_zip(run_dir: Path) -> Path | None:
    """The full feature tensors of a saved comparison as one zip beside its folder (None when there are none)."""
    from lab.viz.export import zip_folder

    folder = features_folder(run_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    return zip_folder(folder, folder.parent / f"{Path(run_dir).name}-features.zip")


@dataclass
class DANNResult:
    config: DANNConfig
    runs: list[DANNRun] = field(default_factory=list)
    input_pad: dict | None = None                   # PAD between the raw test images of both domains
    data: dict = field(default_factory=dict)        # sizes, names and USPS renderings of the domains
    seconds: float = 0.0
    saved: set = field(default_factory=set, repr=False)   # runs whose features are written already

    @staticmethod
    def run_label(run: DANNRun) -> str:
        return f"{run.row} / seed {run.seed}"

    def find(self, label: str) -> DANNRun:
        for run in self.runs:
            if self.run_label(run) == label:
                return run
        raise LabError(f"No run {label!r} in this comparison: choose one of "
                       f"{', '.join(self.run_label(r) for r in self.runs)}.")

    @property
    def weights(self) -> str:
        notes = sorted({r.weights for r in self.runs})
        return "; ".join(notes) if notes else "not trained yet"

    def rows(self) -> list[dict]:
        """Per (placement, method): accuracies and PADs as mean and std over seeds (fractions in [0, 1])."""
        out = []
        for row in dict.fromkeys(r.row for r in self.runs):
            runs = [r for r in self.runs if r.row == row]
            first = runs[0]
            entry = {"row": row, "method": first.method, "placement": first.placement,
                     "GRL at": PLACEMENTS[first.placement].description, "seeds": len(runs)}
            for side in ("source", "target"):
                entry[f"{side}_acc_mean"], entry[f"{side}_acc_std"] = mean_std([getattr(r, f"{side}_acc")
                                                                                for r in runs])
            for key in PAD_KEYS:
                m, s = mean_std([r.pads.get(key, float("nan")) for r in runs])
                entry[f"pad_{key}_mean"], entry[f"pad_{key}_std"] = m, s
            entry["pad_mean"], entry["pad_std"] = entry["pad_backbone_mean"], entry["pad_backbone_std"]
            entry.update(minutes_per_run=statistics.fmean(r.seconds for r in runs) / 60, backbone=first.backbone,
                         weights=first.weights)
            out.append(entry)
        return out

    def display_rows(self) -> list[dict]:
        return display_rows(self.rows())

    def verdict(self) -> str:
        return verdict(self.rows())

    def reference_rows(self) -> list[dict]:
        return beside_reference(self.rows(), self.config.task, self.config.backbone)

    def run_rows(self) -> list[dict]:
        return [{"row": r.row, "placement": r.placement, "method": r.method, "seed": r.seed,
                 "source_acc": r.source_acc, "target_acc": r.target_acc, "pad": r.pads.get("backbone"),
                 **{f"pad_{k}": r.pads.get(k) for k in PAD_KEYS if k != "backbone"}, "seconds": r.seconds,
                 "device": r.device, "backbone": r.backbone, "weights": r.weights} for r in self.runs]

    def history_rows(self) -> list[dict]:
        return [{"row": r.row, "placement": r.placement, "method": r.method, "seed": r.seed, **entry}
                for r in self.runs for entry in r.history]

    def best(self) -> dict | None:
        rows = [r for r in self.rows() if r["target_acc_mean"] == r["target_acc_mean"]]
        return max(rows, key=lambda r: r["target_acc_mean"]) if rows else None

    def best_run_label(self) -> str:
        best = self.best()
        runs = [r for r in self.runs if best is None or r.row == best["row"]]
        return self.run_label(max(runs, key=lambda r: r.target_acc))

    def summary(self) -> dict:
        best = self.best()
        return {"task": self.config.label(), "backbone": self.config.backbone, "weights": self.weights,
                "data": self.data, "input_pad": self.input_pad, "rows": self.rows(), "runs": self.run_rows(),
                "best_row": best["row"] if best else None, "best_placement": best["placement"] if best else None,
                "best_method": best["method"] if best else None, "verdict": self.verdict(),
                "seconds": round(self.seconds, 2), "reference": self.reference_rows(),
                "seed_reference": SEED_REFERENCE, "public_reference": PUBLIC_REFERENCE}

    # figures (lab.viz.dann)
    def curves_figure(self, metric: str = "accuracy"):
        from lab.viz.dann import curves_figure

        return curves_figure(self.runs, metric, self.config.label(), f"{self.config.backbone}, {self.weights}",
                             errors=len(self.config.seeds) > 1)

    def pad_figure(self):
        from lab.viz.dann import pad_figure

        return pad_figure(self.rows(), self.config.label(), (self.input_pad or {}).get("pad"))

    def tsne_figure(self, label: str | None = None, color_by: str = "domain", points: int = TSNE_POINTS):
        from lab.viz.dann import tsne_figure

        run = self.find(label or self.best_run_label())
        return tsne_figure(run.features, self.data, self.run_label(run), color_by, points, seed=run.seed)

    def save(self, run, figures: bool = True) -> None:
        """Write config, tables, histories, the t-SNE inputs and figures into a run record (the full feature tensors
        beside it)."""
        from lab.viz.export import save_figure, write_csv

        run.save_json("config.json", asdict(self.config))
        run.save_json("result.json", {**self.summary(), "histories": {self.run_label(r): r.history
                                                                      for r in self.runs}})
        write_csv(run.add("table.csv"), self.rows())
        write_csv(run.add("runs.csv"), self.run_rows())
        if self.runs:
            write_csv(run.add("history.csv"), self.history_rows())
        write_csv(run.add("seed_reference.csv"), SEED_REFERENCE)
        if self.reference_rows():
            write_csv(run.add("beside_reference.csv"), self.reference_rows())
        for r in self.runs:
            if _slug(r) in self.saved or not r.features:
                continue
            torch.save(compact_features(r.features), run.add(f"features/{_slug(r)}.pt"))
            full = features_folder(run.dir)
            full.mkdir(exist_ok=True)
            torch.save({d: {k: v.half() if v.is_floating_point() else v for k, v in f.items()}
                        for d, f in r.features.items()}, full / f"{_slug(r)}.pt")
            self.saved.add(_slug(r))
        best = self.best()
        run.log_metrics(best_row=best["row"] if best else None, best_placement=best["placement"] if best else None,
                        target_acc_best=best["target_acc_mean"] if best else None,
                        input_pad=(self.input_pad or {}).get("pad"), runs_done=len(self.runs),
                        weights=self.weights, usps_renderings=self.data.get("usps_renderings") or None)
        if figures and self.runs:
            for stem, fig in (("curves_accuracy", self.curves_figure("accuracy")),
                              ("curves_domain", self.curves_figure("domain")), ("pad", self.pad_figure())):
                for path in save_figure(fig, run.path(stem)):
                    run.add(path.name)


def load_result(folder: str | Path) -> DANNResult:
    """A saved comparison (its numbers, histories and t-SNE inputs) from a run folder; older folders (one method,
    DANN; full features inside) load too."""
    folder = Path(folder)
    summary, values = read_saved_run(folder, "finished DANN")
    config = DANNConfig.from_dict(values)
    result = DANNResult(config, input_pad=summary.get("input_pad"), data=summary.get("data", {}),
                        seconds=summary.get("seconds", 0.0))
    histories = summary.get("histories", {})
    for row in summary.get("runs", []):
        method = row.get("method") or ("none" if row["placement"] == "none" else "dann")
        run = DANNRun(row["placement"], row["seed"], row["backbone"], row["weights"], "ImageNet" in row["weights"],
                      row["source_acc"], row["target_acc"], seconds=row["seconds"], device=row.get("device", "cpu"),
                      method=method if method in METHODS else "dann")
        run.pads = {k: row.get("pad" if k == "backbone" else f"pad_{k}") for k in PAD_KEYS
                    if row.get("pad" if k == "backbone" else f"pad_{k}") is not None}
        old_label = f"{row['placement']} / seed {row['seed']}"
        run.history = histories.get(result.run_label(run), histories.get(old_label, []))
        for name in (f"features/{_slug(run)}.pt", f"features/{row['placement']}-seed{row['seed']}.pt"):
            if (folder / name).exists():
                run.features = torch.load(folder / name, weights_only=True)
                break
        result.runs.append(run)
        result.saved.add(_slug(run))
    return result
