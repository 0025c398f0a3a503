"""Animation writers fed frames of the final size in order: GIF in two passes, WebP in one; docs/engine.md."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction

SPOOL_MEMORY = 16 * 1024 * 1024  # bytes of frames kept in memory before the spool goes to disk
SAMPLE_PIXELS = 3_000  # pixels of each frame kept for making the palette
SAMPLE_CAP = 150_000  # at most this many (more frames: every other one dropped, and so on)
REFINE_ROUNDS = 16  # k-means rounds from palettegen's palette (paletteuse does the nearest-colour search)

THREADS = max(1, min(4, os.cpu_count() or 1))  # frames coded whole are independent: one coder a core
WINDOW = 3  # frames in flight per thread: keeps the cores busy, memory bounded


class Ordered:
    """Calls on one-thread lanes (state in ``local``), ``window`` at most in flight, results in order."""

    def __init__(self, window: int, threads: int | None = None):
        self.lanes = [ThreadPoolExecutor(1, thread_name_prefix="autoanim") for _ in range(threads or THREADS)]
        self.local = threading.local()
        self.window = window
        self.pending: deque[Future] = deque()

    def submit(self, lane: int, call, *args) -> list:
        self.pending.append(self.lanes[lane % len(self.lanes)].submit(call, *args))
        return [self.pending.popleft().result() for _ in range(len(self.pending) - self.window)]

    def drain(self) -> list:
        return [self.pending.popleft().result() for _ in range(len(self.pending))]

    def close(self) -> None:
        self.pending.clear()
        for lane in self.lanes:
            lane.shutdown(wait=True, cancel_futures=True)


def _rate(frame_rate: float) -> Fraction:
    return Fraction(frame_rate).limit_denominator(1001)


def graph(chain: str, width: int, height: int, fmt: str, palette=None):
    """(graph, buffer, palette buffer, sink) through ``chain``; a ``paletteuse`` step is given ``palette``."""
    import av

    graph = av.filter.Graph()
    last = src = graph.add_buffer(width=width, height=height, format=fmt, time_base=Fraction(1, 1000))
    pal_src = None
    for step in chain.split(","):
        name, _, args = step.partition("=")
        node = graph.add(name, args or None)
        last.link_to(node)
        last = node
        if name == "paletteuse":
            pal_src = graph.add_buffer(width=16, height=16, format=palette.format.name, time_base=Fraction(1, 1000))
            pal_src.link_to(node, 0, 1)
    sink = graph.add("buffersink")
    last.link_to(sink)
    graph.configure()
    if pal_src is not None:
        pal_src.push(palette)
        pal_src.push(None)
    return graph, src, pal_src, sink


def _picture(pixels):
    """n x 3 rgb24 pixels as one rgb24 frame at most 1024 wide (the last row wraps around)."""
    import av
    import numpy as np

    width = min(len(pixels), 1024)
    rows = -(-len(pixels) // width)
    image = np.resize(pixels, (rows * width, 3)).reshape(rows, width, 3)
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def _once(chain: str, image, palette=None):
    """The frame a new graph of ``chain`` makes of the one frame ``image``."""
    _graph, src, _, sink = graph(chain, image.width, image.height, "rgb24", palette)  # kept while it runs
    src.push(image)
    src.push(None)
    return sink.pull()


METHOD = 4  # libwebp method (compression_level): 0 fast … 6 small
STILL_SHARE = 0.5  # share of unchanged 16x16 luma blocks from which libwebp's sub-frames pay off
STILL_DIFF = 5  # a block is unchanged when no luma sample moved more than this (libwebp's own tolerance at q75)
WHOLE_QUALITY_OFFSET = 15  # whole frames at q-15: SSIM and SSIMULACRA2 >= libwebp_anim at q on real footage (q75)


def still_share(a, b) -> float:
    """The share of 16x16 luma blocks alike within ``STILL_DIFF`` in yuv ``a``, ``b`` (Pillow: no numpy)."""
    from PIL import Image, ImageChops

    w, h = a.width // 16 * 16, a.height // 16 * 16
    if not w or not h:
        return 1.0
    luma = [Image.frombuffer("L", (f.planes[0].line_size, f.height), bytes(f.planes[0]), "raw", "L", 0, 1) for f in (a, b)]
    moved = ImageChops.difference(*luma).crop((0, 0, w, h)).point(lambda v: 255 * (v > STILL_DIFF))
    return moved.reduce(16).histogram()[0] / (w * h // 256)  # a block with one moved sample averages 1 or more


def _chunk(tag: bytes, body: bytes) -> bytes:
    return tag + len(body).to_bytes(4, "little") + body + b"\0" * (len(body) & 1)


def _chunks(riff: bytes):
    """(tag, body) of each chunk of a WebP file."""
    i = 12
    while i < len(riff):
        size = int.from_bytes(riff[i + 4 : i + 8], "little")
        yield riff[i : i + 4], riff[i + 8 : i + 8 + size]
        i += 8 + size + (size & 1)


class WebpWriter:
    """Lossy animated WebP in segments, each by its own encoder fed as frames come, on every core.

    A still background: ``libwebp_anim``, ``SEGMENT`` pictures from a key frame each; moving footage (its
    sub-frames leave "similar" pixels stale): every picture whole by ``libwebp``. Repeats are shown longer.
    """

    pix_fmt = "yuv420p"
    SEGMENT = 25  # pictures per libwebp_anim encoder, a key frame each (10: +1.4 % bytes on bbb, +16 % synthetic)
    SEGMENT_MEMORY = 32 * 1024 * 1024  # bytes of pictures a segment may wait with: fewer pictures when they are large

    def __init__(self, path: str, width: int, height: int, frame_rate: float, quality: int | None):
        self.path, self.size, self.rate = path, (width, height), _rate(frame_rate)
        self.canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")  # VP8X's, ANMF's
        self.quality = 75 if quality is None else quality
        self.segment = min(self.SEGMENT, max(4, self.SEGMENT_MEMORY * 2 // (3 * width * height)))
        self.file, self.lanes = None, None
        self.flags = 0x02  # VP8X: an animation (| 0x10 once a frame carries alpha)
        self.count = 0  # frame periods submitted
        self.codec, self.pictures, self.segments = None, 0, 0  # the current segment (encoder, packets, start), its size
        self.pending, self.repeats = None, 0  # the last picture, not yet encoded, and how many samples show it

    def add(self, frame) -> None:
        if frame is self.pending:
            self.repeats += 1
            return
        if self.pending is not None:
            if self.file is None:
                self._open(still_share(self.pending, frame) < STILL_SHARE)
            self._flush()
        self.pending, self.repeats = frame, 1

    def _open(self, whole: bool) -> None:
        quality = max(0, self.quality - WHOLE_QUALITY_OFFSET) if whole else self.quality
        self.coder = "libwebp" if whole else "libwebp_anim"
        self.options = {"quality": str(quality), "compression_level": str(METHOD)}
        self.segment = 1 if whole else self.segment
        self.lanes = Ordered(THREADS * (self.segment + WINDOW))  # a segment a lane, in turns
        self.file = open(self.path, "wb")  # noqa: SIM115 - open across add() calls, closed by finish()/abort()
        self.file.write(b"RIFF\0\0\0\0WEBP" + _chunk(b"VP8X", bytes(4) + self.canvas)
                        + _chunk(b"ANIM", b"\xff\xff\xff\xff\0\0"))  # white background, loop forever

    @staticmethod
    def _code(segment, frame, first: int, repeats: int) -> None:
        codec, packets, _ = segment
        # libwebp_anim merges repeated pictures itself, and only so times the last one right
        for k in range(repeats if codec.name == "libwebp_anim" else 1):
            frame.pts, frame.time_base = first + k, codec.time_base
            packets += codec.encode(frame)

    def _end(self, segment, end: int) -> tuple[int, list[bytes]]:
        """The segment's VP8X alpha flag and ANMF chunks (it ends at frame period ``end``)."""
        codec, packets, first = segment
        chunks = list(_chunks(b"".join(map(bytes, packets + codec.encode(None)))))
        alpha = chunks[0][1][0] & 0x10 if chunks[0][0] == b"VP8X" else 0
        if any(tag == b"ANMF" for tag, _ in chunks):
            return alpha, [_chunk(tag, body) for tag, body in chunks if tag == b"ANMF"]
        ms = round(end * 1000 / self.rate) - round(first * 1000 / self.rate)  # a still: 1 frame, not blended
        return alpha, [_chunk(b"ANMF", bytes(6) + self.canvas + ms.to_bytes(3, "little") + b"\x02"
                              + b"".join(_chunk(t, b) for t, b in chunks if t != b"VP8X"))]

    def _flush(self, last: bool = False) -> None:
        import av

        if self.codec is None:
            codec = av.CodecContext.create(self.coder, "w")
            codec.width, codec.height = self.size
            codec.pix_fmt, codec.time_base, codec.options = "yuv420p", 1 / self.rate, dict(self.options)
            self.codec = (codec, [], self.count)
        done = self.lanes.submit(self.segments, self._code, self.codec, self.pending, self.count,
                                 self.repeats)
        self.count += self.repeats
        self.pictures += 1
        if self.pictures == self.segment or last:
            done += self.lanes.submit(self.segments, self._end, self.codec, self.count)
            self.codec, self.pictures, self.segments = None, 0, self.segments + 1
        self._write(done)

    def _write(self, done) -> None:
        for coded in done:
            if coded is not None:  # a segment's end
                self.flags |= coded[0]
                self.file.write(b"".join(coded[1]))

    def finish(self, tick) -> None:
        if self.file is None:
            self._open(whole=False)
        self._flush(last=True)
        self._write(self.lanes.drain())
        self.lanes.close()
        size = self.file.tell() - 8
        for at, value in ((4, size.to_bytes(4, "little")), (20, bytes([self.flags]))):  # RIFF size, VP8X flags
            self.file.seek(at)
            self.file.write(value)
        self.file.close()

    def abort(self) -> None:
        if self.lanes is not None:
            self.lanes.close()
        if self.file is not None:
            self.file.close()


