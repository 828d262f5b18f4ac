"""Glue between Gradio and the engine: errors, progress with cancellation, shared widgets."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

import gradio as gr
import torch

from lab.config import get_settings
from lab.device import resolve_device
from lab.errors import Cancelled, LabError
from lab.models.store import list_models
from lab.progress import CancelToken

log = logging.getLogger("lab.ui")
_TOKENS: dict[str, CancelToken] = {}


class JobToken(CancelToken):
    """A cancel token that remembers how far its job got, for "stopped after step k of n"."""

    def __init__(self) -> None:
        super().__init__()
        self.last: tuple[int, int, str] | None = None


def _key(tab: str, request: gr.Request | None) -> str:
    return f"{getattr(request, 'session_hash', None) or 'local'}:{tab}"


def start_job(tab: str, request: gr.Request | None) -> JobToken:
    """A fresh cancel token for this browser session's job in ``tab``."""
    token = _TOKENS.setdefault(_key(tab, request), JobToken())
    token.reset()
    token.last = None
    return token


def stop_job(tab: str, request: gr.Request | None = None) -> None:
    _TOKENS.setdefault(_key(tab, request), JobToken()).cancel()
    gr.Info("Stopping after the current step; what has finished stays on the page and in the runs folder.")


def wire_stop(button: gr.Button, tab: str) -> None:
    """The tab's Stop button: cancels this browser session's running job in ``tab`` (API: ``<tab>_stop``)."""
    def stop(request: gr.Request):
        stop_job(tab, request)

    button.click(stop, None, None, api_name=f"{tab}_stop")


def stopped_message(last: tuple[int, int, str] | None) -> str:
    """"Stopped after step 312 of 1,000 (Sampling 16 images)." — from the last progress report of the job."""
    if not last:
        return "Stopped before the first step."
    done, total, desc = last
    what = f" ({desc})" if desc else ""
    return f"Stopped after step {done:,} of {max(total, 1):,}{what}."


def reporter(progress: gr.Progress, token: CancelToken):
    """An engine ``ProgressFn`` that drives ``gr.Progress`` and stops when the token is cancelled; the
    ``Cancelled`` it raises says after which step."""
    def report(done: int, total: int, desc: str) -> None:
        if token.cancelled:
            raise Cancelled(stopped_message(getattr(token, "last", None)))
        if isinstance(token, JobToken):
            token.last = (done, total, desc)
        progress((done, max(total, 1)), desc=desc)
    return report


def on_space_gpu(fn):
    """On a ZeroGPU Space work gets a GPU only inside ``spaces.GPU``; without the ``spaces`` package, a no-op."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


def shorten(message: str, word: int = 300, total: int = 1200) -> str:
    """A message fit to show: a pasted 10,000-character value it quotes is cut to its start and length."""
    import re

    message = re.sub(r"[^\s'\"]{%d,}" % (word + 1), lambda m: f"{m.group(0)[:40]}…({len(m.group(0)):,} characters)",
                     message)
    return message if len(message) <= total else f"{message[:total - 300]} … {message[-280:]}"


@contextlib.contextmanager
def user_errors(name: str):
    """Engine errors become messages: LabError → its text; anything else → a short notice, no traceback.
    ``Cancelled`` (the user pressed Stop) passes through untouched: it is no error (see ``guarded``)."""
    try:
        yield
    except (gr.Error, Cancelled):
        raise
    except LabError as err:
        raise gr.Error(shorten(str(err)), title="Cannot run this") from None
    except torch.OutOfMemoryError:
        raise gr.Error("Out of memory: use fewer images, a smaller batch or fewer steps.", title="Out of memory") from None
    except Exception as err:  # noqa: BLE001 — the user must never see a traceback
        log.exception("unexpected error in %s", name)
        raise gr.Error(f"Unexpected error ({type(err).__name__}). Nothing finished was lost; the server log "
                       "has the details.", title="Error") from None


def _stopped(err: Cancelled, stopped):
    """What a handler shows when its job was stopped: never an error. ``stopped(text, run_folder)`` gives the
    outputs (a "Stopped after step k of n" line and what finished); without it every output keeps what it shows."""
    folder = getattr(err, "run_dir", None)
    text = f"**{err}**" + (f" What finished is kept in `{folder}` (reopen it in the History tab)." if folder else "")
    gr.Info(str(err))
    return gr.skip() if stopped is None else stopped(text, folder)


def guarded(fn=None, *, stopped=None):
    """An event handler whose errors reach the user as messages (see ``user_errors``) and whose stopped jobs show
    ``stopped(text, run_folder)``'s outputs (default: a notice, the outputs unchanged)."""
    if fn is None:
        return functools.partial(guarded, stopped=stopped)
    run = on_space_gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with user_errors(fn.__name__):
                return run(*args, **kwargs)
        except Cancelled as err:
            return _stopped(err, stopped)
    return wrapper


