"""Output geometry: IMM's Width/Height/ScaleType applied to the displayed picture (SAR, then rotation).

Geometry is done in rgb24 so that odd sizes survive crop and pad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ROTATE = {90: ["transpose=cclock"], 270: ["transpose=clock"], 180: ["hflip", "vflip"]}


@dataclass(frozen=True)
class Geometry:
    displayed: tuple[int, int]  # the source as a player shows it
    rotation: int  # 0, 90, 180, 270 (counter-clockwise, as FFmpeg's display matrix)
    scaled: tuple[int, int]  # displayed orientation, after scaling, before crop/pad
    out: tuple[int, int]  # final animation size

    def chain(self, pix_fmt: str = "rgb24") -> str:
        """libavfilter text from a decoded frame to ``pix_fmt`` at ``out``: one swscale step scales and
        converts; crop and pad, when needed, work in rgb24 (they round odd sizes in 4:2:0)."""
        (sw, sh), (ow, oh) = self.scaled, self.out
        boxed = self.scaled != self.out
        coded = (sh, sw) if self.rotation in (90, 270) else (sw, sh)  # scale first, rotate the small picture
        steps = [f"scale={coded[0]}:{coded[1]}:flags=lanczos", f"format={'rgb24' if boxed else pix_fmt}",
                 "setsar=1", *ROTATE.get(self.rotation, [])]
        if boxed:
            steps.append(f"crop={ow}:{oh}:{(sw - ow) // 2}:{(sh - oh) // 2}" if sw >= ow and sh >= oh
                         else f"pad={ow}:{oh}:{(ow - sw) // 2}:{(oh - sh) // 2}:color=black")
            if pix_fmt != "rgb24":
                steps.append(f"format={pix_fmt}")
        return ",".join(steps)


def _round(x: float) -> int:
    return max(1, math.floor(x + 0.5))


def _side(value: float | None, displayed: int) -> int | None:
    if value is None or value <= 0:
        return None
    return _round(displayed * value) if value < 1 else _round(value)


def plan(width: int, height: int, sar: float, rotation: int, want_w: float | None, want_h: float | None,
         scale_type: str) -> Geometry:
    """The scaled and final size for one request (pixels, or ratios of the displayed size)."""
    rotation %= 360
    w = _round(width * sar) if sar > 0 else width
    dw, dh = (height, w) if rotation in (90, 270) else (w, height)
    box_w, box_h = _side(want_w, dw), _side(want_h, dh)
    if box_w is None and box_h is None:
        box_w, box_h = dw, dh
    if box_w is None or box_h is None:  # one side given: the other keeps the aspect
        s = box_w / dw if box_w is not None else box_h / dh
        scaled = out = (box_w or _round(dw * s), box_h or _round(dh * s))
    elif scale_type == "stretch":
        scaled = out = (box_w, box_h)
    else:  # crop covers the box, fit and fill fit inside it
        pick = max if scale_type == "crop" else min
        s = pick(box_w / dw, box_h / dh)
        scaled = (pick(_round(dw * s), box_w), pick(_round(dh * s), box_h))
        out = scaled if scale_type == "fit" else (box_w, box_h)
    return Geometry((dw, dh), rotation, scaled, out)
