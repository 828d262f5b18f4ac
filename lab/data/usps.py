"""USPS in its renderings, and the map that brings ``usps.h5`` onto the standard one (``load_usps`` in
``lab.data.sources`` reads through here).

* ``libsvm`` — LIBSVM's ``usps.bz2`` / ``usps.t.bz2`` as ``torchvision.datasets.USPS`` reads them (values in [−1, 1]
  to ``((v + 1) / 2 · 255)`` truncated to uint8): the USPS of published numbers. Preferred whenever the file of a
  split is there (or, online, can be downloaded).
* ``h5`` — the Kaggle-style ``usps.h5`` as stored: compared image by image with the LIBSVM test file (same images,
  same labels), a per-image contrast stretch of the standard images, clipped (strokes saturate at 1.0, 11 % of the
  pixels; the background at 0, 58 %), and slightly sharper (a 3 × 3 neighbourhood fits it far better than a
  pointwise map). A mean |Δ| of 22 grey levels as it is.
* ``h5-mapped`` — ``usps.h5`` brought onto the LIBSVM rendering by a map fitted on the other split, where both
  renderings exist (here: the test split; 136 numbers, no labels used): per image, the two ends (lo, hi) of the
  stretch are predicted linearly from the h5 image's mean, spread and saturated fractions, the image is
  un-stretched to lo + h (hi − lo), and a linear regression over each pixel's 5 × 5 neighbourhood of the
  un-stretched image and of the two saturation masks gives the standard value (least squares over every pixel),
  rounded and clipped to [0, 255]. Used for a split whose LIBSVM file is missing when the other split's LIBSVM file
  is there (here: the train split). ``mapping_report`` measures it on held-out test images (fitted on one half of
  the test split, measured on the other): mean |Δ| 1.97 grey levels (22.2 as stored); 2.9 on unsaturated pixels,
  1.2 on pixels the stretch sent to 0 and 3.3 on those it sent to 1.0 (11 % of the pixels, whose standard value
  lay anywhere above the stretch's upper end: what the neighbourhood cannot tell is unrecoverable); 99 % of the
  pixels within 10 grey levels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lab.config import get_settings
from lab.data.imageset import ImageSet
from lab.errors import LabError

DIGITS = [str(i) for i in range(10)]
LIBSVM_FILES = {"train": "usps.bz2", "test": "usps.t.bz2"}
RENDERINGS = {
    "libsvm": "the standard USPS (LIBSVM usps.bz2 / usps.t.bz2, read as torchvision.datasets.USPS reads them)",
    "h5-mapped": "usps.h5 mapped onto the standard rendering (its per-image contrast stretch inverted by a map "
                 "fitted on the other split, where both renderings exist)",
    "h5": "usps.h5 as stored (a per-image contrast stretch of the standard images, clipped: not the USPS of "
          "published numbers)",
}
NEIGHBOURHOOD = 5          # the map's window (pixels)
MAP_VERSION = 1            # part of the cache key of mapped images


def folder() -> Path:
    return get_settings().data_dir / "usps"


def _libsvm_there(split: str) -> bool:
    return (folder() / LIBSVM_FILES[split]).exists()


def usps_rendering(split: str) -> str:
    """Which rendering ``load_usps(split)`` gives with the files in LAB_DATA_DIR/usps now (see ``RENDERINGS``)."""
    other = "test" if split == "train" else "train"
    if _libsvm_there(split) or (not (folder() / "usps.h5").exists() and not get_settings().offline):
        return "libsvm"
    if not (folder() / "usps.h5").exists():
        raise _missing(split)
    return "h5-mapped" if _libsvm_there(other) else "h5"


def rendering_note(split: str, rendering: str) -> str:
    return f"USPS {split}: {rendering} — {RENDERINGS[rendering]}"


def _missing(split: str) -> LabError:
    return LabError(f"USPS ({split}) was not found at {folder()}. Put LIBSVM's usps.bz2 and usps.t.bz2 there (the "
                    "standard USPS, as torchvision reads it), or usps.h5 (train/data, train/target, test/data, "
                    f"test/target). (The data directory is set by LAB_DATA_DIR, now {get_settings().data_dir}.)")


def read_libsvm(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [N, 1, 16, 16] images and labels exactly as ``torchvision.datasets.USPS`` gives them (downloading the
    file when it is missing and the lab is online)."""
    import torchvision

    settings = get_settings()
    try:
        ds = torchvision.datasets.USPS(root=str(folder()), train=split == "train",
                                       download=not settings.offline and not _libsvm_there(split))
    except Exception as err:  # a damaged file, no network, a read-only folder
        raise LabError(f"USPS ({split}): LIBSVM's {LIBSVM_FILES[split]} could not be read from {folder()} "
                       f"({type(err).__name__}: {err}).") from err
    images = torch.from_numpy(np.asarray(ds.data, dtype=np.uint8).copy()).unsqueeze(1)
    return images, torch.as_tensor(ds.targets, dtype=torch.long)


