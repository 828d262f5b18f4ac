"""Glue between Gradio and the engine: errors, progress with cancellation, shared widgets."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import gradio as gr
import torch

from lab.config import get_settings, resolve_device
from lab.errors import Cancelled, LabError
from lab.models.store import list_models
from lab.progress import CancelToken

log = logging.getLogger("lab.ui")
_TOKENS: dict[str, CancelToken] = {}


def _key(tab: str, request: gr.Request | None) -> str:
    return f"{getattr(request, 'session_hash', None) or 'local'}:{tab}"


def start_job(tab: str, request: gr.Request | None) -> CancelToken:
    """A fresh cancel token for this browser session's job in ``tab``."""
    token = _TOKENS.setdefault(_key(tab, request), CancelToken())
    token.reset()
    return token


def stop_job(tab: str, request: gr.Request | None = None) -> None:
    _TOKENS.setdefault(_key(tab, request), CancelToken()).cancel()
    gr.Info("Stopping after the current step; finished results are kept in the runs folder.")


def wire_stop(button: gr.Button, tab: str) -> None:
    """The tab's Stop button: cancels this browser session's running job in ``tab`` (API: ``<tab>_stop``)."""
    def stop(request: gr.Request):
        stop_job(tab, request)

    button.click(stop, None, None, api_name=f"{tab}_stop")


def reporter(progress: gr.Progress, token: CancelToken):
    """An engine ``ProgressFn`` that drives ``gr.Progress`` and stops when the token is cancelled."""
    def report(done: int, total: int, desc: str) -> None:
        token.check()
        progress((done, max(total, 1)), desc=desc)
    return report


def on_space_gpu(fn):
    """On a ZeroGPU Space work gets a GPU only inside ``spaces.GPU``; without the ``spaces`` package, a no-op."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


@contextlib.contextmanager
def user_errors(name: str):
    """Engine errors become messages: LabError → its text; anything else → a short notice, no traceback."""
    try:
        yield
    except gr.Error:
        raise
    except Cancelled as err:
        raise gr.Error(str(err), title="Stopped") from None
    except LabError as err:
        raise gr.Error(str(err), title="Cannot run this") from None
    except torch.OutOfMemoryError:
        raise gr.Error("Out of memory: use fewer images, a smaller batch or fewer steps.", title="Out of memory") from None
    except Exception as err:  # noqa: BLE001 — the user must never see a traceback
        log.exception("unexpected error in %s", name)
        raise gr.Error(f"Unexpected error ({type(err).__name__}). Nothing finished was lost; the server log "
                       "has the details.", title="Error") from None


def guarded(fn):
    """An event handler whose errors reach the user as messages (see ``user_errors``)."""
    run = on_space_gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with user_errors(fn.__name__):
            return run(*args, **kwargs)
    return wrapper


def guarded_stream(fn):
    """``guarded`` for generator handlers (results streamed as they come)."""
    run = on_space_gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with user_errors(fn.__name__):
            yield from run(*args, **kwargs)
    return wrapper


def notify(notes: list[str]) -> None:
    for note in notes:
        gr.Warning(note)


def model_dropdown(kind: str | None, label: str = "Model", value: str | None = None, **kwargs) -> gr.Dropdown:
    choices = list_models(kind)
    return gr.Dropdown(choices=choices, value=value or (choices[0] if choices else None), label=label,
                       allow_custom_value=True,
                       info="A shipped model, or the path of a diffusers model folder of your own.", **kwargs)


def device_note() -> str:
    device = resolve_device()
    if device.type == "cpu":
        return (f"Running on **CPU** ({torch.get_num_threads()} threads): every tab works, with small defaults; "
                "a GPU makes large runs much faster.")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    return f"Running on **{name}**."


def int_in(value, name: str, low: int, high: int) -> int:
    """A whole number from a widget, checked against its range (the API can send anything)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabError(f"{name} must be a number, not {value!r}.") from None
    if number != number or number != int(number):
        raise LabError(f"{name} must be a whole number, not {value!r}.")
    if not low <= number <= high:
        raise LabError(f"{name} must be between {low} and {high}, not {int(number)}.")
    return int(number)


def float_in(value, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabError(f"{name} must be a number, not {value!r}.") from None
    if number != number or not low <= number <= high:
        raise LabError(f"{name} must be between {low} and {high}, not {value}.")
    return number


def is_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def run_folder(value, what: str = "run") -> Path:
    """A run folder given back by the browser or the API; it must lie inside the runs folder."""
    if not value or not str(value).strip():
        raise LabError(f"Start a {what} first (or paste the folder of an earlier one).")
    root = get_settings().runs_dir.resolve()
    folder = Path(str(value).strip()).expanduser()
    folder = (folder if folder.is_absolute() else root / folder).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        raise LabError(f"{value} is not a run folder inside {root}.")
    return folder
