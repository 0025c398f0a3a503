"""IMM's ``Image.Sprites`` sheet (the ``start: auto`` probe) offline: tile k at ``StartTime + k·Interval``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MediaError

if TYPE_CHECKING:
    from ..convert_request import Sprite


@dataclass(frozen=True)
class SheetResult:
    tiles: int
    width: int
    height: int
    bytes: int


def sprite_sheet(src: str | os.PathLike, out: str | os.PathLike, sprite: Sprite, *,
                 start: float | None = None, duration: float | None = None, timeout: float | None = None,
                 isolate: bool = True) -> SheetResult:
    """The sheet ``sprite`` asks of ``src`` (clipped to ``start``/``duration``) at ``out``, as ``convert``."""
    from .worker import produce

    return produce(render, src, out, (sprite, start, duration), None, timeout, isolate)


def render(src: str, out: str, sprite: Sprite, start: float | None, duration: float | None,
           progress=None) -> SheetResult:
    """In this process: decode the sampled pictures, make the tiles, write the sheet (no progress reported)."""
    from ..activity import make_sheet
    from . import encode, geometry
    from .job import clip, sample_times
    from .source import Decoder, open_video, pictures, sample_aspect_ratio

    if sprite.interval <= 0:
        raise MediaError(f"Sprites Interval must be > 0 seconds, got {sprite.interval}")
    first, clip_end = clip(sprite, start, duration)  # as an animation's frames
    container, stream = open_video(src)
    tiles = []
    try:
        decoder = Decoder(container, stream)
        sar = sample_aspect_ratio(stream)
        graphs, shown = {}, (None, None)
        for _, frame in pictures(decoder, sample_times(first, sprite.interval, sprite.number, clip_end)):
            if shown[0] is not frame:
                shape = (frame.width, frame.height, frame.format.name, frame.rotation)
                if shape not in graphs:
                    geo = geometry.plan(frame.width, frame.height, sar, frame.rotation, sprite.scale_width,
                                        sprite.scale_height, sprite.scale_type)
                    graphs[shape] = encode.graph(geo.chain("rgb24"), frame.width, frame.height, frame.format.name)
                _, buffer, _, sink = graphs[shape]
                buffer.push(frame)
                shown = (frame, sink.pull().to_ndarray())
            tiles.append(shown[1])
        if not tiles:
            if decoder.decoded == 0:
                raise MediaError(f"corrupt video: {decoder.last_error or 'no picture could be decoded'}")
            raise MediaError(f"no frames in the probed range (from {first:g} s; the video is shorter)")
    finally:
        container.close()
    h, w = tiles[0].shape[:2]
    if len({t.shape for t in tiles}) > 1:  # fit/crop of a stream that changed size: pad to the first's
        tiles = [_fit(t, w, h) for t in tiles]
    data = make_sheet(tiles, columns=sprite.tile_width, margin=sprite.margin, pad=sprite.pad, fmt=sprite.format)
    Path(out).write_bytes(data)
    rows = math.ceil(len(tiles) / sprite.tile_width)
    return SheetResult(tiles=len(tiles), width=2 * sprite.margin + sprite.tile_width * w + (sprite.tile_width - 1) * sprite.pad,
                       height=2 * sprite.margin + rows * h + (rows - 1) * sprite.pad, bytes=len(data))


def _fit(tile, width: int, height: int):
    import numpy as np

    out = np.zeros((height, width, 3), np.uint8)
    h, w = min(height, tile.shape[0]), min(width, tile.shape[1])
    out[:h, :w] = tile[:h, :w]
    return out
