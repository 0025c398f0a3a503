"""One conversion, in the current process: source times → pictures → geometry → writer."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import MediaError
from . import EngineResult, encode, geometry
from .source import Decoder, open_video, pictures, sample_aspect_ratio

if TYPE_CHECKING:
    from ..convert_request import Animation


def sample_times(first: float, interval: float, number: int, end: float) -> Iterator[float]:
    """t_k = first + k·interval, inside the clip (before ``end``), at most ``number`` when > 0."""
    k = 0
    while (number <= 0 or k < number) and first + k * interval < end - 1e-9:
        yield first + k * interval
        k += 1


def clip(animation: Animation, start: float | None, duration: float | None) -> tuple[float, float]:
    """The first sample's time and the clip's end (``Sources[0].StartTime/Duration``, then the offset)."""
    if animation.interval <= 0:
        raise MediaError(f"Interval must be > 0 seconds, got {animation.interval}")
    clip_start = max(0.0, start or 0.0)
    return clip_start + max(0.0, animation.start_time or 0.0), clip_start + duration if duration else math.inf


def frame_rate(animation: Animation) -> float:
    return animation.frame_rate if animation.frame_rate > 0 else 1 / animation.interval


def sampled(decoder: Decoder, animation: Animation, first: float, end: float,
            pix_fmt: str) -> Iterator[tuple[geometry.Geometry, object]]:
    """Each sample's picture at the animation's size in ``pix_fmt``, and the first frame's geometry: a
    frame shown for several samples is filtered once, one of another shape fitted with bars to that size."""
    sar = sample_aspect_ratio(decoder.stream)
    geo, graphs, shown = None, {}, (None, None)
    for _, frame in pictures(decoder, sample_times(first, animation.interval, animation.number, end)):
        if shown[0] is not frame:
            shape = (frame.width, frame.height, frame.format.name, frame.rotation)
            if shape not in graphs:
                box = (*geo.out, "fill") if geo else (animation.width, animation.height, animation.scale_type)
                fitted = geometry.plan(frame.width, frame.height, sar, frame.rotation, *box)
                geo = geo or fitted
                graphs[shape] = encode.graph(fitted.chain(pix_fmt), *shape[:3])
            _, buffer, _, sink = graphs[shape]
            buffer.push(frame)
            shown = (frame, sink.pull())
        yield geo, shown[1]
    if geo is None and decoder.decoded == 0:
        raise MediaError(f"corrupt video: {decoder.last_error or 'no picture could be decoded'}")
    if geo is None:
        where = f"from {first:g} s" + (f" to {end:g} s" if end < math.inf else "")
        raise MediaError(f"no frames in the requested range ({where}; the video is shorter)")


def run(src: str, tmp: str, animation: Animation, start: float | None, duration: float | None,
        quality: int | None, progress: Callable[[int, int | None], None] | None) -> EngineResult:
    began = time.perf_counter()
    first, end = clip(animation, start, duration)
    rate = frame_rate(animation)
    writer_class = encode.GifWriter if animation.format == "gif" else encode.WebpWriter
    container, stream = open_video(src)
    writer = None
    try:
        total = animation.number if animation.number > 0 else None
        known_end = min(end, container.duration / 1_000_000 if container.duration else math.inf)
        if known_end < math.inf:  # the header's duration is only an estimate
            span = max(0, math.ceil((known_end - first) / animation.interval - 1e-9))
            total = span if total is None else min(total, span)
        steps = 0  # GIF work is two steps per frame (capture, encode); progress counts frames
        per_frame = 2 if animation.format == "gif" else 1

        def tick() -> None:
            nonlocal steps
            steps += 1
            if progress and steps % per_frame == 0:
                progress(steps // per_frame, total)

        samples = sampled(Decoder(container, stream), animation, first, end, writer_class.pix_fmt)
        for count, (geo, picture) in enumerate(samples, 1):
            if writer is None:
                writer = writer_class(tmp, *geo.out, rate, quality)
            writer.add(picture)
            tick()
        total = count
        writer.finish(tick)
        writer = None
    finally:
        if writer is not None:  # failed before finishing: release the spool / output container
            writer.abort()
        container.close()
    return EngineResult(frames=count, width=geo.out[0], height=geo.out[1], bytes=os.path.getsize(tmp),
                        duration=count / rate, source_width=geo.displayed[0], source_height=geo.displayed[1],
                        elapsed=time.perf_counter() - began)

