"""Benchmark: the five conditioning methods on MNIST, judged by checkpoints/classifier-mnist.

For each method: conditional accuracy (the judge agrees with the requested digit) and FID on the
judge's features (all samples against the real test images of the same digits), on 1,000 samples
(100 per digit; ``--quick``: 200). Guided methods first pick their scale by a small sweep (10 per
digit, ``--quick``: 5) and are then measured at the scale with the best accuracy; the auxiliary
classifier is also measured at s = 0, the seed's setting. ``accuracy_floor`` is the judge on the
real MNIST test set.

    python bench/conditional.py --quick --threads 2
    python bench/conditional.py --faces --quick --threads 2    # the face grid only (preset "faces")

``--faces`` measures the face grid of the Class-conditional tab (preset ``faces``: ``ddpm-utkface64`` guided by
``noisy-classifier-utkface64``, one row per gender × age bucket) with the independent judge
``judge-utkface64-gender-age``: the scale s is chosen on validation noise (seed + 1) and measured on the bench's
seed; keys under ``faces`` (accuracy over the ten combined classes, the gender and age parts alone, each beside
the judge's own accuracy on real test faces and the unguided s = 0 row). Its grids are saved in a run folder.

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lab.config import cpu_name  # noqa: E402
from lab.errors import LabError  # noqa: E402
from lab.experiments.conditional.config import ConditionalConfig  # noqa: E402
from lab.experiments.conditional.methods import METHODS  # noqa: E402
from lab.experiments.conditional.sample import run_grid  # noqa: E402

SCALES = {"cfg": "1,2,3,5", "classifier-guidance": "1,3,10,30,100", "auxclf": "1,3,10,30"}


def key(method: str) -> str:
    return method.replace("-", "_")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="200 samples per method (20 per digit), sweeps on 50")
    p.add_argument("--per-class", type=int, default=None, help="samples per digit (default 100, quick 20)")
    p.add_argument("--sweep-per-class", type=int, default=None, help="per digit in the scale sweeps (10, quick 5)")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--steps", type=int, default=None,
                   help="sampler steps (digits: DDIM 25; --faces: the preset's 50)")
    for m, default in SCALES.items():
        p.add_argument(f"--scales-{m}", default=default, help=f"{m}: scales to sweep")
    p.add_argument("--cfg-model", default="cfg-mnist", help="serves method 1 (w = 1) and method 5")
    p.add_argument("--label-embed-model", default=None, help="method 1 (default: the CFG model at w = 1)")
    p.add_argument("--condnorm-model", default="condnorm-mnist")
    p.add_argument("--auxclf-model", default="auxclf-mnist")
    p.add_argument("--ddpm-model", default="ddpm-mnist", help="classifier guidance: the unconditional DDPM")
    p.add_argument("--noisy-classifier", default="noisy-classifier-mnist")
    p.add_argument("--judge", default="classifier-mnist")
    p.add_argument("--faces-judge", default="judge-utkface64-gender-age", help="faces: the independent judge")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faces", action="store_true", help="only the face grid (preset 'faces'), see above")
    p.add_argument("--scales-faces", default="0,10,30,100", help="faces: scales s to choose from (validation noise)")
    return p.parse_args()


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def judge_floor(judge: str) -> float:
    from lab.data import load_dataset
    from lab.metrics.classify import accuracy
    from lab.models.store import load_classifier

    test = load_dataset("mnist", "test")
    return accuracy(load_classifier(judge), test.to_float(), test.labels)


def measure(base: ConditionalConfig, method: str, model: str, scale: float, per_class: int) -> dict:
    cfg = replace(base, method=method, model=model, scale=scale, per_class=per_class)
    result = run_grid(cfg).summary()
    log(f"  {method} ({model}, scale {scale:g}, n={result['n']}): accuracy {result['accuracy']:.4f}, "
        f"FID {result['fid']:.3f}, {result['sampling_seconds']:.1f} s")
    return result


def parts(predicted: torch.Tensor, labels: torch.Tensor, ages: int) -> dict:
    """Accuracy of the combined gender × age label, and of its gender and age parts alone."""
    return {"accuracy": (predicted == labels).float().mean().item(),
            "gender_accuracy": (predicted // ages == labels // ages).float().mean().item(),
            "age_accuracy": (predicted % ages == labels % ages).float().mean().item()}


def faces(args) -> dict:
    """The face grid: s chosen on validation noise, then measured; the judge's own accuracy on real test faces."""
    from lab.data.sources import UTK_TARGETS
    from lab.experiments.conditional.measure import judge_outputs
    from lab.experiments.conditional.presets import preset
    from lab.models.store import load_classifier
    from lab.runs import recorded
    from lab.train.conditional import conditional_data

    ages = len(UTK_TARGETS["age"])
    per_class = args.per_class or (10 if args.quick else 30)
    sweep_per_class = args.sweep_per_class or (4 if args.quick else 10)
    values = {**preset("faces").values, "judge": args.faces_judge, "tsne": False, "device": args.device,
              **({"steps": args.steps} if args.steps else {})}
    base = ConditionalConfig(**{**values, "seed": args.seed})
    real = conditional_data("utkface", "test", 64, 3, condition_on="gender-age")
    logits, _ = judge_outputs(load_classifier(args.faces_judge), real.images.to_float())
    out = {"judge": args.faces_judge, "judge_on_real": {k: round(v, 4) for k, v in
                                                        parts(logits.argmax(1), real.labels, ages).items()},
           "real_test_faces": len(real.labels), "steps": base.steps}
    scales = [float(v) for v in args.scales_faces.split(",") if v.strip()]
    sweep = {}
    with recorded("bench-conditional-faces", vars(args), command="python " + " ".join(sys.argv)) as run:
        for s in scales:          # validation noise: another seed than the measured grid's
            r = run_grid(replace(base, scale=s, per_class=sweep_per_class, seed=args.seed + 1, fid=False))
            sweep[s] = r.metrics.accuracy
            log(f"faces validation s = {s:g}: accuracy {sweep[s]:.3f} (n = {len(r.samples)})")
        best = max(scales, key=lambda s: (sweep[s], -s))
        for s in dict.fromkeys([best, 0.0]):
            r = run_grid(replace(base, scale=s, per_class=per_class))
            measured = {k: round(v, 4) for k, v in parts(r.metrics.predicted, r.labels, ages).items()}
            name = "guided" if s == best else "unguided_s0"
            out[name] = {"scale": s, "n": len(r.samples), "fid": r.metrics.fid, "fid_floor": r.metrics.fid_floor,
                         "sampling_seconds": round(r.seconds, 1), **measured}
            r.grid.save(run.add(f"grid-s{s:g}.png"))
            log(f"faces s = {s:g}: {measured} (n = {len(r.samples)}, {r.seconds:.0f} s)")
        run.save_json("result.json", out)
        out["run"] = str(run.dir)
    out.update(validation_sweep={f"{s:g}": round(a, 4) for s, a in sweep.items()}, scale=best)
    return out


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.faces:
        start = time.perf_counter()
        out = {"faces": faces(args), "wall_seconds": round(time.perf_counter() - start, 1),
               "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads(), "device": args.device}}
        print(json.dumps(out, default=str))
        return
    args.steps = args.steps or 25
    per_class = args.per_class or (20 if args.quick else 100)
    sweep_per_class = args.sweep_per_class or (5 if args.quick else 10)
    base = ConditionalConfig(sampler=args.sampler, steps=args.steps, classifier=args.noisy_classifier,
                             judge=args.judge, tsne=False, seed=args.seed, device=args.device)
    models = {"label-embed": args.label_embed_model or args.cfg_model, "condnorm": args.condnorm_model,
              "auxclf": args.auxclf_model, "classifier-guidance": args.ddpm_model, "cfg": args.cfg_model}
    start = time.perf_counter()
    out: dict = {"n_per_method": 10 * per_class, "sweep_n": 10 * sweep_per_class, "sampler": args.sampler,
                 "steps": args.steps}
    out["accuracy_floor"] = judge_floor(args.judge)
    log(f"judge {args.judge} on the MNIST test set: {out['accuracy_floor']:.4f}")
    for method in METHODS:
        scale = 1.0
        try:
            if method in SCALES:
                scales = [float(s) for s in getattr(args, f"scales_{key(method)}").split(",") if s.strip()]
                log(f"{method}: sweeping {scales} on {10 * sweep_per_class} samples")
                sweep = {s: measure(base, method, models[method], s, sweep_per_class)["accuracy"] for s in scales}
                scale = max(scales, key=lambda s: (sweep[s], -s))   # best accuracy; ties → the smaller scale
                out[f"sweep_{key(method)}"] = {f"{s:g}": round(a, 4) for s, a in sweep.items()}
            result = measure(base, method, models[method], scale, per_class)
        except LabError as err:
            log(f"{method}: skipped ({err})")
            out[f"accuracy_{key(method)}"] = out[f"fid_{key(method)}"] = None
            out[f"error_{key(method)}"] = str(err)
            continue
        k = key(method)
        out[f"accuracy_{k}"] = result["accuracy"]
        out[f"fid_{k}"] = result["fid"]
        out[f"seconds_{k}"] = result["sampling_seconds"]
        out[f"per_class_accuracy_{k}"] = [row["accuracy"] for row in result["per_class"]]
        if method in SCALES:
            out[f"scale_{k}"] = scale
        out.setdefault("fid_floor", result["fid_floor"])
        if method == "auxclf":
            seed_setting = measure(base, method, models[method], 0.0, per_class)
            out["accuracy_auxclf_s0"] = seed_setting["accuracy"]
            out["fid_auxclf_s0"] = seed_setting["fid"]
    out["target_met"] = {m: (out.get(f"accuracy_{m}") or 0) >= 0.95 for m in ("cfg", "classifier_guidance")}
    out["wall_seconds"] = round(time.perf_counter() - start, 1)
    out["machine"] = {"cpu": cpu_name(), "threads": torch.get_num_threads(),
                      "device": base.device if base.device != "auto" else
                      ("cuda" if torch.cuda.is_available() else "cpu")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