def guarded_stream(fn=None, *, stopped=None):
    """``guarded`` for generator handlers (results streamed as they come)."""
    if fn is None:
        return functools.partial(guarded_stream, stopped=stopped)
    run = on_space_gpu(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with user_errors(fn.__name__):
                yield from run(*args, **kwargs)
        except Cancelled as err:
            yield _stopped(err, stopped)
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


def _number_problem(component, payload):
    """(clean value, None) for a usable number box / slider payload, else (None, message naming the box)."""
    label = str(getattr(component, "label", None) or "This number")
    low, high = getattr(component, "minimum", None), getattr(component, "maximum", None)
    span = (f" between {low:g} and {high:g}" if low is not None and high is not None else
            f" of at least {low:g}" if low is not None else f" of at most {high:g}" if high is not None else "")
    value = payload
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return None, f"{label} must be a number{span}, not {str(payload)[:60]!r}."
    if (low is not None and value < low) or (high is not None and value > high):
        return None, f"{label} must be{span}, not {value:g}."
    return value, None


def _check_numbers_before_gradio() -> None:
    """Gradio's Number/Slider preprocessing crashes (TypeError, no message) on non-numbers sent through the API
    and refuses out-of-range values without naming the box; check first and answer with a sentence that does."""
    from gradio.components.number import Number
    from gradio.components.slider import Slider

    for cls in (Number, Slider):
        if getattr(cls.preprocess, "_lab_checked", False):
            continue

        def preprocess(self, payload, _original=cls.preprocess, _optional=cls is Number):
            if payload is None and _optional:
                return _original(self, payload)
            value, problem = _number_problem(self, payload)
            if problem:
                raise gr.Error(problem, title="Cannot run this")
            return _original(self, value)

        preprocess._lab_checked = True
        cls.preprocess = functools.wraps(cls.preprocess)(preprocess)


_check_numbers_before_gradio()


def int_in(value, name: str, low: int, high: int) -> int:
    """A whole number from a widget, checked against its range (the API can send anything)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LabError(f"{name} must be a number, not {value!r}.") from None
    if number != number or abs(number) == float("inf") or number != int(number):
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
        raise LabError(f"{str(value)[:200]} is not a run folder inside {root}.")
    return folder


def model_in(value, what: str = "Model") -> str:
    """A model box's value: a shipped name, a Hub id, or a folder inside the allowed folders (checkpoints, runs,
    data and LAB_MODEL_ROOTS); the API can send any path, so it is checked before anything is opened."""
    from lab.models.store import check_model_source

    return check_model_source(value, what)


def folder_in(value, what: str = "The folder") -> str | None:
    """An optional server folder (images, a dataset) typed by the user: None when empty, else a folder inside
    the allowed folders."""
    text = str(value or "").strip()
    if not text:
        return None
    from lab.config import inside_allowed

    inside_allowed(text, what)
    return text


def clip_in(value, pretrained=None, what: str = "CLIP") -> tuple[str, str | None]:
    """A CLIP box (shipped name, open_clip name, or a folder) and its optional weights file: paths must lie inside
    the allowed folders."""
    from lab.config import get_settings, typed_path

    out = []
    for text, label in ((str(value or "").strip(), what), (str(pretrained or "").strip(), f"{what} weights file")):
        if len(text) > 1024:
            raise LabError(f"{label}: the text is {len(text)} characters long; give clip-lab (shipped), a folder, "
                           "or an open_clip name such as ViT-B-32 (at most 1024 characters).")
        out.append((text, typed_path(text, label) if text else None))
    (name, local), (weights, _) = out
    if not name:
        raise LabError("Choose a CLIP model first (clip-lab is shipped).")
    if local is None and not (len(Path(name).parts) == 1 and (get_settings().checkpoint_dir / name).is_dir()):
        import open_clip

        # not a local path: a shipped name, or open_clip's (an architecture, or architecture/tag) — never a file
        if name.partition("/")[0].strip() not in open_clip.list_models():
            raise LabError(f"Unknown CLIP {name!r}: give the shipped clip-lab, a folder with open_clip_config.json, "
                           "or an open_clip architecture with a tag, e.g. ViT-B-32 / openai.")
    return name, weights or None


EXPORT_LABEL = "Export: figures, metrics and the run as one zip"


def export_box(**kwargs) -> gr.File:
    """The download list a tab shows after each run (see ``export_files``)."""
    return gr.File(label=EXPORT_LABEL, file_count="multiple", interactive=False, **kwargs)


def export_files(run_dir, figures: dict | None = None) -> list[str]:
    """A run's figures (PNG, SVG/PDF, HTML), tables (CSV) and the zip of the whole run; where charts cannot be
    exported as pictures (no browser for kaleido), a warning says so and HTML and CSV are still offered."""
    from lab.runs import export_files as files_of
    from lab.viz.export import STATIC_EXPORT_NOTE, static_export_available

    files = files_of(Path(run_dir), figures)
    if not static_export_available() and (figures or any(f.suffix == ".html" for f in files)):
        gr.Warning(STATIC_EXPORT_NOTE)
    return [str(f) for f in files]
