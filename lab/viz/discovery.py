"""The Domain-discovery figures and image layouts: sample and reconstruction grids, samples beside their
nearest few-shot image, PSNR against t0, latent norm/angle densities and the geometric filter's scatter."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from lab.diffusion.latents import MEASURES, GeometryThresholds
from lab.viz.grids import image_grid
from lab.viz.plots import line_figure, scatter_figure


def grid_scale(images: torch.Tensor, columns: int) -> int:
    """Nearest-neighbour upscaling that makes a grid of small images ≈ 320 px wide (none from 64 px up)."""
    size = images.shape[-1]
    return max(1, 320 // (size * max(columns, 1)) + 1) if size < 64 else 1


def samples_grid(samples: torch.Tensor, limit: int = 100, columns: int = 10) -> Image.Image:
    """The first ``limit`` samples, ``columns`` per row."""
    columns = min(columns, len(samples))
    return image_grid(samples[:limit], nrow=columns, scale=grid_scale(samples, columns))


def nearest_pairs_grid(samples: torch.Tensor, fewshot: torch.Tensor, nearest, columns: int = 8) -> Image.Image:
    """Row pairs: samples, and under each its nearest few-shot image (the copy check, by eye)."""
    k = min(len(samples), 4 * columns)
    rows = []
    for start in range(0, k, columns):
        idx = torch.arange(start, min(start + columns, k))
        rows += [samples[idx], fewshot[torch.as_tensor(nearest)[idx]]]
    return image_grid(torch.cat(rows), nrow=columns, scale=grid_scale(samples, columns))


def reconstruction_grid(pairs: list[tuple[torch.Tensor, torch.Tensor]], columns: int) -> Image.Image:
    """For each (originals, reconstructions) a row of the first ``columns`` originals and one of their
    reconstructions."""
    rows = [t[:columns] for pair in pairs for t in pair]
    return image_grid(torch.cat(rows), nrow=columns, scale=grid_scale(rows[0], columns))


def psnr_figure(rows: list[dict], t0s: list[int], domains: list[str], steps: int):
    """Mean ± std reconstruction PSNR against t0, one line per domain (``rows``: one per domain and t0, with
    "domain" the first word of the domain's name)."""
    def of(domain: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["domain"] == domain.split(" ")[0]]

    return line_figure(t0s, {d: of(d, "psnr_mean") for d in domains},
                       f"DDIM reconstruction (η = 0, {steps} steps) by inversion depth", "t0",
                       "PSNR (dB, mean ± std)", errors={d: of(d, "psnr_std") for d in domains})


def density_figure(values: dict[str, np.ndarray], title: str, xlabel: str, bins: int = 40):
    """Histogram densities of several sets on shared bins, one line per set."""
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    if hi <= lo:
        hi = lo + 1e-6
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    series = {k: np.histogram(v, bins=edges, density=True)[0].tolist() for k, v in values.items()}
    return line_figure(centres.tolist(), series, title, xlabel, "density", markers=False)


def geometry_figure(shown: dict[str, torch.Tensor], ref_measures: dict, thresholds: GeometryThresholds):
    """Angle at the origin against pair angle: proposals (accepted, rejected; rows of ``MEASURES``) and the
    inverted few-shot latents themselves (leave one out), with the accepted box when both angles are checked."""
    columns = list(MEASURES)
    points, groups = [], []
    for key in ("rejected", "accepted"):
        m = shown.get(key, torch.zeros(0, len(columns)))
        points.append(m)
        groups += [f"proposal {key}"] * len(m)
    refs = torch.stack([ref_measures[c] for c in columns], 1)
    points.append(refs)
    groups += ["inverted few-shot (leave-one-out)"] * len(refs)
    allm = torch.cat(points)
    hover = [f"‖z‖ = {row[0]:.2f}" for row in allm.tolist()]
    xi, yi = columns.index("origin_angle"), columns.index("pair_angle")
    fig = scatter_figure(allm[:, [xi, yi]].numpy(), groups, "Geometric filter: proposals against the inverted set",
                         hover=hover)
    if thresholds.origin_angle and thresholds.pair_angle:
        (x0, x1), (y0, y1) = thresholds.origin_angle, thresholds.pair_angle
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line=dict(color="green", dash="dash"))
    fig.update_layout(xaxis=dict(showticklabels=True, title="mean angle at the origin to the inverted set (°)"),
                      yaxis=dict(showticklabels=True, title="mean pair angle ∠ r_i z r_j (°)"))
    return fig
