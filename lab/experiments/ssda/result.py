"""The result of a batch-adaptation run: histories per (training set, seed), the final-epoch table and gain, the
curves and the gallery of translations; saved after every trained network and reopened by ``load_result``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lab.errors import LabError
from lab.experiments.ssda.config import CONDITIONS, SSDAConfig
from lab.experiments.ssda.translate import match_channels
from lab.metrics import mean_std
from lab.runs import read_saved_run


@dataclass
class SSDAResult:
    config: SSDAConfig
    histories: dict = field(default_factory=dict)    # "condition/seed" → [{"epoch", "loss", "source_acc", "target_acc"}]
    originals: torch.Tensor | None = field(default=None, repr=False)   # uint8, the n′ source images
    adapted: torch.Tensor | None = field(default=None, repr=False)     # uint8, their translations
    translation: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    seconds: float = 0.0

    def runs(self, condition: str) -> list[list[dict]]:
        return [h for key, h in self.histories.items() if key.split("/")[0] == condition and h]

    def rows(self) -> list[dict]:
        """Final-epoch accuracy per training set, mean and std over seeds (fractions)."""
        out = []
        for condition in self.config.conditions:
            runs = self.runs(condition)
            if not runs:
                continue
            src = mean_std([r[-1]["source_acc"] for r in runs])
            tgt = mean_std([r[-1]["target_acc"] for r in runs])
            out.append({"training set": condition, "what": CONDITIONS[condition], "seeds": len(runs),
                        "source_acc_mean": src[0], "source_acc_std": src[1],
                        "target_acc_mean": tgt[0], "target_acc_std": tgt[1]})
        return out

    def display_rows(self) -> list[dict]:
        """The table as shown: the target accuracy (what the experiment is about) first, then the source's."""
        return [{"training set": r["training set"],
                 "target test acc %": f"{100 * r['target_acc_mean']:.1f} ± {100 * r['target_acc_std']:.1f}",
                 "source test acc %": f"{100 * r['source_acc_mean']:.1f} ± {100 * r['source_acc_std']:.1f}",
                 "seeds": r["seeds"], "what": r["what"]}
                for r in self.rows()]

    def gain(self) -> float | None:
        """Target accuracy of (b) minus (a) at the final epoch, mean over seeds, in points."""
        rows = {r["training set"]: r for r in self.rows()}
        if "adapted" not in rows or "original" not in rows:
            return None
        return 100 * (rows["adapted"]["target_acc_mean"] - rows["original"]["target_acc_mean"])

    def gain_spread(self) -> tuple[float, int] | None:
        """(std over seeds of the per-seed gain (b) − (a), seeds paired), in points; None without both."""
        pairs = [(h[-1]["target_acc"], self.histories.get(f"adapted/{k.split('/')[1]}")) for k, h in
                 self.histories.items() if k.startswith("original/") and h]
        gains = [100 * (b[-1]["target_acc"] - a) for a, b in pairs if b]
        return (mean_std(gains)[1], len(gains)) if gains else None

    def optimizer_steps(self) -> int:
        """Optimisation steps of one CNN trained on the n′ images (the combined set takes twice as many)."""
        n = int(self.data.get("n_labelled") or self.config.n_labelled or 0)
        return self.config.epochs * -(-n // max(self.config.batch_size, 1))

    def warnings(self) -> list[str]:
        """What keeps the table from meaning much: conditions that end near chance, a low source accuracy (the CNN
        is under-trained), few optimisation steps."""
        classes = len(self.data.get("classes") or []) or 10
        chance, out = 1 / classes, []
        near = [r["training set"] for r in self.rows() if _own_accuracy(r) <= chance + 0.05]
        if near:
            out.append(f"{', '.join(near)} end{'s' if len(near) == 1 else ''} near chance ({chance:.0%}) even on the "
                       "test set of the domain trained on: a CNN that learned nothing says nothing about the "
                       "translation.")
        source = {r["training set"]: r["source_acc_mean"] for r in self.rows()}.get("original")
        steps = self.optimizer_steps()
        if (source is not None and source < 0.8) or near:
            out.append(f"The CNN is under-trained ({steps} optimisation step{'s' * (steps != 1)}: "
                       f"{self.config.epochs} epoch{'s' * (self.config.epochs != 1)} of "
                       f"n′ = {self.data.get('n_labelled')} images in batches of {self.config.batch_size}"
                       + (f"; source test accuracy {source:.0%}" if source is not None else "")
                       + "): raise epochs or n′ before reading the gain.")
        return out

    def headline(self) -> str:
        """The result in one sentence: the gain of (b) over (a) on the target test set, its spread over seeds,
        whether it is larger than that spread, and what keeps it from meaning much."""
        gain = self.gain()
        if gain is None:
            return ""
        rows = {r["training set"]: r for r in self.rows()}
        a, b = rows["original"]["target_acc_mean"], rows["adapted"]["target_acc_mean"]
        spread = self.gain_spread()
        text = (f"Gain on the target test set, (b) − (a) at the last epoch: **{gain:+.1f} points** "
                f"({100 * a:.1f} % → {100 * b:.1f} %")
        if spread and spread[1] > 1:
            std, seeds = spread
            text += f"; ± {std:.1f} over {seeds} seeds"
            verdict = ("translating **helps**" if gain > 2 * std / seeds ** 0.5 and gain > 0 else
                       "translating **hurts**" if gain < -2 * std / seeds ** 0.5 else
                       "no gain beyond the spread over seeds")
        else:
            verdict = "one seed: run more seeds to tell a gain from noise"
        text += f"): {verdict}."
        warn = self.warnings()
        return text + "".join(f"\n\n⚠️ {w}" for w in warn)

    def history_rows(self) -> list[dict]:
        return [{"training set": key.split("/")[0], "seed": int(key.split("/")[1]), **entry}
                for key, history in self.histories.items() for entry in history]

    def curves_figure(self):
        from lab.viz.ssda import accuracy_curves

        n = self.data.get("n_labelled", "?")
        title = (f"{self.config.label()}: test accuracy per epoch<br><sup>n′ = {n} labelled source images; "
                 f"mean ± std over {len(self.config.seeds)} seed(s)</sup>")
        return accuracy_curves({c: self.runs(c) for c in self.config.conditions}, list(CONDITIONS), title,
                               error_bars=len(self.config.seeds) > 1)

    def gallery(self, count: int = 16) -> Image.Image:
        """Originals (top row of each pair) above their translations."""
        from lab.viz.grids import image_grid

        if self.originals is None or self.adapted is None:
            raise LabError("This run kept no translated images.")
        k = min(count, len(self.originals))
        channels = max(self.originals.shape[1], self.adapted.shape[1])
        top = match_channels(self.originals[:k], channels).float().div(127.5).sub(1)
        bottom = match_channels(self.adapted[:k], channels).float().div(127.5).sub(1)
        return image_grid(torch.cat([top, bottom]), nrow=k, scale=3 if top.shape[-1] <= 32 else 1)

    def summary(self) -> dict:
        return {"task": self.config.label(), "data": self.data, "translation": self.translation,
                "rows": self.rows(), "gain_points": self.gain(), "warnings": self.warnings(),
                "optimizer_steps": self.optimizer_steps(), "seconds": round(self.seconds, 2)}

    def save(self, run, figures: bool = True) -> None:
        from lab.viz.export import save_figure, write_csv

        run.save_json("config.json", asdict(self.config))
        run.save_json("result.json", {**self.summary(), "histories": self.histories})
        if self.histories:
            write_csv(run.add("curves.csv"), self.history_rows())
            write_csv(run.add("table.csv"), self.rows())
        run.log_metrics(gain_points=self.gain(), runs_done=len(self.histories),
                        **{f"target_acc_{r['training set']}": r["target_acc_mean"] for r in self.rows()})
        if figures and self.originals is not None and self.adapted is not None:
            save_file({"originals": self.originals.contiguous(), "adapted": self.adapted.contiguous()},
                      run.add("translations.safetensors"))
            self.gallery().save(run.add("gallery.png"))
        if figures and self.histories:
            for path in save_figure(self.curves_figure(), run.path("curves")):
                run.add(path.name)


def _own_accuracy(row: dict) -> float:
    """A training set's accuracy on the test set of its own domain (a low one: the CNN learned nothing; a low one on
    the other domain is the domain gap the experiment is about). Adapted images: the better of the two."""
    own = {"original": "source_acc_mean", "combined": "source_acc_mean", "oracle": "target_acc_mean"}
    key = own.get(row["training set"])
    return row[key] if key else max(row["source_acc_mean"], row["target_acc_mean"])


def load_result(folder: str | Path) -> SSDAResult:
    """A finished (or stopped) run from its folder."""
    folder = Path(folder)
    summary, values = read_saved_run(folder, "batch-adaptation")
    config = SSDAConfig.from_dict(values)
    result = SSDAResult(config, histories=summary.get("histories", {}), translation=summary.get("translation", {}),
                        data=summary.get("data", {}), seconds=summary.get("seconds", 0.0))
    pairs = folder / "translations.safetensors"
    if pairs.exists():
        tensors = load_file(pairs)
        result.originals, result.adapted = tensors["originals"], tensors["adapted"]
    return result
