"""Test videos with a known active part: still, black, flat or fading stretches around motion.

``segments_video(out, [("still", 10), ("move", 5), ("still", 10)])``: motion from 10 s to 15 s only, the
label (``active_range``) the tests and bench/highlight.py check ``start: auto`` against. Kinds: ``move``
(the pan of ``sample_video``), ``still`` (the nearest moving frame, frozen), ``black``, ``flat`` (one
grey), ``fadein``/``fadeout`` (the frozen frame from/to black).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from ..errors import MediaError
from .sample import _landscape, _scene, write_mp4

KINDS = ("move", "still", "black", "flat", "fadein", "fadeout")


def segments_video(out: str | os.PathLike, segments: list[tuple[str, float]], *, width: int = 160,
                   height: int = 96, fps: int = 10, seed: int = 7) -> Path:
    import numpy as np

    if not segments or any(kind not in KINDS or seconds <= 0 for kind, seconds in segments):
        raise MediaError(f"segments must be ({'|'.join(KINDS)}, seconds > 0) pairs, got {segments!r}")
    world = _landscape(width * 3, height, seed=seed)

    def pictures():
        moving_time = 0.0  # seconds of motion so far: a still frame freezes the picture at this moment
        for kind, seconds in segments:
            count = max(1, round(seconds * fps))
            for k in range(count):
                if kind == "black":
                    yield np.zeros((height, width, 3), np.uint8)
                elif kind == "flat":
                    yield np.full((height, width, 3), 128, np.uint8)
                else:
                    x = int(width * 2 * (moving_time / 20.0) % (width * 2))  # the pan: two widths in 20 s
                    img = _scene(world, x, moving_time, width, 0.08)
                    if kind == "move":
                        moving_time += 1 / fps
                    elif kind != "still":
                        level = (k + 1) / count if kind == "fadein" else 1 - (k + 1) / count
                        img = (img.astype(np.float32) * level).astype(np.uint8)
                    yield img

    return write_mp4(out, pictures(), width=width, height=height, fps=fps)


def active_range(segments: list[tuple[str, float]]) -> tuple[float, float]:
    """The first and last second of motion (the label of a clip made by ``segments_video``)."""
    starts = list(itertools.accumulate((seconds for _, seconds in segments), initial=0.0))
    moving = [i for i, (kind, _) in enumerate(segments) if kind == "move"]
    if not moving:
        raise ValueError("no move segment")
    return starts[moving[0]], starts[moving[-1] + 1]
