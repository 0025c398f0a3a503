"""Output geometry: IMM's Width/Height/ScaleType applied to the displayed picture.

Everything here is plain arithmetic on the first decoded frame's size, sample
aspect ratio and rotation; ``Geometry.chain`` turns the result into libavfilter
text. Geometry is done in rgb24 so that odd sizes survive crop and pad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    coded: tuple[int, int]  # decoded frame size
    rotation: int  # 0, 90, 180, 270 (counter-clockwise, as FFmpeg's display matrix)
    scaled: tuple[int, int]  # displayed orientation, after scaling, before crop/pad
    out: tuple[int, int]  # final animation size

    def chain(self, pix_fmt: str = "rgb24") -> str:
        """Filter chain from a decoded frame to a ``pix_fmt`` frame of ``out`` size.

        One swscale step scales and converts; crop and pad, when needed, work
        in rgb24 (they round odd sizes in 4:2:0).
        """
        sw, sh = self.scaled
        if self.rotation in (90, 270):  # scale in coded orientation, rotate the small picture
            sw, sh = sh, sw
        boxed = self.scaled != self.out
        steps = [f"scale={sw}:{sh}:flags=lanczos", f"format={'rgb24' if boxed else pix_fmt}", "setsar=1"]
        steps += {90: ["transpose=cclock"], 270: ["transpose=clock"], 180: ["hflip", "vflip"]}.get(
            self.rotation, []
        )
        (ow, oh), (sw, sh) = self.out, self.scaled
        if boxed:
            if sw >= ow and sh >= oh:
                steps.append(f"crop={ow}:{oh}:{(sw - ow) // 2}:{(sh - oh) // 2}")
            else:
                steps.append(f"pad={ow}:{oh}:{(ow - sw) // 2}:{(oh - sh) // 2}:color=black")
            if pix_fmt != "rgb24":
                steps.append(f"format={pix_fmt}")
        return ",".join(steps)


def _round(x: float) -> int:
    return max(1, math.floor(x + 0.5))


def displayed_size(width: int, height: int, sar: float, rotation: int) -> tuple[int, int]:
    """The size a player shows: sample aspect ratio applied, then the rotation."""
    w = _round(width * sar) if sar > 0 else width
    return (height, w) if rotation in (90, 270) else (w, height)


def _side(value: float | None, displayed: int) -> int | None:
    if value is None or value <= 0:
        return None
    return _round(displayed * value) if value < 1 else _round(value)


def plan(
    width: int,
    height: int,
    sar: float,
    rotation: int,
    want_w: float | None,
    want_h: float | None,
    scale_type: str,
) -> Geometry:
    """Work out the scaled and final size for one request (pixels, or ratios of the displayed size)."""
    rotation = rotation % 360
    dw, dh = displayed_size(width, height, sar, rotation)
    box_w, box_h = _side(want_w, dw), _side(want_h, dh)
    if box_w is None and box_h is None:
        box_w, box_h = dw, dh
    if box_w is None or box_h is None:  # one side given: the other keeps the aspect
        s = box_w / dw if box_w is not None else box_h / dh
        size = (box_w or _round(dw * s), box_h or _round(dh * s))
        return Geometry((width, height), rotation, size, size)
    if scale_type == "stretch":
        return Geometry((width, height), rotation, (box_w, box_h), (box_w, box_h))
    cover = scale_type == "crop"
    s = max(box_w / dw, box_h / dh) if cover else min(box_w / dw, box_h / dh)
    sw, sh = _round(dw * s), _round(dh * s)
    if cover:
        sw, sh = max(sw, box_w), max(sh, box_h)
    else:
        sw, sh = min(sw, box_w), min(sh, box_h)
    out = (sw, sh) if scale_type == "fit" else (box_w, box_h)
    return Geometry((width, height), rotation, (sw, sh), out)
