"""Where something happens: a clip's windows scored from small tiles sampled at known times (IMM's
sprite sheet, or the local engine's same tiles). numpy and Pillow are imported by the functions that
use them (planning a probe imports neither); the score and its knobs: docs/engine.md ("The score")."""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Params:
    """Every knob of the probe and the score, in one place."""

    # --- sampling (the probe sheet: the same for IMM's Sprites and the local engine)
    tile_width: int = 64  # pixels; multiples of 16 so JPEG blocks never straddle two tiles
    tile_height: int = 48
    columns: int = 10  # tiles per row of the sheet (IMM TileWidth)
    rows: int = 10  # tiles per column (IMM TileHeight); columns x rows = tiles per probe
    tiles_per_window: int = 6  # sampling interval = window / this ...
    min_interval: float = 0.25  # ... but never denser than this (seconds)
    interval_step: float = 0.05  # the interval is rounded up to a multiple of this (seconds)
    max_sheet_bytes: int = 2 * 1024 * 1024  # a sheet larger than this is refused unread
    # --- the score (luma levels are 0-255)
    black_level: float = 24.0  # a tile whose mean luma is below this is black
    flat_std: float = 5.0  # a tile whose luma standard deviation is below this is flat
    fade_step: float = 2.0  # a pair whose mean luma moves by this much or more ...
    fade_correlation: float = 0.95  # ... while the picture stays this correlated is a fade
    cut_distance: float = 0.5  # colour-histogram distance (0-1) from which a pair is always a shot boundary
    cut_relative: float = 0.15  # from this distance a pair is a boundary too when it is ...
    cut_ratio: float = 4.0  # ... this many times the median distance of the pairs around it
    cut_context: int = 4  # pairs on each side that make that median
    histogram_bins: int = 4  # per RGB channel (4 x 4 x 4 joint bins)
    noise: float = 1.0  # mean per-pixel change (levels) that is codec noise, not motion
    cross_penalty: float = 0.25  # a window's score is multiplied by this for each shot boundary inside it
    sustain: float = 0.75  # weight of the window's median pair motion against its mean (1 - sustain)


PARAMS = Params()


@dataclass(frozen=True)
class Choice:
    """The window picked: its start (seconds), its score, and why, in words."""

    start: float
    score: float
    why: str
    tiles: int  # tiles scored
    shots: list[tuple[float, float]] = field(default_factory=list)


def sampling_interval(window: float, params: Params = PARAMS) -> float:
    """Seconds between tiles for a window of ``window`` seconds."""
    raw = max(params.min_interval, window / params.tiles_per_window)
    return round(math.ceil(raw / params.interval_step - 1e-9) * params.interval_step, 6)


