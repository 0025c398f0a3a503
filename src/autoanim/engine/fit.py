"""Fit an animation under a byte cap: a bounded search over frame rate, size and quality (or colours).

The clip is decoded once into memory at the request's rate and size (the largest candidate); each
candidate is made from it by the engine's writers, the first from the size model, each next one scaled
by the ratio measured; the largest file under the cap wins (docs/engine.md, "The engine's search").
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import targets
from ..errors import MediaError
from . import EngineResult
from .encode import GifWriter, WebpWriter
from .job import clip, frame_rate, sampled
from .source import Decoder, open_video

if TYPE_CHECKING:
    from ..convert_request import Animation

MAX_ENCODES = 4  # the search's encodes; one more, at the floors, only when none was under the cap
AIM = 0.92  # each step aims at this share of the cap
GOOD = 0.80  # a result under the cap and at least this share of it ends the search
DEFAULT_QUALITY = {"webp": 75, "gif": 90}  # the writers' defaults (GIF: 256 colours)
QUALITY_STEP = {"webp": 20, "gif": 14}  # one step down when rate and size are at their floors
FLOOR_QUALITY = {"webp": 35, "gif": 55}
MAX_MEMORY = 768 * 1024 * 1024  # bytes of decoded pictures the search may hold (a target's clip: far less)


@dataclass(frozen=True)
class Candidate:
    knobs: targets.Knobs
    quality: int
    bytes: int
    path: str


@dataclass(frozen=True)
class FitResult(EngineResult):
    fps: float
    quality: int
    cap: int
    met: bool
    given_up: list[str]
    encodes: int
    tried: list[dict]  # each candidate: bytes, fps, width, height, frames, quality


def decode(src: str, animation: Animation, start: float | None, duration: float | None):
    """The clip's pictures as rgb24 arrays at the request's rate and size (a repeat shares its array),
    and their geometry."""
    first, end = clip(animation, start, duration)
    container, stream = open_video(src)
    out, last = [], None
    try:
        for geo, picture in sampled(Decoder(container, stream), animation, first, end, "rgb24"):
            held = animation.number * geo.out[0] * geo.out[1] * 3
            if not out and held > MAX_MEMORY:
                raise MediaError(f"the search would hold {held / 2**20:.0f} MiB of pictures "
                                 f"({animation.number} frames of {geo.out[0]}x{geo.out[1]}), over "
                                 f"{MAX_MEMORY // 2**20} MiB: fewer frames or a smaller size, or --fit model")
            if picture is not last:
                last, array = picture, picture.to_ndarray()
            out.append(array)
    finally:
        container.close()
    return out, geo


def encode(pictures: list, base: targets.Knobs, knobs: targets.Knobs, fmt: str, quality: int,
           path: str) -> int:
    """One candidate from the decoded pictures: resampled to ``knobs``' rate, scaled to its size."""
    import av

    step = knobs.interval / base.interval
    picks = [pictures[min(len(pictures) - 1, math.floor(k * step + 1e-6))] for k in range(knobs.frames)]
    size = (int(knobs.width), int(knobs.height))
    writer = (GifWriter if fmt == "gif" else WebpWriter)(path, *size, knobs.fps, quality)
    last = None
    try:
        for picture in picks:
            if picture is not last:  # a repeated picture stays one object: the writers show it longer
                made = av.VideoFrame.from_ndarray(picture, format="rgb24")
                made = made.reformat(*size, format=writer.pix_fmt, interpolation="LANCZOS")  # or itself
                last = picture
            writer.add(made)
        writer.finish(lambda: None)
    except BaseException:
        writer.abort()
        raise
    return os.path.getsize(path)


def fit(src: str | os.PathLike, out: str | os.PathLike, animation: Animation, cap: int, *,
        start: float | None = None, duration: float | None = None, fixed_size: bool = False) -> FitResult:
    """The best animation of ``animation`` (its rate and size the most asked for) under ``cap`` bytes."""
    began = time.perf_counter()
    src, out = os.fspath(src), Path(out)
    if not os.path.isfile(src):
        raise MediaError(f"no such file: {src}")
    pictures, geo = decode(src, animation, start, duration)
    fmt = animation.format
    base = targets.Knobs(fps=frame_rate(animation), interval=animation.interval, frames=len(pictures),
                         width=geo.out[0], height=geo.out[1], size_fixed=fixed_size)
    default = quality = DEFAULT_QUALITY[fmt]
    factor = min(1.0, cap * AIM / targets.estimate_bytes(fmt, base.width, base.height, base.frames))
    tried: list[Candidate] = []

    def attempt(knobs: targets.Knobs, q: int) -> Candidate:
        path = str(out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part"))
        tried.append(Candidate(knobs, q, encode(pictures, base, knobs, fmt, q, path), path))
        return tried[-1]

    try:
        for _ in range(MAX_ENCODES):
            knobs = targets.shrink(base, factor)[0]
            if any(c.knobs == knobs and c.quality == quality for c in tried):  # rate and size at their floors
                if quality <= FLOOR_QUALITY[fmt]:
                    break
                quality = max(FLOOR_QUALITY[fmt], quality - QUALITY_STEP[fmt])
            got = attempt(knobs, quality)
            if got.bytes <= cap and (got.bytes >= cap * GOOD or (factor >= 1 and quality == default)):
                break
            factor = min(1.0, factor * cap * AIM / got.bytes)
        if not any(c.bytes <= cap for c in tried):  # the floors: the smallest this search makes
            attempt(targets.shrink(base, 1e-6)[0], FLOOR_QUALITY[fmt])
        under = [c for c in tried if c.bytes <= cap]
        best = max(under, key=lambda c: c.bytes) if under else min(tried, key=lambda c: c.bytes)
        os.replace(best.path, out)
    finally:
        for c in tried:
            Path(c.path).unlink(missing_ok=True)
    lost = targets.given_up(base, best.knobs)
    if best.quality != default:
        lost.append(f"quality {default} → {best.quality}" if fmt == "webp" else
                    f"colours {_colours(default)} → {_colours(best.quality)}")
    summary = [{"bytes": c.bytes, "fps": c.knobs.fps, "width": int(c.knobs.width),
                "height": int(c.knobs.height), "frames": c.knobs.frames, "quality": c.quality} for c in tried]
    k = best.knobs
    return FitResult(
        frames=k.frames, width=int(k.width), height=int(k.height), duration=k.frames / k.fps, fps=k.fps,
        source_width=geo.displayed[0], source_height=geo.displayed[1], elapsed=time.perf_counter() - began,
        bytes=best.bytes, quality=best.quality, cap=cap, met=best.bytes <= cap, given_up=lost,
        encodes=len(tried), tried=summary)


def _colours(quality: int) -> int:
    return max(8, min(256, round(256 - 6 * (90 - quality))))  # as GifWriter reads its quality
