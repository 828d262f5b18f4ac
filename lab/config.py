"""Settings, read from the environment each time they are asked for (tests change them)."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    data_dir: Path        # LAB_DATA_DIR: datasets (MNIST/raw, usps/usps.h5, ...)
    checkpoint_dir: Path  # LAB_CHECKPOINT_DIR: shipped and trained models
    runs_dir: Path        # LAB_RUNS_DIR: every run's configuration, figures and results
    cache_dir: Path       # LAB_CACHE_DIR: inverted latents, translated images
    weights_dir: Path     # LAB_WEIGHTS_DIR: third-party networks (face-api/ for the face identity loss)
    device: str           # LAB_DEVICE: auto | cpu | cuda | cuda:1 | mps
    offline: bool         # HF_HUB_OFFLINE=1 or LAB_OFFLINE=1: never try to download
    extra_roots: tuple[Path, ...] = ()  # LAB_MODEL_ROOTS: more folders the app may read models and images from


def _path(var: str, default: str) -> Path:
    value = os.environ.get(var) or default
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path)


def get_settings() -> Settings:
    return Settings(
        data_dir=_path("LAB_DATA_DIR", "./data"),
        checkpoint_dir=_path("LAB_CHECKPOINT_DIR", str(ROOT / "checkpoints")),
        runs_dir=_path("LAB_RUNS_DIR", "./runs"),
        cache_dir=_path("LAB_CACHE_DIR", "./cache"),
        weights_dir=_path("LAB_WEIGHTS_DIR", "./weights"),
        device=os.environ.get("LAB_DEVICE", "auto"),
        offline=os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("LAB_OFFLINE") == "1",
        extra_roots=tuple(Path(p).expanduser() for p in os.environ.get("LAB_MODEL_ROOTS", "").split(os.pathsep)
                          if p.strip()),
    )


def allowed_roots() -> list[Path]:
    """The folders whose models, images and runs the app may open: checkpoints, runs, data, LAB_MODEL_ROOTS."""
    s = get_settings()
    roots = [s.checkpoint_dir, s.runs_dir, s.data_dir, *s.extra_roots]
    return list(dict.fromkeys(r.resolve() for r in roots))


def inside_allowed(value, what: str = "The path") -> Path:
    """``value`` as a resolved path (symbolic links and '..' followed) that lies inside an allowed root;
    LabError otherwise. Relative paths are taken from the working folder, as the engine does."""
    text = str(value or "").strip()
    if not text or "\x00" in text or len(text) > 4096:
        raise LabError(f"{what} is not a usable path: give a folder under {', '.join(map(str, allowed_roots()))}.")
    path = Path(text).expanduser()
    try:
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    except (OSError, RuntimeError) as err:
        raise LabError(f"{what} {text[:200]!r} cannot be resolved ({err.__class__.__name__}).") from None
    roots = allowed_roots()
    if not any(path.is_relative_to(root) for root in roots):
        raise LabError(f"{what} {text[:200]!r} is outside the allowed folders ({', '.join(map(str, roots))}): "
                       "put it under one of them, or add its folder to LAB_MODEL_ROOTS "
                       f"(several separated by '{os.pathsep}').")
    return path


def typed_path(text: str, what: str = "The path") -> Path | None:
    """What a value typed into the app names, decided from the text alone before anything is looked up (so the
    answer never tells a remote user which files exist on the server):

    * absolute, ``~`` or ``..`` paths, ``./…``, and relative paths that resolve inside an allowed root: that
      path, which must lie inside an allowed root (LabError otherwise);
    * a bare name (``ddpm-mnist``, ``ViT-B-32``) or an ``owner/name`` Hub id that lies outside the roots: None,
      a name for the caller's registry (shipped models, open_clip, the Hub) and never a local file.
    """
    path = Path(text).expanduser()
    explicit = path.is_absolute() or ".." in path.parts or text.startswith(("~", "."))
    if explicit:
        return inside_allowed(path, what)
    if len(path.parts) == 1:
        return None
    try:
        resolved = (Path.cwd() / path).resolve()
    except (OSError, RuntimeError):
        resolved = None
    if resolved is not None and any(resolved.is_relative_to(r) for r in allowed_roots()):
        return resolved
    if len(path.parts) == 2 and all(part.strip(".") for part in path.parts):
        return None  # owner/name: a Hub id (or an open_clip arch/tag), never a folder outside the roots
    return inside_allowed(path, what)  # refused, with the same message whether it exists or not


def cpu_name() -> str:
    """The processor's model name (Linux /proc/cpuinfo), for benchmark records."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
