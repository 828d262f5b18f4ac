"""Benchmark: batch adaptation + CNN evaluation — does translating labelled source images help?

    python bench/ssda.py --threads 2           # n′ = 1,000 (faces: 1,200), 10 epochs, 3 seeds, 2,000 test images
    python bench/ssda.py --quick --threads 2   # n′ = 500, 5 epochs, 3 seeds, 1,000 test images: < 10 min on CPU
    python bench/ssda.py --tasks faces_sketch  # one task only

For MNIST → sketch, MNIST → USPS and UTKFace → face sketches (the seed's task, gender) the shipped DiffusionCLIP
model of the task translates the n′ labelled source images (into a fresh cache, so the translation is timed),
then the seed's CNN is trained on (a) originals, (b) adapted, (c) labelled target images, (d) both (a) and (b).
A task whose DiffusionCLIP model (or base DDPM) is not shipped is reported as not measured, with the reason.
Prints ONE JSON object as its last line: gain_mnist_sketch, gain_faces_sketch, gain_mnist_usps (points of
target accuracy, (b) − (a) at the final epoch, mean over the seeds), translate_images_per_s and the details.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lab.config import cpu_name  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.experiments.ssda.config import TASKS, SSDAConfig  # noqa: E402
from lab.experiments.ssda.run import run_ssda  # noqa: E402
from lab.progress import TqdmProgress  # noqa: E402

TARGET_GAIN_MNIST_SKETCH = 10.0
BENCH_TASKS = {"mnist_sketch": "mnist-sketch", "faces_sketch": "faces-sketch", "mnist_usps": "mnist-usps"}


def measure(task: str, quick: bool, seeds: list[int], device: str) -> dict:
    spec = TASKS[task]
    faces = spec.size > 32
    n_labelled = spec.n_labelled if faces else (500 if quick else 1000)
    n_test = spec.n_test if faces else (1000 if quick else 2000)
    config = SSDAConfig(task=task, n_labelled=n_labelled, n_test=n_test, seeds=seeds, epochs=5 if quick else 10,
                        device=device)
    progress = TqdmProgress()
    try:
        result = run_ssda(config, progress=progress)
    except LabError as err:
        return {"task": task, "measured": False, "reason": str(err)}
    finally:
        progress.close()
    rows = {r["training set"]: r for r in result.rows()}
    return {"task": task, "measured": True, "gain_points": round(result.gain(), 2), "n_labelled": n_labelled,
            "n_test_per_domain": n_test, "epochs": config.epochs, "seeds": seeds,
            "editor": result.translation.get("editor"), "prompts": result.translation.get("prompts"),
            "translate_images_per_s": result.translation.get("images_per_s"),
            "translate_seconds": result.translation.get("seconds"),
            "final": {k: {"source_acc": round(v["source_acc_mean"], 4), "source_std": round(v["source_acc_std"], 4),
                          "target_acc": round(v["target_acc_mean"], 4), "target_std": round(v["target_acc_std"], 4)}
                      for k, v in rows.items()},
            "minutes": round(result.seconds / 60, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n′ = 500, 5 epochs, 1,000 test images per domain")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--seeds", default="0,1,2", help="CNN seeds (default 0,1,2)")
    parser.add_argument("--device", default="cpu", help="cpu (the targets' setting), auto or cuda")
    parser.add_argument("--tasks", default=",".join(BENCH_TASKS),
                        help=f"which of {', '.join(BENCH_TASKS)} to measure (default: all; the others print null)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    chosen = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(BENCH_TASKS))
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(BENCH_TASKS)}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ssda-bench-cache-") as cache:
        os.environ["LAB_CACHE_DIR"] = cache  # translations are timed, never read from an earlier run's cache
        results = {key: (measure(task, args.quick, seeds, args.device) if key in chosen else
                         {"task": task, "measured": False, "reason": "not chosen (--tasks)"})
                   for key, task in BENCH_TASKS.items()}
    speeds = [r["translate_images_per_s"] for r in results.values() if r.get("translate_images_per_s")]
    out = {f"gain_{key}": r.get("gain_points") for key, r in results.items()}
    out.update({
        "translate_images_per_s": results["mnist_sketch"].get("translate_images_per_s") or (speeds[0] if speeds else None),
        "n_labelled": {key: r.get("n_labelled") for key, r in results.items()},
        "target": {"gain_mnist_sketch": f">= +{TARGET_GAIN_MNIST_SKETCH} points"},
        "target_met": {"gain_mnist_sketch": (out["gain_mnist_sketch"] or -1e9) >= TARGET_GAIN_MNIST_SKETCH},
        "tasks": results, "quick": args.quick, "device": args.device, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "torch": torch.__version__, "minutes_total": round((time.perf_counter() - start) / 60, 2),
    })
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
