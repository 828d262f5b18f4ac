"""The seed's comparison of generative models: the DDPM, the score model and the GAN, measured alike — the same n,
the same feature network, one real-vs-real floor — with each model's own sampler and its cost in network calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from lab.errors import LabError
from lab.experiments.denoise.config import QualityConfig
from lab.progress import ProgressFn, part

SHIPPED = ("ddpm-mnist", "score-mnist", "gan-mnist")


def sampler_settings(info: dict) -> dict:
    """The sampler settings a model's card recommends (``sampling`` in training.json, less its ``note`` for the
    card), else the kind's default: DDIM 50 for a DDPM, DPM-Solver 50 steps (continuous VE models) or annealed
    Langevin for a score model. Ready to pass to a DenoiseConfig."""
    if info.get("sampling"):
        return {k: v for k, v in info["sampling"].items() if k != "note"}
    if info.get("kind") == "score":
        return {"sampler": "dpm", "steps": 50} if info.get("score", {}).get("continuous") else {"sampler": "langevin"}
    return {"sampler": "ddim", "steps": 50}


def calls_per_sample(config: QualityConfig, info: dict) -> int:
    """Network evaluations per generated image."""
    if info.get("kind") == "gan":
        return 1
    levels = info.get("score", {}).get("levels") or 10
    return config.total_steps(levels if info.get("kind") == "score" else None)


@dataclass
class CompareResult:
    rows: list[dict] = field(default_factory=list)
    floor: float | None = None
    n: int = 0
    features: str = ""

    def verdict(self) -> str:
        """The comparison in words: which model is best and by how much, at which n."""
        measured = [r for r in self.rows if r.get("fid") is not None]
        if not measured:
            return "Nothing was measured."
        best = min(measured, key=lambda r: r["fid"])
        parts = [f"At n = {self.n} ({self.features}), the **{best['kind']}** ({best['model']}) has the lowest FID, "
                 f"{best['fid']:.1f} (real-vs-real floor {self.floor:.1f})."]
        for r in measured:
            if r is not best:
                parts.append(f"The {r['kind']}'s FID is {r['fid']:.1f}, {r['fid'] / best['fid']:.1f}× the best, at "
                             f"{r['calls_per_sample']} network call(s) per sample.")
        if self.n < 1000:
            parts.append(f"⚠️ n = {self.n} is small: FID is biased upwards at small n and its ranking of close "
                         "models can flip; use n ≥ 1,000 for a figure to quote.")
        return " ".join(parts)


def run_compare(models=SHIPPED, n: int = 1000, features: str = "classifier", seed: int = 0, device: str = "auto",
                progress: ProgressFn | None = None) -> CompareResult:
    """Measure each model (a name or folder) with its recommended sampler at the same ``n``; the floor once."""
    from lab.experiments.denoise.quality import run_quality
    from lab.models.store import list_models, read_info, resolve_model_path

    shipped = set(list_models())
    models = [m for m in models if m not in SHIPPED or m in shipped]
    if not models:
        raise LabError(f"None of {', '.join(SHIPPED)} is in the checkpoints folder: give model folders to compare.")
    result = CompareResult(n=n)
    for k, name in enumerate(models):
        info = read_info(resolve_model_path(name))
        config = replace(QualityConfig(model=name, fid_n=n, features=features, seed=seed, device=device),
                         **sampler_settings(info))
        q = run_quality(config, n=n, feature_network=features, with_floor=k == 0,
                        progress=part(progress, k, len(models), f"{name}: {{desc}}"))
        if q.floor is not None:
            result.floor = q.floor["fid"]
        result.features = q.fid["feature_network"]
        result.rows.append({
            "model": name, "kind": {"ddpm": "DDPM", "score": "score model", "gan": "GAN"}.get(info.get("kind"), "?"),
            "sampler": "generator" if info.get("kind") == "gan" else config.sampler,
            "calls_per_sample": calls_per_sample(config, info), "fid": round(q.fid["fid"], 2),
            "confident_fraction": q.quality.get("confident_fraction"), "class_entropy": q.quality.get("class_entropy"),
            "sampling_seconds": round(q.sampling_seconds, 1)})
    for r in result.rows:
        r["fid_floor"] = None if result.floor is None else round(result.floor, 2)
    return result
