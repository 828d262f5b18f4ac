"""A DANN comparison's result: the per-placement table (mean ± std over seeds), its figures, ``save(run)`` into a
run record and ``load_result`` back from one."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from lab.errors import LabError
from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.reference import PUBLIC_REFERENCE, SEED_REFERENCE
from lab.metrics import mean_std
from lab.models.dann_registry import PLACEMENTS
from lab.runs import read_saved_run
from lab.train.dann import DANNRun


@dataclass
class DANNResult:
    config: DANNConfig
    runs: list[DANNRun] = field(default_factory=list)
    pads: dict = field(default_factory=dict)        # run label → PAD of backbone features
    input_pad: dict | None = None                   # PAD between the raw test images of both domains
    data: dict = field(default_factory=dict)        # sizes and names of the domains
    seconds: float = 0.0

    @staticmethod
    def run_label(run: DANNRun) -> str:
        return f"{run.placement} / seed {run.seed}"

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
        """Per placement: accuracies and PAD as mean and std over seeds (fractions in [0, 1])."""
        out = []
        for placement in dict.fromkeys(r.placement for r in self.runs):
            runs = [r for r in self.runs if r.placement == placement]
            src, tgt = mean_std([r.source_acc for r in runs]), mean_std([r.target_acc for r in runs])
            pad = mean_std([self.pads.get(self.run_label(r), float("nan")) for r in runs])
            out.append({"placement": placement, "GRL at": PLACEMENTS[placement].description, "seeds": len(runs),
                        "source_acc_mean": src[0], "source_acc_std": src[1],
                        "target_acc_mean": tgt[0], "target_acc_std": tgt[1],
                        "pad_mean": pad[0], "pad_std": pad[1],
                        "minutes_per_run": statistics.fmean(r.seconds for r in runs) / 60,
                        "backbone": runs[0].backbone, "weights": runs[0].weights})
        return out

    def display_rows(self) -> list[dict]:
        """The table the tab shows: accuracies in % as mean ± std."""
        def pm(mean, std, scale=100.0, digits=2):
            return "–" if mean != mean else f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"

        return [{"placement": r["placement"], "GRL at": r["GRL at"], "seeds": r["seeds"],
                 "source acc %": pm(r["source_acc_mean"], r["source_acc_std"]),
                 "target acc %": pm(r["target_acc_mean"], r["target_acc_std"]),
                 "PAD (features)": pm(r["pad_mean"], r["pad_std"], 1.0, 3),
                 "min / run": round(r["minutes_per_run"], 2)} for r in self.rows()]

    def run_rows(self) -> list[dict]:
        return [{"placement": r.placement, "seed": r.seed, "source_acc": r.source_acc, "target_acc": r.target_acc,
                 "pad": self.pads.get(self.run_label(r)), "seconds": r.seconds, "device": r.device,
                 "backbone": r.backbone, "weights": r.weights} for r in self.runs]

    def history_rows(self) -> list[dict]:
        return [{"placement": r.placement, "seed": r.seed, **entry} for r in self.runs for entry in r.history]

    def best(self) -> dict | None:
        rows = [r for r in self.rows() if r["target_acc_mean"] == r["target_acc_mean"]]
        return max(rows, key=lambda r: r["target_acc_mean"]) if rows else None

    def best_run_label(self) -> str:
        best = self.best()
        runs = [r for r in self.runs if best is None or r.placement == best["placement"]]
        return self.run_label(max(runs, key=lambda r: r.target_acc))

    def summary(self) -> dict:
        best = self.best()
        return {"task": self.config.label(), "backbone": self.config.backbone, "weights": self.weights,
                "data": self.data, "input_pad": self.input_pad, "rows": self.rows(), "runs": self.run_rows(),
                "best_placement": best["placement"] if best else None,
                "seconds": round(self.seconds, 2), "seed_reference": SEED_REFERENCE,
                "public_reference": PUBLIC_REFERENCE}

    # figures (lab.viz.dann)
    def curves_figure(self, metric: str = "accuracy"):
        from lab.viz.dann import curves_figure

        return curves_figure(self.runs, metric, self.config.label(), f"{self.config.backbone}, {self.weights}",
                             errors=len(self.config.seeds) > 1)

    def tsne_figure(self, label: str | None = None, color_by: str = "domain", points: int = 500):
        from lab.viz.dann import tsne_figure

        run = self.find(label or self.best_run_label())
        return tsne_figure(run.features, self.data, self.run_label(run), color_by, points, seed=run.seed)

    def save(self, run, figures: bool = True) -> None:
        """Write config, tables, histories, features and figures into a run record."""
        from lab.viz.export import save_figure, write_csv

        run.save_json("config.json", asdict(self.config))
        run.save_json("result.json", {**self.summary(), "histories": {self.run_label(r): r.history
                                                                      for r in self.runs}})
        write_csv(run.add("table.csv"), self.rows())
        write_csv(run.add("runs.csv"), self.run_rows())
        if self.runs:
            write_csv(run.add("history.csv"), self.history_rows())
        write_csv(run.add("seed_reference.csv"), SEED_REFERENCE)
        for r in self.runs:
            torch.save(r.features, run.add(f"features/{r.placement}-seed{r.seed}.pt"))
        best = self.best()
        run.log_metrics(best_placement=best["placement"] if best else None,
                        target_acc_best=best["target_acc_mean"] if best else None,
                        input_pad=(self.input_pad or {}).get("pad"), runs_done=len(self.runs),
                        weights=self.weights)
        if figures and self.runs:
            for metric in ("accuracy", "domain"):
                for path in save_figure(self.curves_figure(metric), run.path(f"curves_{metric}")):
                    run.add(path.name)


def load_result(folder: str | Path) -> DANNResult:
    """A saved comparison (its numbers, histories and features) from a run folder."""
    folder = Path(folder)
    summary, values = read_saved_run(folder, "finished DANN")
    config = DANNConfig.from_dict(values)
    result = DANNResult(config, pads={}, input_pad=summary.get("input_pad"), data=summary.get("data", {}),
                        seconds=summary.get("seconds", 0.0))
    histories = summary.get("histories", {})
    for row in summary.get("runs", []):
        file = folder / "features" / f"{row['placement']}-seed{row['seed']}.pt"
        features = torch.load(file, weights_only=True) if file.exists() else {}
        run = DANNRun(row["placement"], row["seed"], row["backbone"], row["weights"], "ImageNet" in row["weights"],
                      row["source_acc"], row["target_acc"], histories.get(f"{row['placement']} / seed {row['seed']}", []),
                      row["seconds"], row.get("device", "cpu"), features)
        result.runs.append(run)
        if row.get("pad") is not None:
            result.pads[result.run_label(run)] = row["pad"]
    return result
