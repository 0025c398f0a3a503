"""A synthetic test video written with PyAV (no download needed): a camera pan over a procedural landscape
(fractal noise in colour) with moving shapes, enough for the GIF/WebP encoders to work as on real footage."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from ..errors import MediaError

SHAPES = [(255, 60, 60), (60, 220, 90), (250, 220, 40)]


def _landscape(width: int, height: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    field = np.zeros((height, width), np.float32)
    for octave in range(1, 7):  # a sum of smoothly upsampled noise octaves: terrain-like detail
        cells = 2**octave
        coarse = rng.random((cells + 2, cells * width // height + 3), dtype=np.float32)
        ys = np.linspace(0, cells, height, dtype=np.float32)
        xs = np.linspace(0, cells * width / height, width, dtype=np.float32)
        y0, x0 = ys.astype(int), xs.astype(int)
        fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
        a, b = coarse[y0][:, x0], coarse[y0][:, x0 + 1]
        c, d = coarse[y0 + 1][:, x0], coarse[y0 + 1][:, x0 + 1]
        field += ((a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy) / octave
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    sky = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    rgb = np.stack([0.25 + 0.6 * field * (1 - sky) + 0.1 * sky,
                    0.35 + 0.5 * field + 0.15 * np.sin(field * 12), 0.55 * sky + 0.35 * (1 - field)], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _scene(world, x: int, t: float, width: int, radius: float):  # radius: a share of the height
    """``width`` columns of ``world`` from ``x``, the shapes on them where they are at ``t``."""
    import numpy as np

    height = world.shape[0]
    img = world[:, x : x + width].copy()
    yy, xx = np.ogrid[0:height, 0:width]
    for j, colour in enumerate(SHAPES):
        cx = width * (0.5 + 0.35 * np.sin(t * (0.9 + 0.4 * j) + j * 2.1))
        cy = height * (0.5 + 0.3 * np.cos(t * (1.3 + 0.3 * j) + j))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (height * (radius + 0.02 * j)) ** 2] = colour
    return img


def sample_video(out: str | os.PathLike, seconds: float = 8.0, *, width: int = 640, height: int = 360,
                 fps: int = 25, pan: bool = True) -> Path:
    """Write an H.264 MP4 of ``seconds`` at ``width``x``height``, ``fps``; ``pan=False`` keeps the camera
    still (only the shapes and the bar move)."""
    if seconds <= 0 or width < 16 or height < 16 or fps <= 0:
        raise MediaError(f"sample video: bad size or length ({seconds} s, {width}x{height}, {fps} fps)")
    world = _landscape(width * 2, height, seed=7)

    def pictures():
        for i in range(max(1, round(seconds * fps))):
            t = i / fps
            img = _scene(world, int((width * t / max(seconds, 1.0)) % width) if pan else 0, t, width, 0.07)
            img[height - height // 12 :, int((0.1 + 0.8 * (t % 2) / 2) * width) :] = (240, 240, 240)  # a bar
            yield img

    return write_mp4(out, pictures(), width=width, height=height, fps=fps)


def write_mp4(out: str | os.PathLike, pictures, *, width: int, height: int, fps: int,
              keyframe_every: float | None = 2.0) -> Path:
    """H.264 in MP4 from RGB frames (``height x width x 3`` uint8, odd sides padded: 4:2:0), written whole
    or not at all; ``keyframe_every``: seconds between keyframes (None: libx264's own spacing)."""
    import av
    import numpy as np

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps), pix_fmt="yuv420p",
                                          width=width + width % 2, height=height + height % 2,
                                          options={"crf": "20", "preset": "veryfast"})
            if keyframe_every is not None:
                stream.codec_context.gop_size = round(keyframe_every * fps)
            for index, img in enumerate(pictures):
                img = np.pad(img, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
