"""Where something happens: score windows of a clip from small tiles sampled at known times.

Pure functions over numpy arrays (no video decoding; numpy and Pillow are imported
by the functions that use them, so planning a probe imports neither): the cloud reads the tiles
from IMM's sprite sheet (``split_sheet``), the local engine makes the same
tiles itself (``autoanim.engine.probe``), and both call ``choose_window``, so a
local preview picks what IMM would. Every tunable number is in ``Params``;
docs/engine.md ("start: auto") explains them.

The score of a window is its mean motion energy (how much the picture changes
from one tile to the next, brightness and contrast changes removed; the median
pair weighs three times the mean, so sustained motion beats one burst) times
the share of good tiles in it. A tile is bad when it is black or flat (one colour:
a blank card); a pair of tiles that only gets brighter or darker (a fade)
counts no motion; a pair whose colours change wholesale is a shot boundary,
and a window that spans one keeps a quarter of its score per boundary, so it
stays in one shot unless no window inside one shot has a quarter of its motion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    """The window picked: start and end (seconds), its score, and why, in words."""

    start: float
    end: float
    score: float
    why: str
    tiles: int  # tiles scored
    shots: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "score": self.score, "why": self.why, "tiles": self.tiles}


def sampling_interval(window: float, params: Params = PARAMS) -> float:
    """Seconds between tiles for a window of ``window`` seconds."""
    raw = max(params.min_interval, window / params.tiles_per_window)
    return round(math.ceil(raw / params.interval_step - 1e-9) * params.interval_step, 6)


# --- tiles -------------------------------------------------------------------------------------


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
    brightness: float  # change of mean luma (levels, signed)
    correlation: float  # of the two pictures, -1..1
    distance: float  # colour-histogram distance, 0..1
    fade: bool
    cut: bool


def tile_flags(tiles: Sequence[np.ndarray], params: Params = PARAMS) -> list[str]:
    """For each tile: ``"black"``, ``"flat"`` or ``""`` (good)."""
    flags = []
    for tile in tiles:
        y = luma(tile)
        if float(y.mean()) < params.black_level:
            flags.append("black")
        elif float(y.std()) < params.flat_std:
            flags.append("flat")
        else:
            flags.append("")
    return flags


def pairs(tiles: Sequence[np.ndarray], params: Params = PARAMS) -> list[Pair]:
    """One ``Pair`` for each two consecutive tiles."""
    import numpy as np

    found = []
    previous = None
    for tile in tiles:
        y = luma(tile)
        y0 = y - float(y.mean())
        hist = _histogram(tile, params.histogram_bins)
        if previous is not None:
            p_y, p_y0, p_hist = previous
            if p_y.shape != y.shape:
                raise ValueError(f"tiles differ in size: {p_y.shape} and {y.shape}")
            # Brightness (mean) and contrast (spread) changes removed: a fade, however slow, is no motion.
            p_std, std = float(p_y.std()), float(y.std())
            gain = std / p_std if p_std > 1e-3 else 1.0
            motion = float(np.abs(y0 - gain * p_y0).mean())
            brightness = float(y.mean() - p_y.mean())
            norm = float(np.sqrt((y0 * y0).sum() * (p_y0 * p_y0).sum()))
            correlation = float((y0 * p_y0).sum() / norm) if norm > 0 else (1.0 if motion == 0 else 0.0)
            distance = float(np.abs(hist - p_hist).sum() / 2)
            fade = abs(brightness) >= params.fade_step and correlation >= params.fade_correlation
            found.append(Pair(motion, brightness, correlation, distance, fade, False))
        previous = (y, y0, hist)
    distances = [p.distance for p in found]
    for i, p in enumerate(found):
        around = distances[max(0, i - params.cut_context) : i] + distances[i + 1 : i + 1 + params.cut_context]
        typical = float(np.median(around)) if around else 0.0
        cut = p.distance >= params.cut_distance or (
            p.distance >= params.cut_relative and p.distance >= params.cut_ratio * typical)
        if cut and not p.fade:
            found[i] = Pair(p.motion, p.brightness, p.correlation, p.distance, p.fade, True)
    return found


# --- windows -----------------------------------------------------------------------------------


def choose_window(
    tiles: Sequence[np.ndarray],
    times: Sequence[float],
    duration: float,
    *,
    end: float | None = None,
    params: Params = PARAMS,
) -> Choice:
    """The start of the ``duration``-second window with the most visible motion inside one shot.

    ``times[i]`` is when ``tiles[i]`` was sampled (ascending); ``end`` is where the
    sampled range stops (default: the last time plus the median spacing). Candidate
    starts are the tile times whose window fits before ``end``.
    """
    import numpy as np

    if len(tiles) != len(times):
        raise ValueError(f"{len(tiles)} tiles but {len(times)} times")
    if duration <= 0:
        raise ValueError(f"window duration must be > 0, got {duration}")
    times = [float(t) for t in times]
    if not tiles:
        return Choice(0.0, duration, 0.0, "no tiles: the clip could not be sampled; starting at 0", 0)
    spacing = float(np.median(np.diff(times))) if len(times) > 1 else duration
    end = times[-1] + spacing if end is None else end
    flags = tile_flags(tiles, params)
    steps = pairs(tiles, params)
    energy = [
        0.0 if (p.fade or p.cut or flags[i] or flags[i + 1]) else max(0.0, p.motion - params.noise)
        for i, p in enumerate(steps)
    ]
    cuts = [times[i + 1] for i, p in enumerate(steps) if p.cut]
    shots = _shots(times, end, cuts)

    candidates = [i for i, t in enumerate(times) if t + duration <= end + 1e-6] or [0]
    best = None
    for i in candidates:
        inside = [j for j in range(i, len(times)) if times[j] < times[i] + duration - 1e-6]
        # The pairs whose change happens within the window: the tile at the window's end closes it.
        inner = [j for j in range(i, len(steps)) if times[j + 1] <= times[i] + duration + 1e-6]
        bad = sum(1 for j in inside if flags[j])
        crosses = sum(1 for j in inner if steps[j].cut)
        values = [energy[j] for j in inner]
        motion = ((1 - params.sustain) * float(np.mean(values)) + params.sustain * float(np.median(values))
                  if values else 0.0)  # sustained motion beats one burst in a still window
        score = motion * (1 - bad / len(inside)) * params.cross_penalty**crosses
        key = (round(score, 9), -crosses, -bad, -i)
        if best is None or key > best[0]:
            best = (key, i, inside, score, bad, crosses)
    _, i, inside, score, bad, crosses = best
    start = times[i]
    return Choice(start=start, end=start + duration, score=round(score, 3),
                  why=_why(start, duration, score, energy, steps, flags, inside, shots, crosses, bad),
                  tiles=len(tiles), shots=shots)


def _shots(times: list[float], end: float, cuts: list[float]) -> list[tuple[float, float]]:
    bounds = [times[0], *cuts, end]
    return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def _why(start, duration, score, energy, steps, flags, inside, shots, crosses, bad) -> str:
    moving = sorted(e for e in energy) or [0.0]
    median = moving[len(moving) // 2]
    black = sum(1 for f in flags if f == "black")
    flat = sum(1 for f in flags if f == "flat")
    fades = sum(1 for p in steps if p.fade)
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


# --- sprite sheets -----------------------------------------------------------------------------


def split_sheet(
    data: bytes,
    *,
    columns: int,
    rows: int,
    tile_width: int,
    tile_height: int,
    margin: int = 0,
    pad: int = 0,
    count: int | None = None,
    max_bytes: int = PARAMS.max_sheet_bytes,
) -> list[np.ndarray]:
    """The tiles of a sprite sheet (JPEG or PNG bytes), row by row, as RGB uint8 arrays.

    The sheet holds up to ``columns`` x ``rows`` tiles of ``tile_width`` x
    ``tile_height`` pixels, ``margin`` pixels from the edge and ``pad`` apart.
    A sheet with fewer tiles may be shorter (fewer rows); cells past the
    sheet's edge are not tiles. Without ``count``, trailing cells of one
    exact colour are taken as unused cells and dropped. Raises ``ValueError``
    for a sheet that is too large, unreadable or not of the grid's width.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise ValueError(f"sprite sheet of {len(data)} bytes is over the limit of {max_bytes}")
    width = 2 * margin + columns * tile_width + (columns - 1) * pad
    height_max = 2 * margin + rows * tile_height + (rows - 1) * pad
    try:
        image = Image.open(_bytes_io(data))
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
    for r in range(rows):
        y = margin + r * (tile_height + pad)
        if y + tile_height > h:
            break
        for c in range(columns):
            x = margin + c * (tile_width + pad)
            if x + tile_width > w:
                break
            tiles.append(pixels[y : y + tile_height, x : x + tile_width])
    if count is not None:
        return tiles[:count]
    while tiles and _one_colour(tiles[-1]):
        tiles.pop()
    return tiles


def _one_colour(tile: np.ndarray) -> bool:
    """An unused cell: one colour, give or take the JPEG chroma bleeding in from its neighbour."""
    return float(tile.std()) < 2.0


def _bytes_io(data: bytes):
    import io

    return io.BytesIO(data)


def make_sheet(tiles: Sequence[np.ndarray], *, columns: int, margin: int = 0, pad: int = 0,
               fmt: str = "jpg", quality: int = 90) -> bytes:
    """Lay tiles out row by row (the inverse of ``split_sheet``) and encode the sheet."""
    import io

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
    if fmt == "png":
        Image.fromarray(sheet).save(out, format="PNG")
    else:
        Image.fromarray(sheet).save(out, format="JPEG", quality=quality)
    return out.getvalue()
