"""Numbers reported elsewhere, shown beside ours for reference only (the tab, result.json, seed_reference.csv), and
the rows that put ours beside them for the same task and backbone."""
from __future__ import annotations

# The seed's reported numbers (ResNet-50, 32 × 32 × 3, USPS → MNIST, DANN; λ = 0.001 constant was its best).
SEED_REFERENCE = [
    {"placement": "none", "GRL at": "no GRL (source only)", "source acc %": 95.20, "target acc %": 53.57},
    {"placement": "stage1", "GRL at": "backbone output", "source acc %": 99.62, "target acc %": 73.33},
    {"placement": "stage2", "GRL at": "after the classifier's first dense layer", "source acc %": 76.42,
     "target acc %": 35.39},
    {"placement": "stage3", "GRL at": "after the classifier's output", "source acc %": 98.36, "target acc %": 55.76},
]
# Published LeNet figures (target accuracy %), as quoted in issue 18 (Transfer-Learning-Library's digits benchmark).
PUBLISHED_LENET = {
    "usps-mnist": {"none": 74.6, "dann": 95.2, "cdan": 97.7},
    "mnist-usps": {"none": 82.1, "dann": 91.7, "cdan": 96.0},
}
PUBLIC_REFERENCE = ("Published (LeNet, target accuracy): USPS → MNIST source only 74.6 %, DANN 95.2 %, CDAN 97.7 %; "
                    "MNIST → USPS 82.1 / 91.7 / 96.0 % (Transfer-Learning-Library, as quoted in issue 18).")


def _pct(mean: float | None, std: float | None = None) -> str:
    if mean is None or mean != mean:
        return "–"
    return f"{mean * 100:.2f}" + ("" if std is None or std != std else f" ± {std * 100:.2f}")


def beside_reference(rows: list[dict], task: str, backbone: str) -> list[dict]:
    """Our rows beside the reported ones for the same task and backbone (empty when nothing was reported for it):
    the seed's ResNet-50 table per placement (our DANN row there), or the published LeNet figures per method (our
    best placement of that method)."""
    ours = {(r["placement"], r["method"]): r for r in rows}
    if backbone == "resnet50" and task == "usps-mnist":
        out = []
        for ref in SEED_REFERENCE:
            key = ("none", "none") if ref["placement"] == "none" else (ref["placement"], "dann")
            row = ours.get(key)
            out.append({"placement": ref["placement"], "target acc %: ours": _pct(*_mean_std(row, "target")),
                        "target acc %: the seed's": f"{ref['target acc %']:.2f}",
                        "source acc %: ours": _pct(*_mean_std(row, "source")),
                        "source acc %: the seed's": f"{ref['source acc %']:.2f}"})
        return out
    if backbone == "lenet" and task in PUBLISHED_LENET:
        out = []
        for method, published in PUBLISHED_LENET[task].items():
            mine = [r for r in rows if r["method"] == method]
            best = max(mine, key=lambda r: r["target_acc_mean"], default=None)
            out.append({"method": method, "target acc %: ours (best placement)": _pct(*_mean_std(best, "target")),
                        "at": best["placement"] if best else "not run", "target acc %: published": f"{published:.1f}"})
        return out
    return []


def _mean_std(row: dict | None, side: str) -> tuple[float | None, float | None]:
    if row is None:
        return None, None
    return row[f"{side}_acc_mean"], row[f"{side}_acc_std"]
