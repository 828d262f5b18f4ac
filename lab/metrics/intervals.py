"""How far a figure from a small sample could move: the Wilson interval of a fraction (accuracy, confident
fraction), a bootstrap interval of any statistic over samples (FID of a few samples), and the sample sizes
below which a table should say that its figure is not stable."""
from __future__ import annotations

import math
from typing import Callable

import torch

FRACTION_STABLE_N = 100   # below this, a fraction's 95 % interval is wider than ±10 points
FID_STABLE_N = 1000       # below this, FID carries a bias of the order of its differences (it falls as n grows)


def wilson(fraction: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % for z = 1.96) of a fraction observed on ``n`` trials; (0, 1) for n = 0."""
    if n <= 0 or fraction != fraction:
        return 0.0, 1.0
    p = min(max(float(fraction), 0.0), 1.0)
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(statistic: Callable[[torch.Tensor], float | None], samples: torch.Tensor, reps: int = 50,
              seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """The percentile interval of ``statistic`` over ``reps`` resamples (with replacement) of ``samples``' rows;
    None when fewer than two resamples give a value."""
    if len(samples) < 2:
        return None
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(reps):
        value = statistic(samples[torch.randint(0, len(samples), (len(samples),), generator=g)])
        if value is not None and value == value:
            values.append(float(value))
    if len(values) < 2:
        return None
    values.sort()
    tail = (1 - level) / 2
    pick = lambda q: values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]  # noqa: E731
    return pick(tail), pick(1 - tail)


def interval_text(interval: tuple[float, float] | None, percent: bool = False, digits: int = 3) -> str:
    """``0.41–0.92`` (or ``41–92 %``) for a table cell; empty for None."""
    if interval is None:
        return ""
    lo, hi = interval
    if percent:
        return f"{100 * lo:.0f}–{100 * hi:.0f} %"
    return f"{lo:.{digits}g}–{hi:.{digits}g}"
