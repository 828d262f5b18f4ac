"""The independent judge of a conditional run: a classifier never used by any method says whether each sample is
of the requested class (conditional accuracy), and its features give FID per class and overall against real
images of the same classes (with the real-vs-real floor)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import torch

from lab.errors import LabError
from lab.metrics.fid_features import fid_from_features
from lab.metrics.intervals import FID_STABLE_N, FRACTION_STABLE_N, bootstrap, interval_text, wilson
from lab.models.labels import LabelSpec
from lab.progress import ProgressFn


def find_judge(data: dict, spec: LabelSpec, judge: str = "auto") -> str:
    """The judge classifier: given, or the shipped one trained on the same data and labels."""
    from lab.models.store import list_models, read_info, resolve_model_path

    if judge and judge != "auto":
        return str(resolve_model_path(judge))
    name = data.get("name")
    for candidate in list_models("classifier"):
        info = read_info(resolve_model_path(candidate))
        d = info.get("data", {})
        names = tuple(info.get("labels", {}).get("names") or d.get("classes") or ())
        if d.get("name") == name and names == spec.names:
            return str(resolve_model_path(candidate))
    target = data.get("condition_on", "class")
    extra = f" --condition-on {target}" if target not in ("class", None) else ""
    raise LabError(f"No judge classifier for {name or 'this data'} ({', '.join(spec.names)}) among the shipped "
                   f"models. Train one: `python -m lab train judge --data {name}{extra} --out "
                   f"checkpoints/classifier-{name}`, or choose one.")


def judge_outputs(judge, images: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, 128-d features) of the judge ConvNet for [-1, 1] images, quantized to 8 bits first exactly as
    ``lab.metrics.fid`` feeds torch-fidelity, so the FIDs below equal ``fid_kid``'s."""
    from lab.metrics.classify import outputs

    return outputs(judge, images, batch_size, features=True, quantize=True)


def real_by_row(data: dict, spec: LabelSpec, rows: list[int], size: int, channels: int,
                per_row: int = 1000, split: str = "test") -> dict[int, torch.Tensor]:
    """Up to ``per_row`` real images of each requested class (attribute present), [-1, 1]."""
    from lab.train.conditional import conditional_data

    name = data.get("name")
    if not name:
        raise LabError("This model does not say which data it was trained on, so there is no real reference.")
    d = conditional_data(name.split("-")[0], split, size, channels, None, data.get("style", "plain"),
                         condition_on=data.get("condition_on") if data.get("condition_on") != "class" else None)
    out = {}
    for r in rows:
        hit = d.labels == r if spec.kind == "class" else d.labels[:, r] > 0
        idx = hit.nonzero().squeeze(1)
        g = torch.Generator().manual_seed(r)
        idx = idx[torch.randperm(len(idx), generator=g)[:per_row]]
        out[r] = d.images.subset(idx).to_float()
    return out


def real_reference(judge_path: str, data: dict, spec: LabelSpec, rows: list[int], size: int, channels: int,
                   per_row: int = 1000, split: str = "test") -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """The judge's (logits, features) of the real images of each row; cached per judge, data and rows."""
    from pathlib import Path

    weights = sorted(Path(judge_path).glob("*.safetensors"))
    stamp = weights[0].stat().st_mtime if weights else 0.0
    key = (str(judge_path), stamp, data.get("name"), data.get("style", "plain"), data.get("condition_on"),
           spec, tuple(rows), size, channels, per_row, split)
    return _real_reference(key)


@lru_cache(maxsize=8)
def _real_reference(key) -> dict:
    from lab.models.store import load_classifier

    judge_path, _, name, style, condition_on, spec, rows, size, channels, per_row, split = key
    data = {"name": name, "style": style, "condition_on": condition_on}
    judge = load_classifier(judge_path)
    images = real_by_row(data, spec, list(rows), size, channels, per_row, split)
    return {r: judge_outputs(judge, x) for r, x in images.items()}


@dataclass
class Metrics:
    n: int                                   # samples measured
    accuracy: float                          # overall conditional accuracy
    per_class: list[dict]                    # class, n, accuracy, FID, n_reference
    fid: float | None
    fid_floor: float | None                  # real train vs real test, same n
    accuracy_floor: float                    # the judge on real test images of the same classes
    judge: str
    features: torch.Tensor = field(repr=False, default=None)   # the judge's 128-d features of the samples
    predicted: torch.Tensor = field(repr=False, default=None)  # the judge's top class
    correct: torch.Tensor = field(repr=False, default=None)    # the judge agrees with the requested label
    notes: list[str] = field(default_factory=list)             # what a small sample means for these figures


