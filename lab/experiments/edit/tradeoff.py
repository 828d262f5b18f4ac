"""The price of each loss weight: the same edit run for a few values of one λ (λ_L1 by default), each judged by
the independent judges (lab/metrics/judges.py) — how much of the target style it reaches against how often the
label survives. DiffusionCLIP's results hinge on these weights; the sweep shows the trade-off instead of guessing.

Every point is exactly the single edit ``run_edit(replace(config, λ = value))`` would make (same seed, images
and settings), so ``python -m lab edit`` with that value repeats it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from lab.errors import LabError
from lab.experiments.edit.config import EditConfig, TradeoffConfig
from lab.progress import ProgressFn, part

SYMBOLS = {"lambda_l1": "λ_L1", "lambda_id": "λ_id", "lambda_struct": "λ_struct", "lambda_clip": "λ_clip"}


@dataclass
class TradeoffResult:
    config: TradeoffConfig
    style: str | None                     # the style the target prompt asks for (None: no judge for it)
    rows: list[dict] = field(default_factory=list)
    judges: dict = field(default_factory=dict)
    grids: list = field(default_factory=list, repr=False)

    def figure(self):
        from lab.viz.plots import tradeoff_figure

        name = SYMBOLS[self.config.sweep_param]
        return tradeoff_figure([r["label_kept"] for r in self.rows],
                               [r["style_fraction"] for r in self.rows],
                               [f"{name} = {r['value']:g}" for r in self.rows],
                               f"What each {name} costs: {self.style or 'target'} style reached against label kept "
                               f"(n = {self.rows[0]['n'] if self.rows else 0} edited images)",
                               "label kept (independent label judge)",
                               f"judged '{self.style}'" if self.style else "style (no judge)")

    def verdict(self) -> str:
        if not self.rows:
            return "Nothing was edited."
        if self.style is None:
            kept = ", ".join(f"{r['value']:g}: {r['label_kept']:.0%}" for r in self.rows)
            return f"The target prompt names no style the lab can judge, so only the label kept is measured ({kept})."
        good = [r for r in self.rows if r["label_kept"] >= 0.9]
        best = max(good or self.rows, key=lambda r: r["style_fraction"])
        name = SYMBOLS[self.config.sweep_param]
        text = (f"Best {name} here: **{best['value']:g}** — {best['style_fraction']:.0%} of the edits judged "
                f"'{self.style}', label kept for {best['label_kept']:.0%}"
                + ("" if good else " (no setting kept ≥ 90 % of the labels)") + f"; n = {best['n']} images.")
        if best["n"] < 30:
            text += " ⚠️ Fewer than 30 images: each fraction moves by ≥ 3 points per image; edit more for a firm choice."
        return text

    def save(self, run) -> None:
        from lab.viz.export import save_figure, write_csv

        write_csv(run.add("tradeoff.csv"), self.rows)
        save_figure(self.figure(), run.path("tradeoff"))
        for row, grid in zip(self.rows, self.grids):
            grid.save(run.add(f"edit_{self.config.sweep_param}_{row['value']:g}.png"))
        run.save_json("result.json", {"config": asdict(self.config), "style": self.style, "rows": self.rows,
                                      "judges": self.judges})
        run.log_metrics(**{f"style_at_{r['value']:g}": r["style_fraction"] for r in self.rows})


def run_tradeoff(config: TradeoffConfig, progress: ProgressFn | None = None, judges=None) -> TradeoffResult:
    """Edit once per value of ``config.sweep_param`` and judge each edit (``judges``: lab.metrics.judges.Judges;
    default: trained on the config's data, cached)."""
    from lab.experiments.edit.run import run_edit
    from lab.metrics.judges import style_of_prompt, train_judges

    config.validate()
    if config.edit_n < 1:
        raise LabError("The trade-off sweep judges edited dataset images: set 'Images to edit' to at least 1.")
    style = style_of_prompt(config.target)
    count = len(config.sweep_values) + 1
    if progress is not None:
        progress(0, count, "Training the judges (cached after the first time)")
    judges = judges or train_judges(config.data, style or "sketch", limit=2000 if config.data != "utkface" else None,
                                    steps=300, seed=0, label_target="gender" if config.data == "utkface" else None)
    result = TradeoffResult(config, style, judges=judges.summary())
    single = {k: v for k, v in asdict(config).items() if k not in ("sweep_param", "sweep_values")}
    for k, value in enumerate(config.sweep_values):
        edit = replace(EditConfig(**single), **{config.sweep_param: float(value)})
        out = run_edit(edit, progress=part(progress, k + 1, count, f"{config.sweep_param} = {value:g}: {{desc}}"))
        result.rows.append({
            "value": float(value), "n": len(out.edited),
            "style_fraction": round(judges.style_fraction(out.edited), 4) if style else None,
            "label_kept": round(judges.label_kept(out.edited, out.labels), 4),
            "clip_direction_after": out.metrics["clip_direction_after"],
            "l1_to_original": out.metrics["l1_to_original"], "command": edit.to_command()})
        result.grids.append(out.grid)
    return result
