"""Targets: what a destination accepts (format, size, duration, fps, bytes) as versioned data, and the
size model the planner fits a capped rule with (docs/engine.md, "Targets" and "The size model").

The built-in targets are ``targets.json`` beside this module, each limit with its source and the date it
was checked; operators add or replace targets with ``AUTOANIM_TARGETS`` (entries of the same shape).
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .convert_request import Format
from .errors import ConfigError
from .objects import NAME

# Output bytes per output pixel-frame (width × height × frames) of a REF_AREA picture, and how that falls
# with the picture's area (∝ area ** -SIZE_EXPONENT): the largest of the engine's outputs at its default
# quality over the bench's five clips (bench/targets.py, 2026-12-01; docs/engine.md). IMM's encoder is not
# ours, so the planner keeps a margin and the result is checked (the size retry of ``service``).
BYTES_PER_PIXEL_FRAME = {"webp": 0.18, "gif": 0.66}
SIZE_EXPONENT = {"webp": 0.25, "gif": 0.05}
REF_AREA = 320 * 320
MARGIN = 0.85  # the planner aims at this share of the cap
# The knobs are lowered in this order, each down to its floor, before the next one is touched.
MIN_FPS = 5.0
MIN_SIDE = 48  # pixels of the shorter side
MIN_FRAMES = 2
CLIP_TOLERANCE = 0.98  # a clip this much of its length or more is not said to be shorter
RATE_SHARE = 0.4  # of the bytes to save, the share (as an exponent) taken from the frame rate first


class SizeRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rule: Literal["exact", "max"]  # exact: the output is width × height; max: it fits inside
    width: int = Field(ge=1, le=4096)
    height: int = Field(ge=1, le=4096)


class Target(BaseModel):
    """One destination's limits; ``sources`` says where each comes from (and when it was checked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Format
    size: SizeRule | None = None
    max_duration: float | None = Field(None, gt=0)
    max_fps: float | None = Field(None, gt=0, le=50)
    max_bytes: int = Field(ge=1024)
    sources: dict[str, str] = {}


class TargetFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1]
    updated: str
    targets: dict[str, Target]


@functools.cache
def builtin() -> TargetFile:
    """The shipped ``targets.json``, validated once."""
    return TargetFile.model_validate_json(resources.files(__package__).joinpath("targets.json").read_bytes())


def names(settings: Any) -> list[str]:
    return sorted({**builtin().targets, **settings.targets})


def get(settings: Any, name: str) -> Target | None:
    """A built-in or operator target (operator ones win), validated; None when unknown."""
    body = settings.targets.get(name)
    if body is None:
        return builtin().targets.get(name)
    if not NAME.match(name):
        raise ConfigError(f"AUTOANIM_TARGETS: target names match [a-z0-9_-]{{1,32}}, not {name!r}")
    try:
        return Target.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(target)"
        raise ConfigError(f"AUTOANIM_TARGETS {name}.{where}={first.get('input')!r}: {first['msg']}") from None


def check(settings: Any) -> None:
    """Every target, built-in and the operator's, valid (raises ``ConfigError``)."""
    builtin()
    for name in settings.targets:
        get(settings, name)


# --- the size model ------------------------------------------------------------------------


def estimate_bytes(fmt: str, width: float, height: float, frames: int) -> int:
    """The bytes an animation of ``frames`` frames of ``width`` × ``height`` is expected to take."""
    area = max(1.0, width * height)
    return math.ceil(BYTES_PER_PIXEL_FRAME[fmt] * (area / REF_AREA) ** -SIZE_EXPONENT[fmt] * area * frames)


class Knobs(BaseModel):
    """What a plan can give up to meet a cap: the frame rate (frames taken and played), the size, the frames."""

    model_config = ConfigDict(frozen=True)

    fps: float
    interval: float
    frames: int
    width: float  # output pixels (estimated for ratios and open sides)
    height: float
    size_fixed: bool = False  # the target's size is exact: not a knob


def shrink(knobs: Knobs, factor: float) -> tuple[Knobs, list[str]]:
    """``knobs`` scaled so that the bytes they make scale by ``factor`` (< 1), and what was given up.

    The frame rate takes ``factor ** RATE_SHARE`` (fewer frames over the same time), down to ``MIN_FPS``;
    the size the rest, down to ``MIN_SIDE``; what is left lowers the rate to its floor, then the frames
    (a shorter clip). A size the target fixes is never touched. Pure: every caller plans the same.
    """
    if factor >= 1:
        return knobs, []
    fps, interval, frames = knobs.fps, knobs.interval, knobs.frames
    width, height = knobs.width, knobs.height
    left = factor

    def lower_rate(share: float) -> None:
        nonlocal fps, interval, frames, left
        rate = max(share, min(1.0, MIN_FPS / fps))
        if rate >= 1 - 1e-9:
            return
        new_fps = max(0.01, round(fps * rate, 2))
        rate = new_fps / fps
        new_frames = max(1, math.floor(frames * rate))
        interval, fps = interval / rate, new_fps
        left *= frames / new_frames
        frames = new_frames

    lower_rate(left if knobs.size_fixed else left ** RATE_SHARE)
    if left < 1 - 1e-9 and not knobs.size_fixed:
        side = max(math.sqrt(left), min(1.0, MIN_SIDE / max(1.0, min(width, height))))
        if side < 1 - 1e-9:
            new_w, new_h = max(1, math.floor(width * side)), max(1, math.floor(height * side))
            left *= (width * height) / (new_w * new_h)
            width, height = new_w, new_h
    if left < 1 - 1e-9:
        lower_rate(left)
    if left < 1 - 1e-9:
        frames = max(min(frames, MIN_FRAMES), math.floor(frames * left))
    new = knobs.model_copy(update={"fps": fps, "interval": interval, "frames": frames, "width": width,
                                   "height": height})
    return new, given_up(knobs, new)


def given_up(old: Knobs, new: Knobs) -> list[str]:
    """What ``new`` gave up against ``old``, for people: ``["fps 15 → 10", "size 480x270 → 360x203"]``."""
    lost = []
    if new.fps < old.fps:
        lost.append(f"fps {old.fps:g} → {new.fps:g}")
    if (new.width, new.height) != (old.width, old.height):
        lost.append(f"size {old.width:.0f}x{old.height:.0f} → {new.width:.0f}x{new.height:.0f}")
    if new.frames * new.interval < old.frames * old.interval * CLIP_TOLERANCE:  # not the rate's rounding
        lost.append(f"clip {old.frames * old.interval:g} s → {new.frames * new.interval:g} s")
    return lost
