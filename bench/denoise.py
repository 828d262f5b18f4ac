"""Benchmark: the Denoising-steps tab on the shipped MNIST models.

    python bench/denoise.py --threads 2          # DDPM n = 10,000, score model n = 1,000 (about an hour on 2 cores)
    python bench/denoise.py --quick --threads 2  # DDPM and score model n = 1,000 (bf16 where the CPU has it)

    python bench/denoise.py --t-sweep --quick    # the training-T sweep alone: T = 10, 100, 1000, 120 steps each

The GAN baseline (checkpoints/gan-mnist, one network call per sample) is measured at the DDPM's n against the same
floor: ``fid_classifier_gan`` (the seed's comparison: DDPM 50.84, GAN 155.14 on CelebA).

The score model is sampled with the sampler its card recommends (``sampling`` in its training.json: for the
VE-SDE score-mnist, the sampler and steps chosen on training-set FID), at the DDPM's n in --quick
(the issue's comparison at n = 1,000) and at ``--score-n`` (default 1,000) in the full run, with its own
real-vs-real floor when that n differs from the DDPM's.

Measures the 10 × 10 grid's time (DDIM 50 steps, ddpm-mnist, median of 3 warm runs, fp32), FID with the
classifier features for ddpm-mnist (DDIM 50 steps), score-mnist and gan-mnist against n real MNIST test images,
the real-vs-real floor (n train vs the same n test), the classifier-based quality of the samples, and the
score model's targets (FID ≤ 1.5 × the DDPM's at the same n, confident fraction ≥ 0.85, class entropy
≥ 0.98 ln 10). ``--bf16`` (default with --quick on CPUs with AVX512-BF16/AMX) samples under bf16 autocast on the
CPU, about 1.5–2× faster there; on a CPU without bf16 instructions (AVX2 only) PyTorch emulates it and it is
several times slower than fp32, so --quick stays in fp32 there. Prints ONE JSON object as its last line.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lab.config import cpu_name  # noqa: E402
from lab.device import cpu_bf16_native  # noqa: E402
from lab.experiments.denoise.config import SAMPLER_NAMES, DenoiseConfig  # noqa: E402
from lab.experiments.denoise.quality import run_quality  # noqa: E402
from lab.experiments.denoise.sample import load_for, run_denoise  # noqa: E402

GRID_TARGET_S = 3.0
CONFIDENT_TARGET = 0.9
ENTROPY_TARGET = 0.98 * math.log(10)
SCORE_FID_RATIO = 1.5
SCORE_CONFIDENT_TARGET = 0.85
QUICK_MINUTES_TARGET = 5.0


def grid_seconds(device: str, repeats: int = 3) -> tuple[float, list[float]]:
    config = DenoiseConfig(model="ddpm-mnist", sampler="ddim", steps=50, num_images=10, snapshots=10, device=device)
    model = load_for(config)
    run_denoise(config, model=model)  # warm-up: first calls allocate and pick kernels
    times = [run_denoise(config, model=model).seconds for _ in range(repeats)]
    return statistics.median(times), times


def calls(config: DenoiseConfig) -> int:
    """Network calls per sample of ``config``'s model with its sampler (lab.experiments.denoise.compare)."""
    from lab.experiments.denoise.compare import calls_per_sample
    from lab.models.store import read_info, resolve_model_path

    return calls_per_sample(config, read_info(resolve_model_path(config.model)))


def card_sampler(model: str) -> dict:
    """The sampler settings the model's card recommends (lab.experiments.denoise.compare.sampler_settings)."""
    from lab.experiments.denoise.compare import sampler_settings
    from lab.models.store import read_info, resolve_model_path

    return sampler_settings(read_info(resolve_model_path(model)))


def describe(config: DenoiseConfig) -> str:
    if config.sampler == "pc":
        return f"predictor-corrector, {config.steps} steps, {config.corrector_steps} corrector, snr {config.snr}"
    if config.sampler == "langevin":
        return f"annealed Langevin, {config.langevin_steps} steps per level, eps {config.langevin_eps:g}"
    return f"{SAMPLER_NAMES[config.sampler]}, {config.steps} steps"