def refine(palette, samples, rounds: int):
    """Lloyd's k-means from the palette frame ``palette`` over ``samples`` (n x 3 rgb24), transparency kept.

    Each round maps the mean of every 4x4x4-level cell of samples with ``paletteuse`` (the frames' own
    nearest-colour measure) and moves each colour to the exact mean of its cells' samples.
    """
    import av
    import numpy as np

    cells = (samples >> 2).astype(np.int32) @ np.array([1 << 12, 1 << 6, 1], np.int32)
    _, cell, weights = np.unique(cells, return_inverse=True, return_counts=True)
    cell_sums = np.stack([np.bincount(cell.reshape(-1), weights=samples[:, c]) for c in (2, 1, 0)], axis=1)
    image = _picture(np.rint(cell_sums[:, ::-1] / weights[:, None]).astype(np.uint8))  # each cell's mean, rgb
    for _ in range(rounds):
        indices, argb = _once("paletteuse=dither=none", image, palette).to_ndarray()
        nearest = indices.reshape(-1)[: len(weights)]
        counts = np.bincount(nearest, weights=weights, minlength=256)
        moved = (counts > 0) & (argb[:, 0] == 255)
        sums = np.stack([np.bincount(nearest, weights=cell_sums[:, c], minlength=256) for c in range(3)], axis=1)
        bgra = argb[:, [3, 2, 1, 0]]
        means = np.clip(np.rint(sums[moved] / counts[moved, None]), 0, 255)
        if (means == bgra[moved, :3]).all():
            break
        bgra[moved, :3] = means
        refined = av.VideoFrame.from_ndarray(bgra.reshape(16, 16, 4), format=palette.format.name)
        refined.pts, refined.time_base = palette.pts, palette.time_base  # paletteuse syncs on pts
        palette = refined
    return palette


