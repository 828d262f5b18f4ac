"""``run_dann``: train one label network per (placement, seed) of a config on its task, and measure the proxy
A-distance between the domains (raw test images, and each run's backbone features)."""
from __future__ import annotations

import time

from lab.experiments.dann.config import DANNConfig
from lab.experiments.dann.data import load_task
from lab.experiments.dann.results import DANNResult
from lab.metrics.domain import proxy_a_distance
from lab.progress import ProgressFn, part
from lab.train.dann import train_dann


def _pad(source, target, **kwargs) -> dict:
    if min(len(source), len(target)) < 4:  # a tiny test set: no meaningful distance
        return {"pad": float("nan"), "domain_error": float("nan"), "n_per_domain": min(len(source), len(target))}
    return proxy_a_distance(source, target, **kwargs).as_dict()


def run_dann(config: DANNConfig, progress: ProgressFn | None = None, record=None) -> DANNResult:
    """Train every (placement, seed) of ``config``; with ``record`` (a lab.runs.Run) each finished run is
    saved at once, so a stopped comparison keeps what it finished."""
    config.validate()
    start = time.perf_counter()
    if progress is not None:
        progress(0, 1, f"Loading {config.label()}")
    data = load_task(config)
    result = DANNResult(config, data={
        "source": data.source_name, "target": data.target_name, "source_train": len(data.source_x),
        "target_train": len(data.target_x), "source_test": len(data.source_test_x),
        "target_test": len(data.target_test_x), "size": data.size, "classes": len(data.classes),
        "class_names": data.classes})
    result.input_pad = _pad(data.source_test_x, data.target_test_x, max_per_domain=1000)
    jobs = [(p, s) for p in config.placements for s in config.seeds]
    for k, (placement, seed) in enumerate(jobs):
        done = train_dann(data, placement, config.backbone, config.train_config(seed), config.weights,
                          progress=part(progress, k, len(jobs), f"Run {k + 1}/{len(jobs)}: {{desc}}"))
        done.net = None  # keep features and numbers, not one network per run
        f = done.features
        result.pads[result.run_label(done)] = _pad(f["source"]["features"], f["target"]["features"], seed=seed)["pad"]
        result.runs.append(done)
        result.seconds = time.perf_counter() - start
        if record is not None:
            result.save(record, figures=False)  # the caller saves once more, with figures, at the end
    return result
