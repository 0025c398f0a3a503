"""The local media engine: IMM's CreateMediaConvertTask animation semantics, offline, with PyAV.

An adapter: the core never imports it. PyAV is imported only inside functions,
so the FC functions (which ship without PyAV) can import the package tree.
Semantics are those of DESIGN.md section 5; see docs/engine.md.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MediaError
from .sample import sample_video

if TYPE_CHECKING:
    from ..convert_request import Animation

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
    """Start the fork server that threaded callers' jobs fork from (it imports PyAV once), ahead of
    the first job. Optional: the first such job starts it otherwise."""
    from .worker import warm_up

    warm_up()


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    animation: Animation,
    *,
    start: float | None = None,
    duration: float | None = None,
    quality: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float | None = None,
    isolate: bool = True,
) -> EngineResult:
    """Make the animation ``animation`` of ``src`` (clipped to ``start``/``duration``) at ``out``.

    ``out`` appears only when complete (written beside it under a temporary
    name, then renamed). ``isolate`` runs the job in a worker process, killed
    after ``timeout`` seconds. Errors: ``MediaError`` for media that cannot be
    converted (and for a worker that crashed on it); ``ServiceError(retryable=True)``
    on timeout.
    """
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, got {quality}")
    src, out = os.fspath(src), Path(out)
    if not os.path.isfile(src):
        raise MediaError(f"no such file: {src}")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    args = (src, str(tmp), animation, start, duration, quality)
    try:
        from .job import run

        if isolate:
            from .worker import run_isolated

            result = run_isolated(run, args, progress, timeout)
        else:
            result = run(*args, progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return result