def luma(tile: np.ndarray) -> np.ndarray:
    """BT.601 luma (float32, 0-255) of an RGB (or already grey) tile."""
    import numpy as np

    tile = np.asarray(tile)
    if tile.ndim == 2:
        return tile.astype(np.float32)
    rgb = tile[..., :3].astype(np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _histogram(tile: np.ndarray, bins: int) -> np.ndarray:
    import numpy as np

    tile = np.asarray(tile)
    if tile.ndim == 2:
        tile = np.repeat(tile[..., None], 3, axis=2)
    q = (tile[..., :3].astype(np.int32) * bins) // 256
    index = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    counts = np.bincount(index.ravel(), minlength=bins**3).astype(np.float64)
    return counts / max(1.0, counts.sum())


@dataclass(frozen=True)
class Pair:
    """What changed between two consecutive tiles."""

    motion: float  # mean |change| per pixel, brightness and contrast changes removed (levels)
    distance: float  # colour-histogram distance, 0..1
    fade: bool  # the mean luma moved while the picture stayed correlated
    cut: bool = False


def tile_flags(tiles: Sequence[np.ndarray], params: Params = PARAMS) -> list[str]:
    """For each tile: ``"black"``, ``"flat"`` or ``""`` (good)."""
    flags = []
    for y in map(luma, tiles):
        black, flat = float(y.mean()) < params.black_level, float(y.std()) < params.flat_std
        flags.append("black" if black else "flat" if flat else "")
    return flags


def pairs(tiles: Sequence[np.ndarray], params: Params = PARAMS) -> list[Pair]:
    """One ``Pair`` for each two consecutive tiles."""
    import numpy as np

    found = []
    ys = [luma(tile) for tile in tiles]
    hists = [_histogram(tile, params.histogram_bins) for tile in tiles]
    for (p_y, y), (p_hist, hist) in zip(itertools.pairwise(ys), itertools.pairwise(hists)):
        if p_y.shape != y.shape:
            raise ValueError(f"tiles differ in size: {p_y.shape} and {y.shape}")
        p_y0, y0 = p_y - float(p_y.mean()), y - float(y.mean())
        # Brightness (mean) and contrast (spread) changes removed: a fade, however slow, is no motion.
        p_std, std = float(p_y.std()), float(y.std())
        gain = std / p_std if p_std > 1e-3 else 1.0
        motion = float(np.abs(y0 - gain * p_y0).mean())
        brightness = float(y.mean() - p_y.mean())
        norm = float(np.sqrt((y0 * y0).sum() * (p_y0 * p_y0).sum()))
        correlation = float((y0 * p_y0).sum() / norm) if norm > 0 else (1.0 if motion == 0 else 0.0)
        distance = float(np.abs(hist - p_hist).sum() / 2)
        fade = abs(brightness) >= params.fade_step and correlation >= params.fade_correlation
        found.append(Pair(motion, distance, fade))
    distances = [p.distance for p in found]
    for i, p in enumerate(found):
        around = distances[max(0, i - params.cut_context) : i] + distances[i + 1 : i + 1 + params.cut_context]
        typical = float(np.median(around)) if around else 0.0
        cut = p.distance >= params.cut_distance or (
            p.distance >= params.cut_relative and p.distance >= params.cut_ratio * typical)
        if cut and not p.fade:
            found[i] = replace(p, cut=True)
    return found


def choose_window(tiles: Sequence[np.ndarray], times: Sequence[float], duration: float, *,
                  params: Params = PARAMS) -> Choice:
    """The start of the ``duration``-second window with the most visible motion inside one shot, among the
    tile times (``times[i]``: when ``tiles[i]`` was sampled, ascending) whose window ends within the
    sampled range (the last time plus the median spacing)."""
    import numpy as np

    if len(tiles) != len(times):
        raise ValueError(f"{len(tiles)} tiles but {len(times)} times")
    if duration <= 0:
        raise ValueError(f"window duration must be > 0, got {duration}")
    times = [float(t) for t in times]
    if not tiles:
        return Choice(0.0, 0.0, "no tiles: the clip could not be sampled; starting at 0", 0)
    end = times[-1] + (float(np.median(np.diff(times))) if len(times) > 1 else duration)  # sampled range
    flags = tile_flags(tiles, params)
    steps = pairs(tiles, params)
    energy = [
        0.0 if (p.fade or p.cut or flags[i] or flags[i + 1]) else max(0.0, p.motion - params.noise)
        for i, p in enumerate(steps)
    ]
    bounds = [times[0], *(times[i + 1] for i, p in enumerate(steps) if p.cut), end]
    shots = list(itertools.pairwise(bounds))

    def judged(i: int) -> tuple:
        inside = [j for j in range(i, len(times)) if times[j] < times[i] + duration - 1e-6]
        # The pairs whose change happens within the window: the tile at the window's end closes it.
        inner = [j for j in range(i, len(steps)) if times[j + 1] <= times[i] + duration + 1e-6]
        bad = sum(1 for j in inside if flags[j])
        crosses = sum(1 for j in inner if steps[j].cut)
        values = [energy[j] for j in inner]
        motion = ((1 - params.sustain) * float(np.mean(values)) + params.sustain * float(np.median(values))
                  if values else 0.0)  # sustained motion beats one burst in a still window
        score = motion * (1 - bad / len(inside)) * params.cross_penalty**crosses
        return (round(score, 9), -crosses, -bad, -i), i, inside, score, bad, crosses

    candidates = [i for i, t in enumerate(times) if t + duration <= end + 1e-6] or [0]
    _, i, inside, score, bad, crosses = max(judged(i) for i in candidates)  # the keys differ: -i
    start = times[i]
    return Choice(start=start, score=round(score, 3),
                  why=_why(start, duration, score, energy, steps, flags, inside, shots, crosses, bad),
                  tiles=len(tiles), shots=shots)


def _why(start, duration, score, energy, steps, flags, inside, shots, crosses, bad) -> str:
    moving = sorted(energy) or [0.0]
    median = moving[len(moving) // 2]
    black, flat, fades = flags.count("black"), flags.count("flat"), sum(p.fade for p in steps)
    parts = [(f"{start:g}-{start + duration:g} s has the most motion ({score:.2f} levels per tile step; "
              f"clip median {median:.2f})")]
    if score <= 0:
        parts = [(f"no motion found; {start:g}-{start + duration:g} s is the first window with the fewest "
                  "black or flat tiles")]
    shot = next(((a, b) for a, b in shots if a <= start < b), None)
    if crosses:
        parts.append(f"it crosses {crosses} shot boundary(ies): no window inside one shot moves as much "
                     f"(score x{PARAMS.cross_penalty:g} per boundary)")
    elif shot is not None and len(shots) > 1:
        parts.append(f"inside the shot {shot[0]:g}-{shot[1]:g} s ({len(shots) - 1} shot boundaries found)")
    skipped = [f"{n} {what}" for n, what in ((black, "black"), (flat, "flat"), (fades, "fading")) if n]
    if skipped:
        parts.append(f"skipped {', '.join(skipped)} tile(s) of {len(flags)}")
    if bad:
        parts.append(f"{bad} of the window's {len(inside)} tiles are black or flat")
    return "; ".join(parts)


def split_sheet(data: bytes, *, columns: int, rows: int, tile_width: int, tile_height: int, margin: int = 0,
                pad: int = 0, count: int | None = None, max_bytes: int = PARAMS.max_sheet_bytes,
                ) -> list[np.ndarray]:
    """The tiles of a sprite sheet (JPEG or PNG bytes), row by row, as RGB uint8 arrays: up to ``columns``
    x ``rows``, ``margin`` px from the edge and ``pad`` apart (fewer tiles may mean fewer rows; without
    ``count``, trailing one-colour cells are dropped). ``ValueError``: too large, unreadable, too narrow."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise ValueError(f"sprite sheet of {len(data)} bytes is over the limit of {max_bytes}")
    width = 2 * margin + columns * tile_width + (columns - 1) * pad
    height_max = 2 * margin + rows * tile_height + (rows - 1) * pad
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"sprite sheet is not a readable image: {exc}") from exc
    with image:
        w, h = image.size  # read from the header: nothing decoded yet
        if w > width + 1 or h > height_max + 1 or w * h > 4 * width * height_max:
            raise ValueError(f"sprite sheet is {w}x{h}, larger than a {columns}x{rows} grid of "
                             f"{tile_width}x{tile_height} tiles ({width}x{height_max})")
        if w < tile_width + margin:
            raise ValueError(f"sprite sheet is {w}x{h}, narrower than one {tile_width} px tile")
        pixels = np.asarray(image.convert("RGB"))
    tiles = []
    for r, c in itertools.product(range(rows), range(columns)):  # row by row; cells past the edge are none
        y, x = margin + r * (tile_height + pad), margin + c * (tile_width + pad)
        if y + tile_height <= h and x + tile_width <= w:
            tiles.append(pixels[y : y + tile_height, x : x + tile_width])
    if count is not None:
        return tiles[:count]
    # An unused cell: one colour, give or take the JPEG chroma bleeding in from its neighbour.
    while tiles and float(tiles[-1].std()) < 2.0:
        tiles.pop()
    return tiles


def make_sheet(tiles: Sequence[np.ndarray], *, columns: int, margin: int = 0, pad: int = 0,
               fmt: str = "jpg", quality: int = 90) -> bytes:
    """Lay tiles out row by row (the inverse of ``split_sheet``) and encode the sheet."""
    import numpy as np
    from PIL import Image

    if not tiles:
        raise ValueError("no tiles for a sprite sheet")
    th, tw = tiles[0].shape[:2]
    used_rows = math.ceil(len(tiles) / columns)
    sheet = np.zeros((2 * margin + used_rows * th + (used_rows - 1) * pad,
                      2 * margin + columns * tw + (columns - 1) * pad, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = margin + r * (th + pad), margin + c * (tw + pad)
        sheet[y : y + th, x : x + tw] = np.asarray(tile)[..., :3]
    out = io.BytesIO()
    Image.fromarray(sheet).save(out, format="PNG" if fmt == "png" else "JPEG", quality=quality)
    return out.getvalue()
