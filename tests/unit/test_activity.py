"""The activity score (start: auto) on tiles made here: motion, black, flat, fades, shots, sheets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from autoanim import activity
from autoanim.activity import (
    PARAMS,
    choose_window,
    make_sheet,
    pairs,
    sampling_interval,
    split_sheet,
    tile_flags,
)

W, H = PARAMS.tile_width, PARAMS.tile_height
STEP = 0.5


def texture(seed: int) -> np.ndarray:
    """A smooth, detailed picture (what a real frame looks like at 64x48)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((7, 9, 3))
    ys, xs = np.linspace(0, 6, H), np.linspace(0, 8, W)
    y0, x0 = ys.astype(int).clip(0, 5), xs.astype(int).clip(0, 7)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    a, b = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
    c, d = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
    img = (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    return (40 + img * 180).astype(np.uint8)


def moving(base: np.ndarray, k: int, speed: int = 5) -> np.ndarray:
    """``base`` panned by ``speed`` px per tile with a bright square moving across it."""
    img = np.roll(base, speed * k, axis=1).copy()
    x = (7 * k) % (W - 10)
    img[18:30, x : x + 10] = 250
    return img


def clip(segments: list[tuple[str, float]], seed: int = 3) -> tuple[list[np.ndarray], list[float]]:
    """Tiles every STEP s for segments of kind move|still|black|flat|fade|cut-move (a new shot)."""
    base = texture(seed)
    tiles, times, k = [], [], 0
    for kind, seconds in segments:
        n = round(seconds / STEP)
        if kind == "cut-move":
            base, kind = texture(seed + 100 + len(tiles)), "move"
        for i in range(n):
            if kind == "move":
                img = moving(base, k)
                k += 1
            elif kind == "still":
                img = moving(base, k)
            elif kind == "black":
                img = np.zeros((H, W, 3), np.uint8)
            elif kind == "flat":
                img = np.full((H, W, 3), 90, np.uint8)
            elif kind == "fade":  # the still picture getting darker, step by step
                img = (moving(base, k).astype(np.float32) * (1 - (i + 1) / (n + 1))).astype(np.uint8)
            else:
                raise ValueError(kind)
            tiles.append(img)
            times.append(len(times) * STEP)
    return tiles, times


def overlap(start: float, duration: float, lo: float, hi: float) -> float:
    return max(0.0, min(start + duration, hi) - max(start, lo))


@hsettings(max_examples=25, deadline=None)
@given(before=st.integers(2, 30), active=st.integers(4, 12), after=st.integers(2, 30), seed=st.integers(0, 50))
def test_the_window_lands_in_the_moving_part_wherever_it_is(before, active, after, seed):
    tiles, times = clip([("still", before), ("move", active), ("still", after)], seed)
    choice = choose_window(tiles, times, 3.0)
    assert before <= choice.start and choice.start + 3.0 <= before + active + 1e-9
    assert choice.score > 0 and "most motion" in choice.why


def test_black_and_flat_intros_and_fades_are_not_picked_even_when_they_change_more():
    # A fade changes every tile a lot (brightness), a black->flat step too; the moving part is gentle.
    tiles, times = clip([("black", 3), ("flat", 3), ("fade", 6), ("black", 2), ("move", 5), ("still", 5)])
    choice = choose_window(tiles, times, 3.0)
    assert 14 <= choice.start <= 16
    flags = tile_flags(tiles)
    assert flags[:6] == ["black"] * 6 and flags[6:12] == ["flat"] * 6
    fades = [p.fade for p in pairs(tiles[12:24])]
    assert sum(fades) >= 6  # the fade's steps are seen as brightness changes, not motion
    assert "black" in choice.why and "flat" in choice.why and "fading" in choice.why


def test_the_window_stays_in_one_shot_when_a_shot_is_long_enough():
    # Shot 1 (0-2.5 s) moves a lot but is shorter than the window; shot 2 moves less for 8 s.
    tiles, times = clip([("move", 2.5), ("cut-move", 8)])
    for k in range(5, len(tiles)):  # slow the second shot down: the same picture, less motion
        tiles[k] = moving(tiles[5], (k - 5) // 2, speed=2)
    steps = pairs(tiles)
    assert [i for i, p in enumerate(steps) if p.cut] == [4]  # the cut between 2.0 s and 2.5 s
    choice = choose_window(tiles, times, 3.0)
    assert choice.start >= 2.5
    assert choice.shots[0] == (0.0, 2.5) and "inside the shot 2.5-" in choice.why


def test_a_clip_of_short_shots_still_gets_a_window_and_says_it_crosses_one():
    tiles, times = clip([("move", 1.5), ("cut-move", 1.5), ("cut-move", 1.5)])
    choice = choose_window(tiles, times, 3.0)
    assert "crosses" in choice.why
    # A long still shot has windows inside one shot, but no motion: the moving short shots win.
    tiles, times = clip([("still", 10), ("cut-move", 2), ("cut-move", 2)])
    choice = choose_window(tiles, times, 3.0)
    assert choice.start >= 9.5 and "crosses 1 shot boundary" in choice.why


def test_sustained_motion_across_a_cut_beats_one_burst_in_a_still_shot():
    # A montage of 2 s shots (every 3 s window crosses a cut) after a still shot with a 1 s burst.
    tiles, times = clip([("still", 8), ("move", 1), ("still", 3), ("cut-move", 2), ("cut-move", 2),
                         ("cut-move", 2)])
    choice = choose_window(tiles, times, 3.0)
    assert choice.start >= 11.5 and "crosses" in choice.why


def test_a_still_clip_scores_zero_and_avoids_black():
    tiles, times = clip([("black", 4), ("still", 10)])
    choice = choose_window(tiles, times, 3.0)
    assert choice.score == 0 and choice.start >= 4 and "no motion" in choice.why


def test_small_inputs():
    assert choose_window([], [], 3.0).start == 0.0
    one = [texture(1)]
    assert choose_window(one, [0.0], 3.0).start == 0.0
    tiles, times = clip([("move", 2)])  # shorter than the window: it starts at the first tile
    assert choose_window(tiles, times, 3.0).start == 0.0
    with pytest.raises(ValueError, match="2 tiles but 1 times"):
        choose_window(tiles[:2], [0.0], 3.0)
    with pytest.raises(ValueError, match="must be > 0"):
        choose_window(tiles, times, 0)


def test_brightness_changes_are_not_motion():
    base = texture(5)
    brighter = np.clip(base.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    (p,) = pairs([base, brighter])
    assert p.fade and p.motion < PARAMS.noise and not p.cut


@pytest.mark.parametrize("step", [1.08, 1.025])  # +8 % a step (a fade) and +2.5 % (under fade_step)
def test_a_fade_fast_or_slow_is_no_motion(step):
    t = texture(6).astype(np.float32)
    base = np.clip((t - t.mean()) * 2.5 + 70, 0, 255)  # contrasty, mean about 70 levels
    count = round(np.log(1 / 0.4) / np.log(step))
    tiles = [(base * 0.4 * step**k).astype(np.uint8) for k in range(count + 1)]  # up to the picture
    assert all(p.fade or p.motion < PARAMS.noise for p in pairs(tiles))
    gentle = [np.roll(tiles[-1], k, axis=1) for k in range(1, 8)]  # then a slow pan: 1 px a tile
    both = tiles + gentle
    choice = choose_window(both, [k * STEP for k in range(len(both))], 3.0)
    assert choice.start >= (len(tiles) - 1) * STEP and choice.score > 0


def test_grey_tiles_are_accepted():
    tiles, times = clip([("still", 5), ("move", 5), ("still", 5)])
    grey = [activity.luma(t).astype(np.uint8) for t in tiles]
    assert 5 <= choose_window(grey, times, 3.0).start <= 7


@pytest.mark.parametrize("window,interval", [(3.0, 0.5), (5.0, 0.85), (0.5, 0.25), (60.0, 10.0)])
def test_sampling_interval(window, interval):
    assert sampling_interval(window) == pytest.approx(interval)


# --- sprite sheets --------------------------------------------------------------------------


@pytest.mark.parametrize("count,margin,pad", [(37, 0, 0), (100, 0, 0), (23, 3, 2), (10, 0, 1)])
def test_a_sheet_splits_back_into_its_tiles(count, margin, pad):
    tiles, _ = clip([("move", count * STEP)])
    sheet = make_sheet(tiles, columns=10, margin=margin, pad=pad, fmt="png")
    back = split_sheet(sheet, columns=10, rows=10, tile_width=W, tile_height=H, margin=margin, pad=pad)
    assert len(back) == count
    assert all(np.array_equal(a, b) for a, b in zip(tiles, back))


def test_a_jpeg_sheet_keeps_the_motion_and_the_unused_cells_are_dropped():
    tiles, times = clip([("still", 8), ("move", 5), ("still", 8)])
    sheet = make_sheet(tiles, columns=10, fmt="jpg")
    back = split_sheet(sheet, columns=10, rows=10, tile_width=W, tile_height=H)
    assert len(back) == len(tiles) == 42  # 5 rows: the last 8 cells are blank and dropped
    assert max(float(np.abs(a.astype(int) - b).mean()) for a, b in zip(tiles, back)) < 6  # measured 4.1
    assert 8 <= choose_window(back, times, 3.0).start <= 10
    assert len(split_sheet(sheet, columns=10, rows=10, tile_width=W, tile_height=H, count=20)) == 20


def test_sheets_that_do_not_fit_the_grid_are_refused_unread():
    tiles, _ = clip([("move", 5)])
    sheet = make_sheet(tiles, columns=10, fmt="png")
    with pytest.raises(ValueError, match="over the limit"):
        split_sheet(sheet, columns=10, rows=10, tile_width=W, tile_height=H, max_bytes=100)
    with pytest.raises(ValueError, match="larger than"):
        split_sheet(sheet, columns=5, rows=10, tile_width=W, tile_height=H)
    with pytest.raises(ValueError, match="not a readable image"):
        split_sheet(b"GIF89a not really", columns=10, rows=10, tile_width=W, tile_height=H)
