"""Small clips made on the spot (helpers shared by the engine tests): every frame tells which source frame it is.

``gray`` frames are uniform grey, level ``LEVEL0 + STEP * index`` (so the frame
an output frame came from is read back from its mean brightness, whatever the
scaling); ``halves`` frames are red on the left and blue on the right (to check
rotation); ``still`` frames are a fixed grey ramp with a white 8x8 square that moves
8 pixels right per frame (a still camera).
"""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
Image = pytest.importorskip("PIL.Image")

LEVEL0, STEP = 16, 7  # 34 distinct frames; steps of 7 survive lossy codecs


def frame_image(index: int, size: tuple[int, int], pattern: str) -> np.ndarray:
    w, h = size
    if pattern == "halves":
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : w // 2] = (255, 0, 0)
        img[:, w // 2 :] = (0, 0, 255)
        return img
    if pattern == "still":
        img = np.repeat(np.linspace(40, 200, w, dtype=np.uint8)[None, :, None], h, axis=0).repeat(3, axis=2)
        x = 8 * index % (w - 8)
        img[h // 2 - 4 : h // 2 + 4, x : x + 8] = 255
        return img
    return np.full((h, w, 3), LEVEL0 + STEP * index, np.uint8)


def write_clip(
    path: Path,
    *,
    frames: int = 30,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    fmt: str | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: list[float] | None = None,
    rotation: int = 0,
    sar: Fraction | None = None,
    pattern: str = "gray",
    options: dict[str, str] | None = None,
) -> Path:
    """Write a clip; ``times`` (seconds) makes it variable frame rate."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(fps), options=options or {})
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        for i in range(frames if times is None else len(times)):
            frame = av.VideoFrame.from_ndarray(frame_image(i, size, pattern), format="rgb24")
            frame.pts = i if times is None else round(times[i] * 1000)
            if times is not None:
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def read_animation(path: Path) -> tuple[list[np.ndarray], list[int], dict]:
    """Decoded frames (RGB arrays), per-frame durations in ms, and the first frame's info."""
    with Image.open(path) as im:
        info = dict(im.info)
        frames, durations = [], []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            durations.append(im.info["duration"])
            frames.append(np.asarray(im.convert("RGB")))
    return frames, durations, info


def source_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    centre = img[h // 4 : h - h // 4, w // 4 : w - w // 4]  # clear of any fill bars
    return round((float(centre.mean()) - LEVEL0) / STEP)


def webp_frames(path: Path) -> list[tuple[int, int, int, int, bool]]:
    """Each ANMF frame of an animated WebP: x, y, width, height, and whether it carries alpha."""
    data, i, found = path.read_bytes(), 12, []
    while i < len(data):
        tag, size = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])[0]
        if tag == b"ANMF":
            x, y, w, h = (int.from_bytes(data[i + 8 + o : i + 11 + o], "little") for o in (0, 3, 6, 9))
            found.append((2 * x, 2 * y, w + 1, h + 1, data[i + 24 : i + 28] == b"ALPH"))
        i += 8 + size + (size & 1)
    return found
