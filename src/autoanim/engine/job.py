"""One conversion, in the current process: source times → pictures → geometry → writer."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..errors import MediaError
from . import encode, geometry
from .encode import GifWriter, WebpWriter
from .source import Decoder, open_video, pictures, sample_aspect_ratio

if TYPE_CHECKING:
    from ..convert_request import Animation
    from . import EngineResult

Progress = Callable[[int, "int | None"], None]


def sample_times(first: float, interval: float, number: int, end: float) -> Iterator[float]:
    """t_k = first + k·interval, inside the clip (before ``end``), at most ``number`` when > 0."""
    k = 0
    while (number <= 0 or k < number) and first + k * interval < end - 1e-9:
        yield first + k * interval
        k += 1


def run(
    src: str,
    tmp: str,
    animation: Animation,
    start: float | None,
    duration: float | None,
    quality: int | None,
    progress: Progress | None,
) -> EngineResult:
    from . import EngineResult

    began = time.perf_counter()
    if animation.interval <= 0:
        raise MediaError(f"Interval must be > 0 seconds, got {animation.interval}")
    frame_rate = animation.frame_rate if animation.frame_rate > 0 else 1 / animation.interval
    clip_start = max(0.0, start or 0.0)
    first = clip_start + max(0.0, animation.start_time or 0.0)
    container, stream = open_video(src)
    writer = None
    try:
        decoder = Decoder(container, stream)
        known_end = container.duration / 1_000_000 if container.duration else math.inf
        clip_end = clip_start + duration if duration else math.inf
        total = animation.number if animation.number > 0 else math.inf
        if min(clip_end, known_end) < math.inf:  # the header's duration is only an estimate
            span = min(clip_end, known_end) - first
            total = min(total, max(0, math.ceil(span / animation.interval - 1e-9)))
        total_or_none = total if total < math.inf else None
        geo = None
        graphs = {}  # one filter graph per decoded frame shape (a stream may change size)
        shown = (None, None)  # a source frame repeated for several samples is filtered once
        steps = 0  # GIF work is two steps per frame (capture, encode); progress counts frames
        per_frame = 2 if animation.format == "gif" else 1

        def tick() -> None:
            nonlocal steps
            steps += 1
            if progress and steps % per_frame == 0:
                progress(steps // per_frame, total_or_none)

        sar = sample_aspect_ratio(stream)
        count = 0
        for _, frame in pictures(decoder, sample_times(first, animation.interval, animation.number, clip_end)):
            if writer is None:
                geo = geometry.plan(frame.width, frame.height, sar, frame.rotation,
                                    animation.width, animation.height, animation.scale_type)
                source_size = geometry.displayed_size(frame.width, frame.height, sar, frame.rotation % 360)
                writer = (GifWriter if animation.format == "gif" else WebpWriter)(tmp, *geo.out, frame_rate, quality)
            if shown[0] is not frame:
                shape = (frame.width, frame.height, frame.format.name, frame.rotation)
                if shape not in graphs:
                    fit = geo if not graphs else geometry.plan(frame.width, frame.height, sar, frame.rotation,
                                                               *geo.out, "fill")
                    graphs[shape] = filter_graph(fit.chain(writer.pix_fmt), frame)
                shown = (frame, filtered(graphs[shape], frame))
            writer.add(shown[1])
            count += 1
            tick()
        if writer is None:
            raise _nothing(decoder, first, clip_end)
        shown, total_or_none = (None, None), count
        writer.finish(tick)
        writer = None
    finally:
        if writer is not None:  # failed before finishing: release the spool / output container
            writer.abort()
        container.close()
    return EngineResult(
        frames=count, width=geo.out[0], height=geo.out[1], bytes=os.path.getsize(tmp),
        duration=count / frame_rate, source_width=source_size[0], source_height=source_size[1],
        elapsed=time.perf_counter() - began,
    )


def filter_graph(chain: str, frame):
    return encode.graph(chain, frame.width, frame.height, frame.format.name)


def filtered(graph, frame):
    _, src, _, sink = graph
    src.push(frame)
    return sink.pull()


def _nothing(decoder: Decoder, first: float, clip_end: float) -> MediaError:
    if decoder.decoded == 0:
        reason = decoder.last_error or "no picture could be decoded"
        return MediaError(f"corrupt video: {reason}")
    where = f"from {first:g} s" + (f" to {clip_end:g} s" if clip_end < math.inf else "")
    return MediaError(f"no frames in the requested range ({where}; the video is shorter)")