class GifWriter:
    """Two passes over frames decoded once: spool them, ``SAMPLE_PIXELS`` random samples each, then code.

    A pixel within ``KEEP`` levels of what it was last coded from keeps that (stored as transparent); frames
    map to the nearest colour on every core without dither (it costs more bytes than a smaller ``KEEP``).
    """

    pix_fmt = "rgb24"
    KEEP = 3  # levels (max of R, G, B) a pixel may drift from what it was coded as before it is coded again

    def __init__(self, path: str, width: int, height: int, frame_rate: float, quality: int | None):
        self.path, self.size, self.rate = path, (width, height), _rate(frame_rate)
        q = 90 if quality is None else quality
        self.colours = max(8, min(256, round(256 - 6 * (90 - q))))  # 256 from the default 90 up
        self.samples: list = []  # rgb24 pixels sampled from every frame
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - closed by finish()
        self.count = 0

    def add(self, frame) -> None:
        import numpy as np

        rgb = frame.to_ndarray()
        self.spool.write(rgb.tobytes())
        pixels = rgb.reshape(-1, 3)  # at random places: a stride that divides the width samples the same columns
        self.samples.append(pixels[np.random.default_rng(self.count).integers(0, len(pixels), SAMPLE_PIXELS)])
        if sum(map(len, self.samples)) > SAMPLE_CAP:
            self.samples = [s[::2] for s in self.samples]
        self.count += 1

    def _map(self, rgb, palette):
        """rgb24 → (palette indices, the argb palette they index), by this thread's own paletteuse graph."""
        import av

        local = self.mappers.local
        if not hasattr(local, "graph"):
            local.graph = graph("paletteuse=dither=none", *self.size, "rgb24", palette)
        _, src, _, sink = local.graph
        src.push(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
        return sink.pull().to_ndarray()  # paletteuse may order the palette its own way

    def finish(self, tick) -> None:
        """Pass 2: the palette, then every frame kept where still, mapped and coded; ``tick()`` per frame."""
        import av
        import numpy as np

        samples, self.samples = np.concatenate(self.samples), []
        palette = _once(f"palettegen=max_colors={self.colours}", _picture(samples))
        palette = refine(palette, samples, REFINE_ROUNDS)
        w, h = self.size
        container = av.open(self.path, "w", format="gif", options={"loop": "0"})
        stream = container.add_stream("gif", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
        stream.time_base = stream.codec_context.time_base = 1 / self.rate
        pts = itertools.count()
        self.mappers = Ordered(THREADS * WINDOW)

        def mux(packets) -> None:
            for packet in packets:
                packet.duration = packet.duration or 1  # the last frame's delay comes from here
                container.mux(packet)

        def emit(results) -> None:
            for mapped in results:
                frame = av.VideoFrame.from_ndarray(mapped, format="pal8")
                frame.pts, frame.time_base = next(pts), stream.codec_context.time_base  # not the muxer's
                mux(stream.encode(frame))
                tick()

        try:
            with self.spool:
                self.spool.seek(0)
                coded = None  # what each pixel was last coded from
                for k in range(self.count):
                    rgb = np.frombuffer(self.spool.read(w * h * 3), np.uint8).reshape(h, w, 3)
                    if coded is None:
                        coded = rgb
                    else:
                        drift = np.maximum(rgb, coded)
                        drift -= np.minimum(rgb, coded)
                        drift = drift > self.KEEP
                        moved = drift[..., 0] | drift[..., 1] | drift[..., 2]  # faster than any(axis=2)
                        coded = np.where(moved[..., None], rgb, coded)  # a new array: the threads may hold the last
                    emit(self.mappers.submit(k, self._map, coded, palette))
                emit(self.mappers.drain())
            mux(stream.encode(None))
        finally:
            self.mappers.close()
            container.close()

    def abort(self) -> None:
        self.spool.close()
