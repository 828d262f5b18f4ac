"""The seed's training-T sweep: the same UNet trained with T = 10, 100 and 1000 diffusion steps for the same number
of optimiser steps (same data, seed, learning rate; only the scheduler's T differs), then sampled and measured.

With the linear β range 1e-4 … 0.02, ᾱ_T at T = 10 is ≈ 0.9: the forward process never reaches noise, so a
model trained that way is asked at sampling time to denoise pure noise it has never seen — the grids show it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from PIL import Image

from lab.experiments.denoise.config import TSweepConfig
from lab.progress import ProgressFn, part


@dataclass
class TSweepResult:
    config: TSweepConfig
    rows: list[dict] = field(default_factory=list)      # per T: T, ᾱ_T, final loss, FID, confident fraction ...
    grids: list[Image.Image] = field(default_factory=list, repr=False)
    folders: list[str] = field(default_factory=list)

    def save(self, run) -> None:
        from lab.viz.export import write_csv

        for row, grid in zip(self.rows, self.grids):
            grid.save(run.add(f"samples_T{row['T']}.png"))
        write_csv(run.add("t_sweep.csv"), self.rows)
        run.save_json("result.json", {"config": asdict(self.config), "rows": self.rows, "models": self.folders})
        run.log_metrics(**{f"fid_T{r['T']}": r["fid"] for r in self.rows})


def run_t_sweep(config: TSweepConfig, folder, progress: ProgressFn | None = None) -> TSweepResult:
    """Train one DDPM per T into ``folder/T<T>`` (resumable), then sample ``config.n`` images of each (DDIM with
    min(50, T) steps) and measure FID against real test images (lab classifier features)."""
    from pathlib import Path

    from lab.experiments.denoise.config import QualityConfig
    from lab.experiments.denoise.quality import run_quality
    from lab.experiments.denoise.sample import run_denoise
    from lab.models.store import load_diffusion
    from lab.train.config import TrainConfig
    from lab.train.recipes import train_diffusion

    config.validate()
    result = TSweepResult(config)
    count = len(config.timesteps)
    for k, T in enumerate(config.timesteps):
        out = Path(folder) / f"T{T}"
        train = TrainConfig(steps=config.train_steps, batch_size=config.batch_size, lr=config.lr,
                            warmup=min(200, config.train_steps // 10), checkpoint_every=max(50, config.train_steps // 4),
                            seed=config.seed, device=config.device, cpu_bf16=config.bf16)
        started = time.perf_counter()
        train_diffusion("ddpm", out, data=config.data, limit=config.limit, config=train, timesteps=T,
                        command=config.to_command(), progress=part(progress, 2 * k, 2 * count, f"T = {T}: {{desc}}"))
        seconds = time.perf_counter() - started
        model = load_diffusion(out)
        steps = min(50, T)
        quality = QualityConfig(model=str(out), sampler="ddim", steps=steps, fid_n=config.n, seed=config.seed,
                                device=config.device)
        q = run_quality(quality, n=config.n, with_floor=k == 0,
                        progress=part(progress, 2 * k + 1, 2 * count, f"T = {T}: {{desc}}"))
        grid = run_denoise(QualityConfig(model=str(out), sampler="ddim", steps=steps, num_images=8, snapshots=6,
                                         seed=config.seed, device=config.device), model=model).grid
        alpha_bar = float(model.scheduler.alphas_cumprod[-1])
        result.rows.append({"T": T, "alpha_bar_T": round(alpha_bar, 4), "sampling_steps": steps,
                            "final_loss": round(model.info.get("final_loss", float("nan")), 4),
                            "fid": round(q.fid["fid"], 2), "n": q.n,
                            "fid_floor": round(q.floor["fid"], 2) if q.floor else None,
                            "confident_fraction": q.quality.get("confident_fraction"),
                            "class_entropy": q.quality.get("class_entropy"),
                            "train_seconds": round(seconds, 1)})
        result.grids.append(grid)
        result.folders.append(str(out))
    if result.rows and result.rows[0]["fid_floor"] is not None:
        for row in result.rows[1:]:
            row["fid_floor"] = result.rows[0]["fid_floor"]
    return result


def differ_only_in_t(folders) -> bool:
    """Whether the saved models of a sweep share the UNet configuration and every scheduler setting but T."""
    from lab.models.store import load_diffusion

    models = [load_diffusion(f) for f in folders]
    def settings(config, leave=()):  # "_name_or_path" and the like say where a model was read from
        return {k: v for k, v in dict(config).items() if not k.startswith("_") and k not in leave}

    unets = [settings(m.unet.config) for m in models]
    scheds = [settings(m.scheduler.config, ("num_train_timesteps",)) for m in models]
    return all(u == unets[0] for u in unets) and all(s == scheds[0] for s in scheds) and \
        len({m.scheduler.config.num_train_timesteps for m in models}) == len(models)


def sweep_grid(result: TSweepResult) -> Image.Image:
    """The sample grids of every T side by side, titled."""
    from lab.viz.grids import label_columns

    widths = [g.width for g in result.grids]
    height = max(g.height for g in result.grids)
    canvas = Image.new("RGB", (sum(widths) + 8 * (len(widths) - 1), height), "white")
    x = 0
    for g in result.grids:
        canvas.paste(g.convert("RGB"), (x, 0))
        x += g.width + 8
    return label_columns(canvas, [f"T = {r['T']} (FID {r['fid']:.0f})" for r in result.rows], cell=widths[0] + 8)

