"""Progress reporting and cancellation shared by the CLI (tqdm) and the app (gr.Progress).

Engine functions take ``progress``: a callable ``(done, total, desc)``. A front end's callable
may raise :class:`lab.errors.Cancelled` to stop the job between two steps.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

from lab.errors import Cancelled

ProgressFn = Callable[[int, int, str], None]
T = TypeVar("T")


def track(items: Iterable[T], total: int, desc: str, progress: ProgressFn | None) -> Iterator[T]:
    """Yield ``items``, reporting each one done to ``progress`` (if any)."""
    if progress is not None:
        progress(0, total, desc)
    for i, item in enumerate(items):
        yield item
        if progress is not None:
            progress(i + 1, total, desc)


class TqdmProgress:
    """A ``ProgressFn`` for the terminal: one tqdm bar per description."""

    def __init__(self, disable: bool = False):
        self.bar: tqdm | None = None
        self.desc = None
        self.disable = disable

    def __call__(self, done: int, total: int, desc: str) -> None:
        # "Training (loss 0.03)": the part in brackets changes, the bar stays
        title, _, detail = desc.partition(" (")
        if self.bar is None or title != self.desc or total != self.bar.total:
            self.close()
            self.bar = tqdm(total=total, desc=title, disable=self.disable, dynamic_ncols=True)
            self.desc = title
        if detail:
            self.bar.set_postfix_str(detail.rstrip(")"), refresh=False)
        self.bar.n = done
        self.bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class CancelToken:
    """Set from another thread (a Stop button, Ctrl-C handler); checked between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def reset(self) -> None:
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("Stopped by the user; results finished so far are kept.")


def part(progress: ProgressFn | None, index: int, count: int, desc: str | None = None) -> ProgressFn | None:
    """The ``ProgressFn`` of part ``index`` (0-based) of a job made of ``count`` equal parts (batches, settings,
    seeds): each part's (done, total) is placed in the whole, so one bar runs once from 0 to the end. ``desc``
    replaces the part's own description (``{desc}`` in it is the part's)."""
    if progress is None:
        return None

    def report(done: int, total: int, own: str) -> None:
        total = max(total, 1)
        progress(index * total + done, count * total, desc.format(desc=own) if desc else own)
    return report