def read_h5(split: str) -> tuple[np.ndarray, torch.Tensor]:
    """The h5's float images in [0, 1] [N, 16, 16] and labels."""
    import h5py

    with h5py.File(folder() / "usps.h5", "r") as f:
        group = f["train" if split == "train" else "test"]
        data = np.asarray(group["data"], dtype=np.float64).reshape(-1, 16, 16)
        target = np.asarray(group["target"], dtype=np.int64)
    return data, torch.from_numpy(target)


def h5_as_stored(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.round(data * 255).clip(0, 255).astype(np.uint8)).unsqueeze(1)


# --- the map from the h5 rendering onto the standard one ------------------------------------------------------

def _image_stats(h: np.ndarray) -> np.ndarray:
    flat = h.reshape(len(h), -1)
    return np.stack([np.ones(len(flat)), flat.mean(1), flat.std(1), (flat > 0.999).mean(1), (flat < 0.001).mean(1)],
                    1)


def _stretch_ends(standard: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the standard values the h5 stretch sent to 0 and to 1 (an affine fit on unsaturated pixels)."""
    lo, hi = np.full(len(h), np.nan), np.full(len(h), np.nan)
    for i in range(len(h)):
        keep = (h[i] > 0.001) & (h[i] < 0.999)
        if keep.sum() >= 3 and np.ptp(standard[i][keep]) > 0:   # else the image says nothing about its stretch
            a, b = np.polyfit(standard[i][keep], h[i][keep], 1)
            if abs(a) > 1e-6:
                lo[i], hi[i] = -b / a, (1 - b) / a
    return lo, hi


def _windows(x: np.ndarray, k: int) -> np.ndarray:
    r = k // 2
    padded = np.pad(x, ((0, 0), (r, r), (r, r)))
    return np.stack([padded[:, r + dy:16 + r + dy, r + dx:16 + r + dx] for dy in range(-r, r + 1)
                     for dx in range(-r, r + 1)], -1)


def _design(h: np.ndarray, ends: np.ndarray, k: int) -> np.ndarray:
    stats = _image_stats(h)
    lo, hi = (stats @ ends[0])[:, None, None], (stats @ ends[1])[:, None, None]
    unstretched = lo + h * (hi - lo)
    top, bottom = (h > 0.999).astype(np.float64), (h < 0.001).astype(np.float64)
    wt, wb = _windows(top, k), _windows(bottom, k)
    return np.concatenate([_windows(unstretched, k), wt * hi[..., None], wb * lo[..., None], wt, wb,
                           np.ones(h.shape + (1,))], -1)


class RenderingMap:
    """The h5 → standard map (see the module docstring): ``fit(standard, h5)`` on paired images in [0, 1],
    ``apply(h5) -> uint8 [N, 1, 16, 16]``."""

    def __init__(self, k: int = NEIGHBOURHOOD):
        self.k, self.ends, self.weights = k, None, None

    def fit(self, standard: np.ndarray, h: np.ndarray) -> "RenderingMap":
        lo, hi = _stretch_ends(standard, h)
        stats, ok = _image_stats(h), np.isfinite(lo) & np.isfinite(hi)
        if ok.sum() < 10:
            raise LabError("Too few USPS images to fit the map from usps.h5 onto the standard rendering.")
        self.ends = (np.linalg.lstsq(stats[ok], lo[ok], rcond=None)[0],
                     np.linalg.lstsq(stats[ok], hi[ok], rcond=None)[0])
        gram, moment = 0.0, 0.0
        for i in range(0, len(h), 256):  # normal equations in chunks: the design matrix is big
            x = _design(h[i:i + 256], self.ends, self.k).reshape(-1, self.parameters_per_pixel)
            gram, moment = gram + x.T @ x, moment + x.T @ standard[i:i + 256].reshape(-1)
        self.weights = np.linalg.solve(gram + 1e-8 * np.eye(len(gram)), moment)
        return self

    @property
    def parameters_per_pixel(self) -> int:
        return 5 * self.k * self.k + 1

    def predict(self, h: np.ndarray) -> np.ndarray:
        out = [_design(h[i:i + 256], self.ends, self.k) @ self.weights for i in range(0, len(h), 256)]
        return np.clip(np.concatenate(out), 0.0, 1.0)

    def apply(self, h: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.round(self.predict(h) * 255).astype(np.uint8)).unsqueeze(1)


def _paired(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The standard and the h5 rendering of the same ``split`` (both files are there), in [0, 1]."""
    standard, labels = read_libsvm(split)
    h, h_labels = read_h5(split)
    if len(h) != len(standard) or not torch.equal(labels, h_labels):
        raise LabError(f"usps.h5's {split} split and LIBSVM's {LIBSVM_FILES[split]} do not hold the same images in the "
                       "same order: the h5 cannot be mapped onto the standard rendering.")
    return standard.squeeze(1).numpy().astype(np.float64) / 255, h


def fitted_map(split: str = "test") -> RenderingMap:
    """The map fitted on ``split``, the split whose two renderings are both there."""
    return RenderingMap().fit(*_paired(split))


def mapping_report(seed: int = 0) -> dict:
    """How close the map gets, on test images it was not fitted on (fitted on a random half of the test split,
    measured on the other half): mean |Δ| in grey levels (0–255) against the standard rendering, as stored and
    mapped, on all pixels, the unsaturated ones and those the stretch saturated at 0 and at 1."""
    standard, h = _paired("test")
    order = np.random.default_rng(seed).permutation(len(h))
    fit, held = order[: len(h) // 2], order[len(h) // 2:]
    mapped = RenderingMap().fit(standard[fit], h[fit]).apply(h[held]).squeeze(1).numpy().astype(np.float64)
    truth, raw = standard[held] * 255, np.round(h[held] * 255)
    masks = {"all": np.ones_like(truth, bool), "unsaturated": (h[held] > 0.001) & (h[held] < 0.999),
             "saturated_at_1": h[held] >= 0.999, "saturated_at_0": h[held] <= 0.001}
    report = {"held_out_images": len(held), "parameters": RenderingMap().parameters_per_pixel + 10}
    for name, mask in masks.items():
        report[name] = {"fraction": float(mask.mean()), "stored_mad": float(np.abs(raw - truth)[mask].mean()),
                        "mapped_mad": float(np.abs(mapped - truth)[mask].mean())}
    report["mapped_p99_abs"] = float(np.percentile(np.abs(mapped - truth), 99))
    return report


def read_usps(split: str, rendering: str = "auto") -> ImageSet:
    """One USPS split in ``rendering`` ('auto': ``usps_rendering(split)``), with a note naming it."""
    rendering = usps_rendering(split) if rendering == "auto" else rendering
    if rendering not in RENDERINGS:
        raise LabError(f"Unknown USPS rendering {rendering!r}: choose one of {', '.join(RENDERINGS)}.")
    if rendering == "libsvm":
        images, labels = read_libsvm(split)
    elif not (folder() / "usps.h5").exists():
        raise _missing(split)
    else:
        h, labels = read_h5(split)
        other = "test" if split == "train" else "train"
        images = fitted_map(other).apply(h) if rendering == "h5-mapped" else h5_as_stored(h)
    return ImageSet("usps", images, labels, DIGITS, notes=[rendering_note(split, rendering)])
