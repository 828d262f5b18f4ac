"""Benchmark of the Domain-discovery tab: Fashion-MNIST into the frozen MNIST DDPM with 100 target images.

Measures the DDIM round trip (η = 0) on unseen and in-domain images, then compares discovered samples
(new latents near the inverted few-shot set, through the geometric filter) with the tuning baseline
(the DDPM fine-tuned on the same 100 images): FID with Fashion-classifier features against held-out
Fashion-MNIST test images (same n for both, plus the real-vs-real floor), diversity, and the share of
samples that are near-copies of the few-shot set.

    python bench/discovery.py            # n = 1000 samples each, all three proposal kinds
    python bench/discovery.py --quick    # n = 200, slerp only (< 10 min on 2 CPU cores)

The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples, slerp only")
    p.add_argument("--model", default="ddpm-mnist")
    p.add_argument("--target", default="fashion")
    p.add_argument("--shots", type=int, default=100)
    p.add_argument("--t0", type=int, default=900)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--n", type=int, default=None, help="samples per method (default 1000, quick 200)")
    p.add_argument("--methods", default=None, help="comma-separated proposals (default slerp,mix,gaussian; quick slerp)")
    p.add_argument("--finetune-steps", type=int, default=None, help="default 500, quick 200")
    p.add_argument("--finetune-lr", type=float, default=1e-4)
    p.add_argument("--recon-t0s", default=None, help="default 300,600,900,999; quick: --t0 only")
    p.add_argument("--recon-n", type=int, default=None, help="images per domain (default 100, quick 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lab.config import cpu_name
    from lab.errors import LabError
    from lab.experiments.discovery.baseline import run_finetune
    from lab.experiments.discovery.config import BaselineSettings, DiscoveryConfig, DiscoverySettings
    from lab.experiments.discovery.data import load_model
    from lab.experiments.discovery.discover import run_discover
    from lab.experiments.discovery.reconstruct import run_reconstruct

    n = args.n or (200 if args.quick else 1000)
    methods = (args.methods or ("slerp" if args.quick else "slerp,mix,gaussian")).split(",")
    ft_steps = args.finetune_steps or (200 if args.quick else 500)
    t0s = [int(t) for t in (args.recon_t0s or (str(args.t0) if args.quick else f"300,600,{args.t0},999")).split(",")]
    recon_n = args.recon_n or (32 if args.quick else 100)
    config = DiscoveryConfig(model=args.model, target=args.target, shots=args.shots, t0=args.t0, steps=args.steps,
                             seed=args.seed, device=args.device)
    try:
        model = load_model(config)
    except LabError as err:
        sys.exit(f"error: {err}")
    start = time.perf_counter()
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    recon = run_reconstruct(config, sorted(set(t0s + [args.t0])), n_images=recon_n, model=model)
    for row in recon.rows:
        log(f"recon {row['data']:<28} t0={row['t0']:>4} (used {row['t0_used']}) PSNR {row['psnr_mean']:.2f} ± "
            f"{row['psnr_std']:.2f} dB  MSE {row['mse_mean']:.5f}  {row['seconds']:.1f}s")

    discovered = {}
    for method in methods:
        settings = DiscoverySettings(method=method, count=n, fid_n=n)
        result = run_discover(config, settings, model=model)
        m = result.metrics
        discovered[method] = {
            "fid": m["fid"]["fid"], "kid": m["fid"]["kid"], "fid_n": m["fid"]["n"],
            "floor": m["floor"]["fid"] if m.get("floor") else None,
            "acceptance": round(result.acceptance, 4), "accepted": result.accepted, "proposed": result.proposed,
            "nn_copy_fraction": m["copies"]["nn_copy_fraction"], "nn_distance_median": m["copies"]["nn_distance_median"],
            "diversity_features": m["diversity"].get("diversity_features"),
            "diversity_pixels": m["diversity"]["diversity_pixels"], "seconds": result.seconds,
            "targets": result.targets, "notes": result.notes}
        real_div = m.get("diversity_real", {}).get("diversity_features")
        fewshot_div = m["diversity_fewshot"].get("diversity_features")
        copy_threshold = m["copies"]["copy_threshold"]
        feature_network = m["fid"]["feature_network"]
        log(f"discover {method:<8} FID {discovered[method]['fid']:.2f} (n={n}, floor {discovered[method]['floor']:.2f}) "
            f"acceptance {result.acceptance:.3f} copies {discovered[method]['nn_copy_fraction']:.3f} "
            f"diversity {discovered[method]['diversity_features']:.2f} seconds {result.seconds}")

    ft = run_finetune(config, BaselineSettings(train_steps=ft_steps, lr=args.finetune_lr, count=n, fid_n=n),
                      model=model)
    fm = ft.metrics
    log(f"finetune {ft_steps} steps in {ft.train_seconds:.0f}s: FID {fm['fid']['fid']:.2f} copies "
        f"{fm['copies']['nn_copy_fraction']:.3f} diversity {fm['diversity'].get('diversity_features'):.2f}")

    main_method = methods[0]
    d = discovered[main_method]
    out = {
        "recon_psnr_unseen": round(recon.psnr("unseen", args.t0), 3),
        "recon_psnr_in_domain": round(recon.psnr("in-domain", args.t0), 3) if recon.psnr("in-domain") else None,
        "fid_discovered": round(d["fid"], 3),
        "fid_finetune_baseline": round(fm["fid"]["fid"], 3),
        "fid_floor": round(d["floor"], 3) if d["floor"] is not None else None,
        "nn_copy_fraction": round(d["nn_copy_fraction"], 4),
        "nn_copy_fraction_finetune": round(fm["copies"]["nn_copy_fraction"], 4),
        "discovery_method": main_method,
        "discovered": {k: {kk: (round(vv, 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
                       for k, v in discovered.items()},
        "finetune": {"steps": ft_steps, "lr": args.finetune_lr, "train_seconds": round(ft.train_seconds, 1),
                     "sample_seconds": round(ft.sample_seconds, 1), "fid": round(fm["fid"]["fid"], 3),
                     "kid": fm["fid"]["kid"], "diversity_features": fm["diversity"].get("diversity_features"),
                     "final_loss": ft.losses[-1][1] if ft.losses else None},
        "diversity_real_heldout": real_div, "diversity_fewshot": fewshot_div, "copy_threshold": copy_threshold,
        "recon": [{k: r[k] for k in ("data", "t0", "t0_used", "n", "psnr_mean", "psnr_std", "mse_mean")}
                  for r in recon.rows],
        "n": n, "shots": args.shots, "t0": args.t0,
        "t0_used": next(r["t0_used"] for r in recon.rows if r["t0"] == args.t0), "steps": args.steps,
        "feature_network": feature_network, "model": args.model, "target": args.target, "seed": args.seed,
        "quick": args.quick, "device": str(model.device), "threads": torch.get_num_threads(),
        "machine": f"{cpu_name()} ({os.cpu_count()} cores)",
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
