"""The local media engine: IMM's CreateMediaConvertTask animation semantics (DESIGN.md section 5), offline.

An adapter; PyAV is imported only inside functions, so FC (without PyAV) can import it. docs/engine.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .sample import sample_video

if TYPE_CHECKING:
    from ..convert_request import Animation
    from .worker import Worker

__all__ = ["EngineResult", "convert", "sample_video", "warm_up"]


@dataclass(frozen=True)
class EngineResult:
    frames: int
    width: int
    height: int
    bytes: int
    duration: float  # playback seconds (frames / FrameRate)
    source_width: int  # displayed size (after rotation and SAR)
    source_height: int
    elapsed: float  # wall seconds


def warm_up() -> None:
    """Start the fork server that threaded callers' jobs fork from (optional: their first job does)."""
    from multiprocessing import forkserver

    from .worker import mp_context

    mp_context("forkserver")
    forkserver.ensure_running()


def convert(src: str | os.PathLike, out: str | os.PathLike, animation: Animation, *,
            start: float | None = None, duration: float | None = None, quality: int | None = None,
            progress: Callable[[int, int | None], None] | None = None, timeout: float | None = None,
            isolate: bool = True, worker: Worker | None = None) -> EngineResult:
    """Make ``animation`` of ``src`` (clipped to ``start``/``duration``) at ``out``, there once complete.

    ``isolate``: in a worker process killed after ``timeout`` seconds (``worker``'s, when started already).
    ``MediaError``: media that cannot be converted (or that crashed the worker); ``ServiceError(retryable=True)``:
    a timeout.
    """
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    from types import SimpleNamespace

    from .worker import produce

    # The job reads the animation's fields only: plain data crosses to a worker started before pydantic was
    # imported (autoanim convert's) without importing it there; the job goes by name, so this process does
    # not import it either (about 10 ms of a 1-frame convert's start-up).
    fields = SimpleNamespace(**animation.model_dump())
    return produce(f"{__name__}.job:run", src, out, (fields, start, duration, quality), progress, timeout,
                   isolate, worker)