def measure(samples: torch.Tensor, labels: torch.Tensor, rows: list[int], spec: LabelSpec, data: dict,
            judge_path: str, fid: bool = True, progress: ProgressFn | None = None, intervals: bool = True) -> Metrics:
    """Conditional accuracy and FID (judge features, torch-fidelity's formula) per class and overall; with
    ``intervals``, a bootstrap interval of each per-class FID measured from fewer than ``FID_STABLE_N`` samples."""
    from lab.models.store import load_classifier

    judge = load_classifier(judge_path)
    if judge.config.num_classes != spec.num:
        raise LabError(f"The judge {judge_path} has {judge.config.num_classes} outputs, the model {spec.num} "
                       f"labels ({', '.join(spec.names)}): choose a judge of the same labels.")
    size, channels = samples.shape[-1], samples.shape[1]
    if progress is not None:
        progress(0, 2, "Judging the samples")
    logits, feats = judge_outputs(judge, samples)
    correct = spec.correct(logits, labels)
    real = real_reference(judge_path, data, spec, rows, size, channels)
    per_class, real_hits, real_n = [], 0.0, 0
    for r in rows:
        mine = (labels == r) if spec.kind == "class" else (labels[:, r] > 0) & (labels.abs().sum(1) == 1)
        real_logits, real_feats = real[r]
        want = spec.row_labels([r]).repeat(len(real_logits), *([1] * (spec.row_labels([r]).ndim - 1)))
        real_ok = spec.correct(real_logits, want).float()
        real_hits, real_n = real_hits + real_ok.sum().item(), real_n + len(real_ok)
        n_row = int(mine.sum())
        share = correct[mine].float().mean().item()
        row = {"class": spec.names[r], "n": n_row, "accuracy": round(share, 4),
               "accuracy 95 % (Wilson)": interval_text(wilson(share, n_row), percent=True),
               "accuracy (real)": round(real_ok.mean().item(), 4)}
        if fid:
            value = fid_from_features(feats[mine], real_feats)
            row["FID"] = None if value is None else round(value, 3)
            if intervals and value is not None and n_row < FID_STABLE_N:
                spread = bootstrap(lambda x: fid_from_features(x, real_feats), feats[mine], reps=BOOTSTRAP_REPS,
                                   seed=r)
                row["FID 95 % (bootstrap)"] = interval_text(spread, digits=4)
            row["n reference"] = len(real_feats)
        per_class.append(row)
    overall = floor = None
    if fid:
        if progress is not None:
            progress(1, 2, "FID")
        real_all = torch.cat([real[r][1] for r in rows])
        overall = fid_from_features(feats, real_all)
        train = real_reference(judge_path, data, spec, rows, size, channels,
                               per_row=max(2, len(samples) // len(rows)), split="train")
        floor = fid_from_features(torch.cat([train[r][1] for r in rows]), real_all)
    if progress is not None:
        progress(2, 2, "Measured")
    notes = small_sample_notes(min(row["n"] for row in per_class) if per_class else 0, len(samples), fid)
    return Metrics(len(samples), correct.float().mean().item(), per_class, overall, floor,
                   real_hits / max(real_n, 1), judge_path, feats, logits.argmax(1), correct, notes)


BOOTSTRAP_REPS = 50   # resamples of each class's samples for its FID interval (≈ 0.5 s per class)


def small_sample_notes(per_class: int, total: int, fid: bool) -> list[str]:
    """What the sample sizes allow one to read into the figures (none when they are large enough)."""
    notes = []
    if fid and per_class < FID_STABLE_N:
        notes.append(f"Per-class FID from n = {per_class} samples per class is not stable: FID is biased upwards at "
                     f"small n (it falls as n grows), so compare FIDs only at equal n, and use n ≥ {FID_STABLE_N:,} "
                     "per class for a figure to quote; the bootstrap interval shows how far each could move.")
    if fid and total < FID_STABLE_N:
        notes.append(f"The overall FID uses n = {total} samples: read it next to the real-vs-real floor at the same "
                     "n, not against FIDs measured at other n.")
    if per_class < FRACTION_STABLE_N:
        notes.append(f"Per-class accuracy from n = {per_class} per class moves in steps of "
                     f"{100 / max(per_class, 1):.0f} points; its Wilson 95 % interval is in the table.")
    return notes
