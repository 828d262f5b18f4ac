"""Before a long job: how long it will take on this device, from a measured time per network call, and the
question whether to run it (``gate``). A tab shows the estimate with a "Run anyway" button and runs only after it.

    seconds, how = sampling_estimate(config, n)       # probes the model: a few calls on a small batch
    message = gate(seconds, how, confirmed, lower="n")
    if message: return gr.skip(), message, gr.Button(visible=True, value=run_anyway_label(seconds))
"""
from __future__ import annotations

import time
from dataclasses import replace

LONG_S = 600           # a job estimated to take longer than this is confirmed first
PROBE_BATCH = 16       # images of the probe batch
_PER_CALL: dict[tuple, float] = {}   # (model, device, size) → seconds per image per network call, measured


def duration(seconds: float) -> str:
    """``about 1 h 12 min``, ``about 8 min``, ``about 40 s``."""
    if seconds >= 3600:
        hours, rest = divmod(int(round(seconds / 60)), 60)
        return f"about {hours} h {rest:02d} min"
    if seconds >= 90:
        return f"about {round(seconds / 60)} min"
    return f"about {max(1, round(seconds))} s"


def _per_call(model) -> float:
    """Seconds per image per network call of ``model`` (a LoadedModel) on its device, measured once per process:
    one warm-up call, then two timed calls on a batch of ``PROBE_BATCH``."""
    import torch

    from lab.diffusion.samplers import predict

    key = (str(model.source), str(model.device), model.size, model.channels)
    if key not in _PER_CALL:
        x = torch.randn(PROBE_BATCH, model.channels, model.size, model.size, device=model.device)
        t = 0.5 if model.kind == "score" else 500
        with torch.no_grad():
            predict(model.unet, x, t)
            start = time.perf_counter()
            for _ in range(2):
                predict(model.unet, x, t)
            if model.device.type == "cuda":
                torch.cuda.synchronize(model.device)
        _PER_CALL[key] = (time.perf_counter() - start) / (2 * PROBE_BATCH)
    return _PER_CALL[key]


def sampling_estimate(config, n: int, step_counts: list[int] | None = None) -> tuple[float, str]:
    """(seconds, how it was estimated) to sample ``n`` images with a denoising config — at each of ``step_counts``
    when given (a sweep) — from the measured time per network call. GANs: (0, "") (one call per image)."""
    from lab.experiments.denoise.sample import levels, load_for
    from lab.models.store import model_kind

    if model_kind(config.model) == "gan":
        return 0.0, ""
    model = load_for(config)
    per_call = _per_call(model)
    counts = step_counts or [None]
    calls = sum(replace(config, steps=c).total_steps(levels(model)) if c and config.sampler != "langevin"
                else (c or config.total_steps(levels(model))) for c in counts)
    seconds = per_call * calls * n * 1.1   # + ~10 % for the features, FID and writing the run
    how = (f"measured here: {1000 * per_call:.2f} ms per image per network call ({model.device.type}), × {calls:,} "
           f"calls per image × {n:,} images")
    return seconds, how


def compare_estimate(config) -> tuple[float, str]:
    """The compare run's time: each shipped model with its recommended sampler, ``config.fid_n`` samples."""
    from lab.config import get_settings
    from lab.experiments.denoise.compare import SHIPPED, sampler_settings
    from lab.models.store import list_models, read_info

    total, parts = 0.0, []
    for name in SHIPPED:
        if name not in list_models():
            continue
        info = read_info(get_settings().checkpoint_dir / name)
        seconds, _ = sampling_estimate(replace(config, model=name, **sampler_settings(info)), config.fid_n)
        total += seconds
        parts.append(f"{name} {seconds / 60:.0f} min")
    return total, "measured per network call here: " + ", ".join(parts)


def gate(seconds: float, how: str, confirmed: bool, lower: str = "n", per_unit: float | None = None,
         step: int = 10) -> str | None:
    """None when the job may start (short, or confirmed); else the message that asks first, with the ``lower``
    setting's value that would fit in ``LONG_S`` when ``per_unit`` (seconds per unit of it) is given."""
    if confirmed or seconds <= LONG_S:
        return None
    fit = ""
    if per_unit:
        value = _round_down(max(step, int(LONG_S / per_unit)), step)
        fit = f" Lower {lower} to {value:,} for {duration(value * per_unit)}, or"
    return (f"**This run would take {duration(seconds)} on this device** ({how}).{fit} press **Run anyway** to "
            "start it as it is.")


def _round_down(value: int, step: int) -> int:
    """``value`` rounded down to two significant digits and to a multiple of ``step`` (8,417 → 8,400)."""
    digits = max(0, len(str(value)) - 2)
    return max(step, value // 10 ** digits * 10 ** digits // step * step)


def run_anyway_label(seconds: float) -> str:
    return f"Run anyway ({duration(seconds)})"
