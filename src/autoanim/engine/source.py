"""Reading the source: pick the video stream, find the picture shown at each time.

Times are seconds from the file's start as a player counts them (``container.start_time``
subtracted: MPEG-TS/PS streams do not start at 0). Frames are streamed; at most the previous is held.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from fractions import Fraction

from ..errors import MediaError

EPS = 1e-3  # timestamps within a millisecond count as equal
SEEK_SLACK = 1.0  # seconds of decoding that a seek must save to be worth it


_AHEAD: dict[str, tuple] = {}  # opened by a worker before its job came (the worker's one job takes it)


def open_ahead(path: str) -> None:
    """Open ``path`` for the job to come; a file that will not open is left for the job to report."""
    with contextlib.suppress(MediaError, OSError):
        _AHEAD[path] = open_video(path)


def open_video(path: str | os.PathLike):
    """Open ``path`` and return ``(container, video_stream)``; MediaError when there is no usable video."""
    import av

    if (opened := _AHEAD.pop(os.fspath(path), None)) is not None:
        return opened
    if os.path.getsize(path) == 0:
        raise MediaError("empty file")
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise MediaError(f"corrupt or unsupported file: {exc.strerror or exc}") from exc
    attached = av.stream.Disposition.attached_pic
    stream = next((s for s in container.streams.video if not s.disposition & attached), None)
    if stream is None:
        container.close()
        raise MediaError("no video stream (audio only, or only cover art)")
    stream.thread_type = "AUTO"
    return container, stream


def origin(container, stream) -> float:
    """The file's time zero: what a player (and ffmpeg -ss) counts StartTime from."""
    if container.start_time is not None:
        return container.start_time / 1_000_000
    if stream.start_time is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def sample_aspect_ratio(stream) -> float:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return float(sar) if sar else 1.0


class Decoder:
    """Decodes from a position, skipping damaged packets; counts the frames, keeps the last error."""

    def __init__(self, container, stream):
        self.container, self.stream = container, stream
        self.t0 = origin(container, stream)
        self.period = float(1 / (stream.average_rate or stream.guessed_rate or Fraction(25)))
        self.decoded, self.last_error = 0, ""

    def seek(self, t: float) -> bool:
        """Seek to the keyframe at or before ``t``; False when the file cannot seek."""
        import av

        ts = math.floor((max(t, 0.0) + self.t0) / self.stream.time_base)
        try:
            self.container.seek(ts, backward=True, stream=self.stream)
        except av.error.FFmpegError:
            return False
        return True

    def frames(self) -> Iterator[tuple[float, object]]:
        """(time, frame) from the current position to the end of the stream."""
        import av

        t = -self.period  # a frame without a time follows the one before it (the first: at 0)
        try:
            for packet in self.container.demux(self.stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:  # one damaged packet: skip it, as ffmpeg does
                    self.last_error = exc.strerror or str(exc)
                    continue
                for frame in decoded:
                    t = frame.time - self.t0 if frame.time is not None else t + self.period
                    self.decoded += 1
                    yield t, frame
        except av.error.FFmpegError as exc:  # the demuxer gave up (truncated file): that is the end
            self.last_error = exc.strerror or str(exc)

    def duration_of(self, frame) -> float:
        return float(frame.duration * frame.time_base) if frame.duration and frame.time_base else self.period


def pictures(decoder: Decoder, times: Iterator[float]) -> Iterator[tuple[float, object]]:
    """For each requested time (ascending), the frame a player shows at that time.

    Seeks before the first time, and again before a time further ahead than the longest keyframe distance
    seen (decoding through would cost more); a seek that lands late (MPEG-PS) is retried from further back.
    """
    target = next(times, None)
    gop, preroll, moved = 0.0, 0.0, False  # the longest keyframe distance seen; how far before target to seek
    while target is not None:  # each round seeks to (before) the target
        from_start = True
        if target - preroll > SEEK_SLACK and decoder.seek(target - preroll):
            from_start, moved = False, True
        elif moved and not decoder.seek(0):
            raise MediaError("cannot seek back in this file")
        prev = last_key = None
        for t, frame in decoder.frames():
            if prev is None and not from_start:
                if t > target + EPS:
                    preroll = preroll * 4 + 1  # landed late: go further back
                    break
                gop = max(gop, target - t)  # the next keyframe is after the target
            if frame.key_frame:
                if last_key is not None:
                    gop = max(gop, t - last_key)
                last_key = t
            while target is not None and t > target + EPS:
                yield target, (prev[1] if prev is not None else frame)
                target = next(times, None)
            if target is None:
                return
            prev = (t, frame)
            if last_key is not None and target - t > max(gop, t - last_key) + SEEK_SLACK:
                preroll = 0.0
                break
        else:
            if prev is None and not from_start:  # a seek past the last frame: go back
                preroll = preroll * 4 + 1
                continue
            end = prev[0] + decoder.duration_of(prev[1]) if prev is not None else -math.inf
            while target is not None and target < end - EPS:
                yield target, prev[1]
                target = next(times, None)
            return
