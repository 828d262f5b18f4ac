"""How good are samples of the unseen domain: FID/KID with classifier features against held-out target images
(same n, next to the real-vs-real floor), diversity, and the nearest-neighbour copy check; and their table rows."""
from __future__ import annotations

import torch

from lab.config import get_settings
from lab.experiments.discovery.config import DiscoveryConfig, SamplingSettings
from lab.experiments.discovery.data import TargetData
from lab.progress import ProgressFn

# classifiers whose features suit a target domain (FID, diversity); styled variants have none
FEATURE_CLASSIFIERS = {"fashion": "classifier-fashion", "mnist": "classifier-mnist", "usps": "classifier-mnist",
                       "digits": "classifier-mnist"}


def feature_classifier(config: DiscoveryConfig) -> tuple[str | None, str]:
    """(classifier for FID/diversity, a note when there is none)."""
    if config.classifier not in ("", "auto"):
        return (None, "No feature classifier chosen: FID and feature diversity are skipped.") \
            if config.classifier == "none" else (config.classifier, "")
    name = FEATURE_CLASSIFIERS.get(config.target) if config.target_style == "plain" else None
    if name is None:
        styled = config.target + ("-" + config.target_style if config.target_style != "plain" else "")
        return None, (f"No classifier suited to {styled} is shipped: FID and feature diversity are skipped (name one "
                      "under 'Feature classifier').")
    if not (get_settings().checkpoint_dir / name).is_dir():
        return None, (f"The feature classifier {name} is not in {get_settings().checkpoint_dir}: FID is skipped "
                      f"(train it: python -m lab train classifier --data {config.target} --out checkpoints/{name}).")
    return name, ""


def heldout_needed(settings: SamplingSettings) -> int:
    """Held-out images to load: 2n for FID and its floor, at least 1000 for the copy scale; none without metrics."""
    return max(1000, 2 * (settings.fid_n or settings.count)) if settings.metrics else 0


def evaluate(samples: torch.Tensor, target: TargetData, classifier: str | None, fid_n: int | None = None,
             copy_ratio: float = 0.5, with_floor: bool = True, progress: ProgressFn | None = None) -> dict:
    """FID/KID of ``samples`` against held-out target images (same n), the floor, diversity, copies."""
    from lab.metrics.diversity import copy_report, diversity_report
    from lab.metrics.fid import fid_kid

    out: dict = {"n_samples": len(samples)}
    copies = copy_report(samples, target.fewshot, target.heldout, ratio=copy_ratio)
    out["copies"] = {k: v for k, v in copies.items() if k != "nearest_index"}
    out["nearest_index"] = copies["nearest_index"]
    out["diversity"] = diversity_report(samples, classifier)
    out["diversity_fewshot"] = diversity_report(target.fewshot, classifier)
    if classifier is None or target.heldout is None:
        out["fid"] = None
        return out
    n = min(fid_n or len(samples), len(samples), len(target.heldout))
    if n < 2:
        out["fid"] = None
        return out
    if progress is not None:
        progress(0, 2, "Computing FID")
    reference = target.heldout[:n]
    out["fid"] = fid_kid(samples[:n], reference, "classifier", classifier).as_dict()
    out["diversity_real"] = diversity_report(reference, classifier)
    out["floor"] = None
    if with_floor and len(target.heldout) >= 2 * n:
        out["floor"] = fid_kid(target.heldout[n:2 * n], reference, "classifier", classifier).as_dict()
    if progress is not None:
        progress(2, 2, "Computing FID")
    return out


def judge(samples: torch.Tensor, target: TargetData, config: DiscoveryConfig, settings: SamplingSettings,
          notes: list[str], progress: ProgressFn | None = None) -> tuple[dict, list[int]]:
    """(the metrics ``settings`` ask for — none when switched off —, each sample's nearest few-shot image), with
    the feature classifier ``config`` names; a note joins ``notes`` when none suits the domain."""
    from lab.metrics.diversity import copy_report

    if not settings.metrics:
        return {}, copy_report(samples, target.fewshot, target.heldout, settings.copy_ratio)["nearest_index"]
    classifier, note = feature_classifier(config)
    notes += [note] if note else []
    metrics = evaluate(samples, target, classifier, settings.fid_n, settings.copy_ratio, progress=progress)
    return metrics, metrics["nearest_index"]


def metric_rows(label: str, metrics: dict) -> dict:
    """The table row of one sample set."""
    fid, floor = metrics.get("fid"), metrics.get("floor")
    div = metrics["diversity"]
    return {"samples": label, "n": metrics["n_samples"],
            "FID (classifier features)": None if fid is None else round(fid["fid"], 3),
            "KID": None if fid is None or fid["kid"] is None else round(fid["kid"], 4),
            "FID n": None if fid is None else fid["n"],
            "real-vs-real floor": None if floor is None else round(floor["fid"], 3),
            "diversity (features)": round(div["diversity_features"], 3) if "diversity_features" in div else None,
            "diversity (pixels RMS)": round(div["diversity_pixels"], 4),
            "NN distance to few-shot (median)": round(metrics["copies"]["nn_distance_median"], 4),
            "copy fraction": round(metrics["copies"]["nn_copy_fraction"], 4)}


def real_rows(metrics: dict) -> list[dict]:
    """Reference rows: the held-out real images and the few-shot set themselves."""
    rows = []
    if metrics.get("diversity_real"):
        d = metrics["diversity_real"]
        rows.append({"samples": "real held-out (reference)", "n": d["n"],
                     "diversity (features)": round(d.get("diversity_features", float("nan")), 3),
                     "diversity (pixels RMS)": round(d["diversity_pixels"], 4),
                     "NN distance to few-shot (median)": round(metrics["copies"]["real_nn_distance_median"], 4)})
    d = metrics["diversity_fewshot"]
    rows.append({"samples": "few-shot set", "n": d["n"],
                 "diversity (features)": round(d["diversity_features"], 3) if "diversity_features" in d else None,
                 "diversity (pixels RMS)": round(d["diversity_pixels"], 4)})
    return rows


def sample_rows(label: str, metrics: dict) -> list[dict]:
    """The samples' row and the reference rows (none without metrics)."""
    return [metric_rows(label, metrics), *real_rows(metrics)] if metrics else []
