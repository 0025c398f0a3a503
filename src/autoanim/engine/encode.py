"""Animation writers: each takes rgb24 frames of the final size, in order.

GIF is two passes over the frames without decoding twice: frames are kept,
as raw rgb24, in a temporary file (memory-bounded, spills to disk), while a
sample of them feeds ``palettegen``; then ``paletteuse`` (ordered dither,
only changed rectangles re-dithered) and the gif encoder, whose offsetting and
transparency options store only what changed from frame to frame.
WebP is one pass through libwebp's animated encoder.
"""

from __future__ import annotations

import tempfile
from fractions import Fraction

SPOOL_MEMORY = 16 * 1024 * 1024  # bytes of frames kept in memory before the spool goes to disk
PALETTE_PIXELS = 120_000  # pass 1 looks at frames scaled down to about this many pixels
PALETTE_EVERY = 1  # and at every n-th frame


def _rate(frame_rate: float) -> Fraction:
    return Fraction(frame_rate).limit_denominator(1001)


def graph(chain: str, width: int, height: int, fmt: str, palette=None):
    """A filter graph from one buffer (and optionally a palette buffer) through ``chain`` to a sink."""
    import av

    graph = av.filter.Graph()
    src = graph.add_buffer(width=width, height=height, format=fmt, time_base=Fraction(1, 1000))
    last = src
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
    return graph, src, pal_src, sink


class _Output:
    def __init__(self, path: str, fmt: str, codec: str, width: int, height: int, frame_rate: float, pix_fmt: str,
                 codec_options: dict[str, str], mux_options: dict[str, str]):
        import av

        self.container = av.open(path, "w", format=fmt, options=mux_options)
        rate = _rate(frame_rate)
        self.stream = self.container.add_stream(codec, rate=rate, options=codec_options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        self.stream.time_base = self.stream.codec_context.time_base = 1 / rate
        self.count = 0

    def write(self, frame) -> None:
        frame.pts, frame.time_base = self.count, self.stream.codec_context.time_base  # the muxer may change the stream's
        self.count += 1
        self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            packet.duration = packet.duration or 1  # the last GIF frame's delay comes from here
            self.container.mux(packet)

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()


class WebpWriter:
    pix_fmt = "yuv420p"
    def __init__(self, path: str, width: int, height: int, frame_rate: float, quality: int | None):
        q = 75 if quality is None else quality
        self.out = _Output(path, "webp", "libwebp_anim", width, height, frame_rate, "yuv420p",
                           {"quality": str(q), "compression_level": "4"}, {"loop": "0"})

    def add(self, frame) -> None:
        self.out.write(frame)

    def finish(self, tick) -> None:
        self.out.close()


def _drain(sink) -> None:
    """Run the graph on what was pushed. palettegen answers only at the end, so nothing comes out yet."""
    import av

    try:
        sink.pull()
    except (av.error.BlockingIOError, av.error.EOFError):
        return
    raise AssertionError("palettegen produced a palette before the end of its input")


class GifWriter:
    pix_fmt = "rgb24"

    def __init__(self, path: str, width: int, height: int, frame_rate: float, quality: int | None):
        self.path, self.size, self.frame_rate = path, (width, height), frame_rate
        q = 90 if quality is None else quality
        colours = max(8, min(256, round(256 * q / 90)))
        self.dither = "dither=bayer:bayer_scale=5:diff_mode=rectangle"  # mild ordered dither: small, no crawl
        scale = min(1.0, (PALETTE_PIXELS / (width * height)) ** 0.5)
        sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
        chain = f"scale={sw}:{sh}:flags=area," if scale < 1 else ""
        self.palettegen = graph(chain + f"palettegen=max_colors={colours}:stats_mode=full", width, height, "rgb24")
        self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)
        self.count = 0

    def add(self, frame) -> None:
        if self.count % PALETTE_EVERY == 0:
            _, src, _, sink = self.palettegen
            src.push(frame)
            _drain(sink)  # a pushed frame waits in the buffer source until the graph is pulled
        self.spool.write(frame.to_ndarray().tobytes())
        self.count += 1

    def finish(self, tick) -> None:
        """Pass 2: the palette, then every frame through paletteuse and the encoder; ``tick()`` per frame."""
        import av
        import numpy as np

        _, src, _, sink = self.palettegen
        src.push(None)  # end of pass 1
        palette = sink.pull()
        w, h = self.size
        mapper = graph("paletteuse=" + self.dither, w, h, "rgb24", palette)
        _, src, pal_src, sink = mapper
        pal_src.push(palette)
        pal_src.push(None)
        out = _Output(self.path, "gif", "gif", w, h, self.frame_rate, "pal8", {}, {"loop": "0"})
        with self.spool:
            self.spool.seek(0)
            for _ in range(self.count):
                rgb = np.frombuffer(self.spool.read(w * h * 3), np.uint8).reshape(h, w, 3)
                src.push(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
                out.write(sink.pull())
                tick()
        out.close()
