"""``run_dann``: train one label network per (placement, method, seed) of a config on its task, and measure the proxy
A-distance between the domains: on the raw test images, on each run's backbone features and on what each run's
discriminator actually sees (the tap, or CDAN's features ⊗ predictions); for the source-only run at every vector
placement (the "before" of each adversarial row)."""
from __future__ import annotations

import time
from dataclasses import asdict

from lab.errors import LabError
from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.data import load_task
from lab.experiments.dann.results import DANNResult
from lab.metrics.domain import proxy_a_distance
from lab.progress import ProgressFn, part
from lab.train.dann import train_dann

PAD_VIEWS = {"features": "backbone", "seen": "seen", "hidden": "hidden", "logits": "logits"}


def _pad(source, target, **kwargs) -> dict:
    if min(len(source), len(target)) < 4:  # a tiny test set: no meaningful distance
        return {"pad": float("nan"), "domain_error": float("nan"), "n_per_domain": min(len(source), len(target))}
    return proxy_a_distance(source, target, **kwargs).as_dict()


def run_pads(features: dict, seed: int = 0) -> dict:
    """PAD per view a run's features hold (backbone, seen, hidden, logits)."""
    src, tgt = features.get("source", {}), features.get("target", {})
    return {name: _pad(src[key], tgt[key], seed=seed)["pad"] for key, name in PAD_VIEWS.items()
            if key in src and key in tgt}


def reusable_runs(config: DANNConfig, previous: DANNResult | None) -> dict:
    """The finished runs of ``previous`` (a stopped comparison) that ``config`` can keep: same task, data and
    training settings (the placements, methods and seeds may differ); a LabError naming the settings that differ."""
    if previous is None:
        return {}
    free = {"placements", "methods", "seeds"}
    mine, theirs = asdict(config), asdict(previous.config)
    differ = sorted(k for k in mine if k not in free and mine[k] != theirs.get(k))
    if differ:
        raise LabError(f"The run to resume was made with other settings ({', '.join(differ)}): it cannot be "
                       "continued with these.")
    return {(r.placement, r.method, r.seed): r for r in previous.runs}


def run_dann(config: DANNConfig, progress: ProgressFn | None = None, record=None,
             previous: DANNResult | None = None) -> DANNResult:
    """Train every (placement, method, seed) of ``config``; with ``record`` (a lab.runs.Run) each finished run is
    saved at once, so a stopped comparison keeps what it finished, and ``previous`` (that comparison, loaded by
    ``load_result``) resumes it: its finished runs are kept, not trained again."""
    config.validate()
    kept = reusable_runs(config, previous)
    start = time.perf_counter()
    if progress is not None:
        progress(0, 1, f"Loading {config.label()}")
    data = load_task(config)
    result = DANNResult(config, data={
        "source": data.source_name, "target": data.target_name, "source_train": len(data.source_x),
        "target_train": len(data.target_x), "source_test": len(data.source_test_x),
        "target_test": len(data.target_test_x), "size": data.size, "classes": len(data.classes),
        "class_names": data.classes, "usps_renderings": data.renderings, "notes": data.notes})
    result.input_pad = _pad(data.source_test_x, data.target_test_x, max_per_domain=1000)
    jobs = [(p, m, s) for p, m in config.jobs() for s in config.seeds]
    for k, (placement, method, seed) in enumerate(jobs):
        if (placement, method, seed) in kept:
            result.runs.append(kept[(placement, method, seed)])
            continue
        done = train_dann(data, placement, config.backbone, config.train_config(seed), config.weights,
                          progress=part(progress, k, len(jobs), f"Run {k + 1}/{len(jobs)}: {{desc}}"), method=method)
        done.net = None  # keep features and numbers, not one network per run
        done.pads = run_pads(done.features, seed)
        result.runs.append(done)
        result.seconds = time.perf_counter() - start
        if record is not None:
            result.save(record, figures=False)  # the caller saves once more, with figures, at the end
    return result