def t_sweep(quick: bool, device: str) -> dict:
    """The seed's training-T sweep (lab.experiments.denoise.tsweep): one DDPM per T, same steps, data and seed;
    FID per T and the grids side by side in a run folder."""
    from lab.config import get_settings
    from lab.experiments.denoise.config import TSweepConfig
    from lab.experiments.denoise.tsweep import differ_only_in_t, run_t_sweep, sweep_grid
    from lab.runs import recorded

    budget = dict(train_steps=120, batch_size=64, n=200) if quick else {}
    config = TSweepConfig(device=device, **budget).validate()
    with recorded("bench-t-sweep", asdict(config), command=config.to_command()) as run:
        result = run_t_sweep(config, get_settings().cache_dir / "bench-t-sweep" / ("quick" if quick else "full"))
        result.save(run)
        sweep_grid(result).save(run.add("t_sweep_grid.png"))
    out = {f"fid_T{r['T']}": r["fid"] for r in result.rows}
    out.update({"t_sweep": result.rows, "t_sweep_grid": str(run.path("t_sweep_grid.png")),
                "t_sweep_models_differ_only_in_T": differ_only_in_t(result.folders),
                "t_sweep_settings": {"train_steps": config.train_steps, "batch_size": config.batch_size,
                                     "n": config.n, "command": config.to_command()}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="n = 1,000 instead of 10,000")
    parser.add_argument("--n", type=int, default=None, help="override the sample count")
    parser.add_argument("--score-n", type=int, default=None,
                        help="samples for score-mnist's FID (default: the DDPM's n with --quick, else 1,000)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast while sampling on the CPU (default: on with --quick where the CPU has "
                             "bf16 instructions, off otherwise)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--device", default="cpu", help="cpu (the targets' setting) or auto / cuda")
    parser.add_argument("--t-sweep", action="store_true", help="only the training-T sweep (T = 10, 100, 1000)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.t_sweep:
        start = time.perf_counter()
        out = t_sweep(args.quick, args.device)
        out.update({"quick": args.quick, "device": args.device, "threads": torch.get_num_threads(),
                    "minutes_total": round((time.perf_counter() - start) / 60, 2)})
        print(json.dumps(out, default=str))
        return
    n = args.n or (1000 if args.quick else 10_000)
    start = time.perf_counter()

    grid_s, grid_all = grid_seconds(args.device)
    bf16 = bool(args.quick and cpu_bf16_native()) if args.bf16 is None else args.bf16
    configs = {"ddpm": DenoiseConfig(model="ddpm-mnist", sampler="ddim", steps=50, device=args.device, bf16=bf16),
               "score": DenoiseConfig(model="score-mnist", device=args.device, bf16=bf16, **card_sampler("score-mnist")),
               "gan": DenoiseConfig(model="gan-mnist", device=args.device)}
    ddpm = run_quality(configs["ddpm"], n=n)
    score_n = args.score_n or (n if args.quick else 1000)
    score = run_quality(configs["score"], n=score_n, with_floor=score_n != n)
    gan = run_quality(configs["gan"], n=n, with_floor=False)
    ratio = score.fid["fid"] / ddpm.fid["fid"]
    minutes = (time.perf_counter() - start) / 60
    out = {
        "grid_seconds": round(grid_s, 3),
        "fid_classifier_ddpm": round(ddpm.fid["fid"], 3),
        "fid_classifier_score": round(score.fid["fid"], 3),
        "fid_classifier_gan": round(gan.fid["fid"], 3),
        "fid_floor": round(ddpm.floor["fid"], 3),
        "calls_per_sample": {name: calls(config) for name, config in configs.items()},
        "confident_fraction_gan": round(gan.quality["confident_fraction"], 4),
        "confident_fraction_ddpm": round(ddpm.quality["confident_fraction"], 4),
        "class_entropy_ddpm": round(ddpm.quality["class_entropy"], 4),
        "n": n, "score_n": score_n,
        "fid_floor_score_n": round(score.floor["fid"], 3) if score.floor else None,
        "kid_ddpm": ddpm.fid["kid"], "kid_score": score.fid["kid"],
        "confident_fraction_score": round(score.quality["confident_fraction"], 4),
        "class_entropy_score": round(score.quality["class_entropy"], 4),
        "feature_network": ddpm.fid["feature_network"],
        "grid": "10 images x 10 snapshots, DDIM 50 steps, eta 0, ddpm-mnist, median of 3 warm runs",
        "grid_runs_seconds": [round(t, 3) for t in grid_all],
        "sampling_seconds": {"ddpm": round(ddpm.sampling_seconds, 1), "score": round(score.sampling_seconds, 1),
                             "gan": round(gan.sampling_seconds, 2)},
        "fid_ratio_score_to_ddpm": round(ratio, 3) if score_n == n else None,
        "samplers": {"ddpm": "DDIM 50 steps, eta 0", "score": describe(configs["score"]), "gan": "the generator"},
        "bf16_sampling": bf16,
        "targets": {"grid_seconds": f"< {GRID_TARGET_S}", "confident_fraction_ddpm": f">= {CONFIDENT_TARGET}",
                    "class_entropy_ddpm": f">= {ENTROPY_TARGET:.4f} (0.98 log 10)",
                    "fid_classifier_score": f"<= {SCORE_FID_RATIO} x fid_classifier_ddpm at the same n",
                    "confident_fraction_score": f">= {SCORE_CONFIDENT_TARGET}",
                    "class_entropy_score": f">= {ENTROPY_TARGET:.4f}",
                    **({"minutes_total": f"< {QUICK_MINUTES_TARGET} (--quick, 2 cores)"} if args.quick else {})},
        "targets_met": {"grid_seconds": grid_s < GRID_TARGET_S,
                        "confident_fraction_ddpm": ddpm.quality["confident_fraction"] >= CONFIDENT_TARGET,
                        "class_entropy_ddpm": ddpm.quality["class_entropy"] >= ENTROPY_TARGET,
                        "fid_classifier_score": ratio <= SCORE_FID_RATIO if score_n == n else None,
                        "confident_fraction_score": score.quality["confident_fraction"] >= SCORE_CONFIDENT_TARGET,
                        "class_entropy_score": score.quality["class_entropy"] >= ENTROPY_TARGET,
                        **({"minutes_total": minutes < QUICK_MINUTES_TARGET} if args.quick else {})},
        "quick": args.quick, "device": args.device, "threads": torch.get_num_threads(), "cpu": cpu_name(),
        "torch": torch.__version__, "minutes_total": round(minutes, 2),
        "ddpm": asdict(ddpm), "score": asdict(score),
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
