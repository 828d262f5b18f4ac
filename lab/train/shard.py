"""Random draws for this process's share of a global batch, so a data-parallel run draws exactly what one process
would: every process draws for the whole global batch from the same (seed, step) generator and keeps its slice.

With one process these are the plain ``torch.randn`` / ``torch.randint`` / ``torch.rand`` calls, draw for draw.
The process index and count come from accelerate's ``PartialState`` (set up by ``accelerate launch``).
"""
from __future__ import annotations

import torch


def _state():
    from accelerate.state import PartialState

    # accelerate runs several CPU processes (gloo) only when asked for the CPU
    return PartialState(cpu=not torch.cuda.is_available())


def share() -> tuple[int, int]:
    """(this process's index, the number of processes)."""
    state = _state()
    return state.process_index, state.num_processes


def wait_for_everyone() -> None:
    """Wait until every process reaches this point (nothing with one process)."""
    _state().wait_for_everyone()


def _draw(make, shape, generator: torch.Generator) -> torch.Tensor:
    rank, world = share()
    shape = tuple(shape)
    if world == 1:
        return make(shape)
    n = shape[0]
    return make((n * world, *shape[1:]))[rank * n:(rank + 1) * n]


def randn(shape, generator: torch.Generator) -> torch.Tensor:
    return _draw(lambda s: torch.randn(s, generator=generator, device=generator.device), shape, generator)


def rand(shape, generator: torch.Generator) -> torch.Tensor:
    return _draw(lambda s: torch.rand(s, generator=generator, device=generator.device), shape, generator)


def randint(low: int, high: int, shape, generator: torch.Generator) -> torch.Tensor:
    return _draw(lambda s: torch.randint(low, high, s, generator=generator, device=generator.device), shape,
                 generator)


def is_main() -> bool:
    """Whether this is the process that writes model folders, cards and run records (the only one when there is
    one)."""
    return share()[0] == 0
