"""The one check of a guidance scale (w of classifier-free guidance, s of classifier guidance); light, so configs
check their settings with it before anything is loaded."""
from __future__ import annotations

from lab.errors import LabError


def check_scale(scale, name: str = "guidance scale", high: float | None = None) -> float:
    """``scale`` as a float ≥ 0 (and ≤ ``high`` when given); LabError naming it otherwise."""
    name = name[:1].upper() + name[1:]
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise LabError(f"{name} must be a number, not {scale!r}.") from None
    if scale != scale or scale < 0:
        raise LabError(f"{name} must be 0 or more (0 = no guidance), not {scale}.")
    if high is not None and scale > high:
        raise LabError(f"{name} must be between 0 and {high:g} (a larger one only saturates the samples), "
                       f"not {scale:g}.")
    return scale
