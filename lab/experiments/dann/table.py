"""How a comparison's rows read: the displayed table (the target accuracy first, numbers rounded) and the verdict in
plain words."""
from __future__ import annotations

import math


def _pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    if mean != mean:
        return "–"
    return f"{mean * scale:.{digits}f}" + ("" if std != std else f" ± {std * scale:.{digits}f}")


def display_rows(rows: list[dict]) -> list[dict]:
    """The table the tab shows: target accuracy (the key column) first, accuracies in % and PADs rounded, as
    mean ± std over seeds; PAD on what the discriminator sees beside PAD on the backbone's output."""
    return [{"target acc %": _pm(r["target_acc_mean"], r["target_acc_std"]), "row": r["row"],
             "source acc %": _pm(r["source_acc_mean"], r["source_acc_std"]),
             "PAD: what the discriminator sees": _pm(r.get("pad_seen_mean", float("nan")),
                                                     r.get("pad_seen_std", float("nan")), 1.0, 2),
             "PAD: backbone output": _pm(r["pad_mean"], r["pad_std"], 1.0, 2), "seeds": r["seeds"],
             "GRL at": r["GRL at"], "min / run": round(r["minutes_per_run"], 1)} for r in rows]


def verdict(rows: list[dict]) -> str:
    """One or two sentences: which row is best on the target, by how much over source only, and whether that gap is
    larger than the spread over seeds."""
    done = [r for r in rows if r["target_acc_mean"] == r["target_acc_mean"]]
    if not done:
        return "Nothing finished yet."
    best = max(done, key=lambda r: r["target_acc_mean"])
    base = next((r for r in done if r["method"] == "none"), None)
    acc = f"{best['target_acc_mean'] * 100:.1f} %"
    if base is None:
        return (f"Best on the target: {best['row']} ({acc}); no source-only row was run, so there is no baseline "
                "to judge the gain by.")
    if best is base:
        return (f"No adversarial row beat source only ({acc} on the target): on this task, backbone and budget the "
                "discriminator does not help.")
    gain = (best["target_acc_mean"] - base["target_acc_mean"]) * 100
    head = f"{best['row']} is best on the target ({acc}), {gain:.1f} points above source only"
    if min(best["seeds"], base["seeds"]) < 2:
        return f"{head}. One seed only: run 3 seeds (0, 1, 2) to tell a real gain from chance."
    spread = math.hypot(best["target_acc_std"], base["target_acc_std"]) * 100
    if gain > 2 * spread:
        return f"{head}, well beyond the spread over seeds (± {spread:.1f}): adaptation helps here."
    return f"{head}, within the spread over seeds (± {spread:.1f}): no clear gain over source only."
