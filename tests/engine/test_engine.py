"""The local engine against clips whose frames say which source frame they are."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from autoanim.convert_request import Animation
from autoanim.errors import MediaError, ServiceError
from tests.engine.media import frame_image, read_animation, source_index, webp_frames, write_clip

pytestmark = pytest.mark.media

engine = pytest.importorskip("autoanim.engine")
av = pytest.importorskip("av")
from autoanim.engine import job, worker


def anim(fmt="gif", fps=10.0, interval=0.1, number=0, width=None, height=None, scale="fit", start=None):
    return Animation(Format=fmt, FrameRate=fps, Interval=interval, Number=number, Width=width, Height=height,
                     ScaleType=scale, StartTime=start, URI="oss://b/out." + fmt)


def convert(src, out, animation, **kw):
    kw.setdefault("isolate", False)
    return engine.convert(src, out, animation, **kw)


def indices(path):
    frames, _, _ = read_animation(path)
    return [source_index(f) for f in frames]


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_frame_k_is_the_picture_shown_at_start_plus_k_intervals(gray_clip, tmp_path, fmt):
    out = tmp_path / f"a.{fmt}"
    result = convert(gray_clip, out, anim(fmt, interval=0.3, number=5), start=1.0)
    assert indices(out) == [10, 13, 16, 19, 22]
    assert (result.frames, result.duration) == (5, 0.5)
    assert (result.source_width, result.source_height, result.bytes) == (64, 48, out.stat().st_size)


def test_animation_start_time_is_an_offset_inside_the_clip(gray_clip, tmp_path):
    out = tmp_path / "a.gif"
    convert(gray_clip, out, anim(interval=0.5, number=2, start=0.5), start=0.5)
    assert indices(out) == [10, 15]


def test_duration_clips_the_source_and_number_zero_means_all(gray_clip, tmp_path):
    out = tmp_path / "a.gif"
    assert convert(gray_clip, out, anim(interval=0.25), start=1.0, duration=1.0).frames == 4
    assert indices(out) == [10, 12, 15, 17]


def test_without_duration_the_clip_runs_to_the_last_decoded_frame(gray_clip, tmp_path):
    out = tmp_path / "a.webp"
    convert(gray_clip, out, anim("webp"), start=2.5)
    assert indices(out) == [25, 26, 27, 28, 29]


def test_number_caps_the_frames(gray_clip, tmp_path):
    out = tmp_path / "a.gif"
    assert convert(gray_clip, out, anim(number=3)).frames == 3


@pytest.mark.parametrize("fps", [15, 12, 10, 7.5])
def test_gif_delays_are_centiseconds_with_the_rounding_carried(gray_clip, tmp_path, fps):
    out = tmp_path / "a.gif"
    n = int(fps * 2)
    convert(gray_clip, out, anim(fps=fps, interval=0.1, number=n))
    _, durations, info = read_animation(out)
    assert len(durations) == n and info["loop"] == 0
    assert {d % 10 for d in durations} == {0}
    assert max(durations) - min(durations) <= 10
    assert abs(sum(durations) - 2000) <= 10


def test_webp_timing_loop_and_frame_rate_independent_of_interval(gray_clip, tmp_path):
    out = tmp_path / "a.webp"
    result = convert(gray_clip, out, anim("webp", fps=4, interval=0.5, number=4))
    _, durations, info = read_animation(out)
    assert durations == [250] * 4 and info["loop"] == 0 and result.duration == 1.0


def test_webp_codes_moving_footage_as_whole_frames(gray_clip, tmp_path):
    out = tmp_path / "a.webp"
    convert(gray_clip, out, anim("webp", number=5))
    assert all(f == (0, 0, 64, 48, False) for f in webp_frames(out))  # every picture changes everywhere
    assert indices(out) == [0, 1, 2, 3, 4] and read_animation(out)[2]["loop"] == 0


def test_webp_codes_a_still_background_as_changed_rectangles(clips, tmp_path):
    src = write_clip(clips / "still.mp4", frames=5, pattern="still", size=(96, 48))
    out = tmp_path / "a.webp"
    convert(src, out, anim("webp"))
    frames, durations, info = read_animation(out)
    assert any(w * h < 96 * 48 for _, _, w, h, _ in webp_frames(out)[1:])  # only the moving square
    assert durations == [100] * 5 and info["loop"] == 0
    for i, img in enumerate(frames):
        assert np.abs(img.astype(int) - frame_image(i, (96, 48), "still")).mean() < 4


def test_webp_still_background_is_coded_in_segments_from_key_frames(clips, tmp_path, monkeypatch):
    from autoanim.engine import encode

    monkeypatch.setattr(encode.WebpWriter, "SEGMENT", 3)
    src = write_clip(clips / "still8.mp4", frames=8, pattern="still", size=(96, 48))
    outputs = []
    for threads in (1, 3):
        monkeypatch.setattr(encode, "THREADS", threads)
        outputs.append(tmp_path / f"{threads}.webp")
        convert(src, outputs[-1], anim("webp", fps=20, interval=0.05, number=16))  # each picture twice
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    frames, durations, info = read_animation(outputs[0])
    assert durations == [100] * 8 and info["loop"] == 0  # repeats keep their time across a segment's end
    rects = webp_frames(outputs[0])
    assert [k for k, r in enumerate(rects) if r == (0, 0, 96, 48, False)][:3] == [0, 3, 6]  # each segment's key frame
    assert all(w * h < 96 * 48 for k, (_, _, w, h, _) in enumerate(rects) if k % 3)
    for i, img in enumerate(frames):
        assert np.abs(img.astype(int) - frame_image(i, (96, 48), "still")).mean() < 4


def test_webp_repeated_pictures_are_coded_once_and_shown_longer(gray_clip, tmp_path):
    out = tmp_path / "a.webp"
    result = convert(gray_clip, out, anim("webp", fps=20, interval=0.05, number=6))  # each picture twice
    _, durations, info = read_animation(out)
    assert indices(out) == [0, 1, 2] and durations == [100] * 3 and info["loop"] == 0
    assert (result.frames, result.duration) == (6, 0.3)


def test_still_share_counts_unchanged_blocks():
    from autoanim.engine.encode import still_share

    def yuv(img):
        return av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")

    a = frame_image(0, (64, 48), "still")
    b = a.copy()
    b[:16, :16] = 0  # one 16x16 block of 12 changes
    assert still_share(yuv(a), yuv(a)) == 1.0
    assert still_share(yuv(a), yuv(b)) == pytest.approx(11 / 12)
    assert still_share(yuv(frame_image(0, (64, 48), "gray")), yuv(frame_image(1, (64, 48), "gray"))) == 0.0


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_frames_coded_on_several_threads_are_the_frames_coded_on_one(tmp_path, monkeypatch, fmt):
    from autoanim.engine import encode

    src = engine.sample_video(tmp_path / "s.mp4", 2.0, width=160, height=90, fps=10)  # a pan: WebP whole frames
    outputs = []
    for threads in (1, 3):
        monkeypatch.setattr(encode, "THREADS", threads)
        outputs.append(tmp_path / f"{threads}.{fmt}")
        convert(src, outputs[-1], anim(fmt, interval=0.1))
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    assert len(read_animation(outputs[0])[0]) == 20
    if fmt == "webp":
        assert all((w, h) == (160, 90) for _, _, w, h, _ in webp_frames(outputs[0]))  # whole frames


def test_gif_keeps_a_pixel_until_its_source_drifts_past_keep(tmp_path):
    from autoanim.engine.encode import GifWriter

    base = frame_image(0, (64, 48), "still").astype(int)
    noisy = base + np.random.default_rng(1).integers(-2, 3, base.shape)  # sensor noise, within KEEP
    moved = base.copy()
    moved[:16, :16] = 255 - moved[:16, :16]  # a real change in one corner
    out = tmp_path / "k.gif"
    writer = GifWriter(str(out), 64, 48, 10.0, None)
    for img in (base, noisy, moved):
        writer.add(av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="rgb24"))
    writer.finish(lambda: None)
    frames, _, _ = read_animation(out)
    assert np.array_equal(frames[0], frames[1])  # the noise is not coded
    changed = np.abs(frames[2].astype(int) - frames[1]).max(axis=2) > 0
    assert changed[:16, :16].mean() > 0.9 and not changed[16:, :].any() and not changed[:, 16:].any()


def test_gif_palette_refinement_moves_each_colour_to_the_mean_of_its_pixels():
    from autoanim.engine.encode import refine

    bgra = np.zeros((256, 4), np.uint8)
    bgra[:, 3] = 255
    bgra[0, :3], bgra[1, :3] = (0, 0, 100), (0, 200, 0)  # red 100, green 200 (bgr); the rest black
    bgra[255] = (0, 255, 0, 0)  # the transparent entry
    palette = av.VideoFrame.from_ndarray(bgra.reshape(16, 16, 4), format="bgra")
    palette.pts, palette.time_base = 0, Fraction(1, 1000)
    samples = np.array([(110, 0, 0), (110, 0, 0), (110, 0, 0), (130, 0, 0), (0, 190, 0), (0, 180, 0)], np.uint8)
    refined = refine(palette, samples, 2).to_ndarray().reshape(256, 4)
    colours = {tuple(int(v) for v in c[2::-1]) for c in refined if c[3] == 255}
    assert {(115, 0, 0), (0, 185, 0)} <= colours  # a pixel sampled three times counts three times
    assert (0, 255, 0, 0) in {tuple(int(v) for v in c) for c in refined}  # the transparent entry stays


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_colourful_footage_is_reproduced_within_tolerance(tmp_path, fmt):
    src = engine.sample_video(tmp_path / "s.mp4", 1.0, width=160, height=90, fps=10)
    out = tmp_path / f"s.{fmt}"
    convert(src, out, anim(fmt))
    frames, _, _ = read_animation(out)
    with av.open(str(src)) as container:
        source = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(frames) == len(source) == 10
    errors = [np.abs(img.astype(int) - ref).mean() for img, ref in zip(frames, source)]
    assert max(errors) < {"gif": 6, "webp": 8}[fmt], errors  # measured: 4.2 and 5.7


@pytest.mark.parametrize("fmt, magic", [("gif", b"GIF89a"), ("webp", b"WEBP")])
def test_format_magic(gray_clip, tmp_path, fmt, magic):
    out = tmp_path / f"a.{fmt}"
    convert(gray_clip, out, anim(fmt, number=2))
    head = out.read_bytes()[:12]
    assert head.startswith(magic) or (head[:4] == b"RIFF" and head[8:12] == magic)


# 64x48 source (4:3).
@pytest.mark.parametrize(
    "width, height, scale, size",
    [
        (32, 32, "stretch", (32, 32)),
        (32, 32, "crop", (32, 32)),
        (32, 32, "fill", (32, 32)),
        (32, 32, "fit", (32, 24)),
        (0.5, 0.5, "fit", (32, 24)),
        (0.5, 0.25, "stretch", (32, 12)),
        (16, None, "fit", (16, 12)),
        (None, 12, "stretch", (16, 12)),
        (None, None, "stretch", (64, 48)),
    ],
)
def test_geometry(gray_clip, tmp_path, width, height, scale, size):
    out = tmp_path / "a.gif"
    result = convert(gray_clip, out, anim(number=1, width=width, height=height, scale=scale), start=2.0)
    frames, _, _ = read_animation(out)
    assert (result.width, result.height) == size == (frames[0].shape[1], frames[0].shape[0])


def test_fill_pads_with_black_and_crop_does_not(gray_clip, tmp_path):
    for scale, bars in [("fill", True), ("crop", False)]:
        out = tmp_path / f"{scale}.webp"
        convert(gray_clip, out, anim("webp", number=1, width=32, height=32, scale=scale), start=2.0)
        img = read_animation(out)[0][0].astype(int)
        assert (img[0].mean() < 10) == bars and img[16].mean() > 100  # frame 20 is light grey


@pytest.mark.parametrize("rotation, top, bottom", [(90, "blue", "red"), (270, "red", "blue")])
def test_rotation_metadata_is_applied_as_a_player_would(clips, tmp_path, rotation, top, bottom):
    # Coded picture: red left half, blue right half; ffmpeg's CLI shows 90 with blue on top.
    src = write_clip(clips / f"rot{rotation}.mp4", frames=3, size=(64, 48), rotation=rotation, pattern="halves")
    out = tmp_path / "a.webp"
    result = convert(src, out, anim("webp", number=1, width=0.5, height=0.5))
    img = read_animation(out)[0][0].astype(int)
    colour = {"red": 0, "blue": 2}
    assert (result.source_width, result.source_height, result.width, result.height) == (48, 64, 24, 32)
    assert img[2, 12, colour[top]] > 200 and img[-3, 12, colour[bottom]] > 200


def test_sample_aspect_ratio_gives_the_displayed_size(clips, tmp_path):
    src = write_clip(clips / "sar.mp4", frames=3, size=(64, 48), sar=Fraction(4, 3))
    out = tmp_path / "a.gif"
    result = convert(src, out, anim(number=1, width=0.5, height=0.5))
    assert (result.source_width, result.source_height) == (85, 48)
    assert (result.width, result.height) == (43, 24)


def test_variable_frame_rate_picks_the_frame_on_screen(clips, tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 1.0, 1.05, 1.5]
    src = write_clip(clips / "vfr.mkv", times=times)
    out = tmp_path / "a.gif"
    convert(src, out, anim(interval=0.1, number=15))
    expected = [max(i for i, t in enumerate(times) if t <= k / 10 + 1e-9) for k in range(15)]
    assert indices(out) == expected


CONTAINERS = [
    ("mp4", None, "libx264", "yuv420p"),
    ("mov", None, "libx264", "yuv420p"),
    ("mkv", None, "libx264", "yuv420p"),
    ("webm", None, "libvpx-vp9", "yuv420p"),
    ("avi", None, "mpeg4", "yuv420p"),
    ("flv", None, "flv", "yuv420p"),
    ("ts", "mpegts", "mpeg2video", "yuv420p"),  # starts at 1.4 s: StartTime counts from there
    ("wmv", "asf", "wmv2", "yuv420p"),
    ("vob", "vob", "mpeg2video", "yuv420p"),
    ("mpg", "mpeg", "mpeg2video", "yuv420p"),
    ("rm", "rm", "rv20", "yuv420p"),
    ("m3u8", "hls", "libx264", "yuv420p"),
    ("10bit.mkv", None, "libx265", "yuv420p10le"),
]


@pytest.mark.parametrize("suffix, fmt, codec, pix_fmt", CONTAINERS, ids=[c[0] for c in CONTAINERS])
def test_every_container_pyav_can_write(clips, tmp_path, suffix, fmt, codec, pix_fmt):
    # One x265 thread pool of one: its default pools have been seen to stall on this 2-core machine.
    options = {"x265-params": "log-level=none:pools=1:frame-threads=1"} if codec == "libx265" else {}
    src = write_clip(clips / f"c.{suffix}", frames=25, fmt=fmt, codec=codec, pix_fmt=pix_fmt, options=options)
    out = tmp_path / "a.gif"
    convert(src, out, anim(interval=0.5, number=3), start=1.0)
    assert indices(out) == [10, 15, 20]


@pytest.mark.parametrize(
    "width, height, scale, size",
    [(201, 151, "stretch", (201, 151)), (201, 151, "fit", (201, 113)), (201, 151, "crop", (201, 151)),
     (201, 151, "fill", (201, 151)), (0.5, 0.5, "fit", (167, 94))],
)
@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_odd_sizes(clips, tmp_path, fmt, width, height, scale, size):
    src = clips / "odd.mkv"
    if not src.exists():
        write_clip(src, frames=3, size=(333, 187), pix_fmt="yuv444p")
    out = tmp_path / f"a.{fmt}"
    result = convert(src, out, anim(fmt, number=2, width=width, height=height, scale=scale))
    frames, _, _ = read_animation(out)
    assert (result.width, result.height) == size == (frames[0].shape[1], frames[0].shape[0])
    assert [source_index(f) for f in frames] == [0, 1]


def _audio_only(path):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 44100), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path


def _cover_art_only(path):
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        audio = container.add_stream("libmp3lame", rate=44100)
        art = container.add_stream("mjpeg", rate=1)
        art.width = art.height = 32
        art.pix_fmt = "yuvj420p"
        art.disposition = av.stream.Disposition.attached_pic
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 11520), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*audio.encode(frame), *audio.encode()]:
            container.mux(packet)
        picture = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        picture.pts = 0
        for packet in [*art.encode(picture), *art.encode()]:
            container.mux(packet)
    return path


def _truncated(path, gray_clip):
    data = gray_clip.read_bytes()  # moov at the end: cutting it off leaves no index
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p, g: _audio_only(p.with_suffix(".m4a")), "no video stream"),
        (lambda p, g: _cover_art_only(p.with_suffix(".mp3")), "no video stream"),
        (lambda p, g: (p.write_bytes(b""), p)[1], "empty file"),
        (lambda p, g: (p.write_bytes(bytes(range(256)) * 64), p)[1], "corrupt"),
        (lambda p, g: _truncated(p, g), "corrupt"),
    ],
    ids=["audio-only", "cover-art", "empty", "garbage", "truncated"],
)
@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_bad_media_is_a_one_line_media_error_and_leaves_nothing(tmp_path, gray_clip, make, reason, isolate):
    src = make(tmp_path / "in.mp4", gray_clip)
    out = tmp_path / "out" / "a.gif"
    out.parent.mkdir()
    with pytest.raises(MediaError, match=reason) as caught:
        convert(src, out, anim(number=3), isolate=isolate)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 3
    assert list(out.parent.iterdir()) == []


def test_a_start_after_the_end_is_its_own_error(gray_clip, tmp_path):
    with pytest.raises(MediaError, match="no frames in the requested range"):
        convert(gray_clip, tmp_path / "a.webp", anim("webp", number=3), start=30.0)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_packets_are_skipped(clips, tmp_path):
    src = write_clip(clips / "damaged.ts", frames=30, fmt="mpegts", codec="mpeg2video")
    data = bytearray(src.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    assert convert(damaged, tmp_path / "a.gif", anim(interval=0.5)).frames == 6


def in_thread(call):
    """Run ``call()`` in a second thread: the worker then forks from the fork server, not the caller."""
    box = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def direct(call):
    return call()


WORKERS = pytest.mark.parametrize("run", [direct, in_thread], ids=["fork", "forkserver"])


def test_the_worker_forks_from_a_single_threaded_caller_and_uses_the_fork_server_otherwise():
    alone = threading.active_count() == 1  # other tests may leave a thread pool behind
    assert worker.start_method() == ("fork" if alone else "forkserver")
    assert in_thread(worker.start_method) == "forkserver"


@WORKERS
def test_worker_reports_progress_across_the_process_boundary(gray_clip, tmp_path, run):
    seen = []
    result = run(lambda: convert(gray_clip, tmp_path / "a.gif", anim(number=20), isolate=True,
                                 progress=lambda done, total: seen.append((done, total))))
    assert result.frames == 20 and seen[-1] == (20, 20)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@WORKERS
def test_the_probe_sheet_is_made_in_the_same_worker(gray_clip, tmp_path, run):
    from autoanim.convert_request import Sprite
    from autoanim.engine.probe import sprite_sheet

    sprite = Sprite.model_validate({"Format": "png", "Interval": 0.5, "Number": 4, "TileWidth": 2, "TileHeight": 2,
                                    "ScaleWidth": 16, "ScaleHeight": 16, "URI": "oss://b/s.png"})
    result = run(lambda: sprite_sheet(gray_clip, tmp_path / "s.png", sprite, isolate=True))
    assert (result.tiles, result.width, result.height) == (4, 32, 32)
    with pytest.raises(ServiceError) as caught:
        run(lambda: sprite_sheet(gray_clip, tmp_path / "t.png", sprite, isolate=True, timeout=0.001))
    assert caught.value.retryable and sorted(p.name for p in tmp_path.iterdir()) == ["s.png"]


@WORKERS
def test_worker_timeout_is_retryable_and_leaves_nothing(gray_clip, tmp_path, run):
    with pytest.raises(ServiceError) as caught:
        run(lambda: convert(gray_clip, tmp_path / "a.gif", anim(number=20), isolate=True, timeout=0.01))
    assert caught.value.retryable
    assert list(tmp_path.iterdir()) == []


def _crash(*args):
    faulthandler.disable()  # pytest's traceback dump would only be noise here
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_worker_that_crashes_is_a_media_error_and_the_caller_lives_on(gray_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(job, "run", _crash)  # a child forked from this process inherits it
    monkeypatch.setattr(worker, "start_method", lambda: "fork")  # even if another test left a thread
    with pytest.raises(MediaError, match="died on this file \\(signal 11\\)"):
        convert(gray_clip, tmp_path / "a.gif", anim(number=3), isolate=True)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert convert(gray_clip, tmp_path / "a.gif", anim(number=3), isolate=True).frames == 3


def test_a_worker_started_ahead_opens_the_source_meanwhile_and_runs_the_job_as_a_fresh_one(gray_clip, tmp_path):
    fresh = convert(gray_clip, tmp_path / "fresh.webp", anim("webp", number=5), isolate=True)
    with worker.Worker(ahead=str(gray_clip)) as ahead:
        early = convert(gray_clip, tmp_path / "early.webp", anim("webp", number=5), isolate=True, worker=ahead)
        pid = ahead.child.pid
    assert (early.frames, early.width, early.height) == (fresh.frames, fresh.width, fresh.height)
    assert (tmp_path / "early.webp").read_bytes() == (tmp_path / "fresh.webp").read_bytes()
    with pytest.raises(ProcessLookupError):  # joined by the with block, which ran its one job
        os.kill(pid, 0)


def test_a_worker_started_ahead_that_gets_no_job_is_stopped(gray_clip):
    with worker.Worker(ahead=str(gray_clip)) as idle:
        pid = idle.child.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_worker_started_ahead_ends_when_its_caller_is_killed_before_the_job(gray_clip):
    """The caller dies without unwinding (SIGKILL, as a supervisor's or the OOM killer's): no orphan waits on."""
    code = ("import os, signal, sys\nfrom autoanim.engine.worker import Worker\n"
            f"w = Worker(ahead={str(gray_clip)!r})\nprint(w.child.pid, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    pid = int(done.stdout.split()[0])
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # exited; its new parent has not reaped it yet
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"the worker {pid} outlived its killed caller")


def test_a_source_that_will_not_open_ahead_is_reported_by_the_job(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with worker.Worker(ahead=str(empty)) as ahead, pytest.raises(MediaError, match="empty file"):
        convert(empty, tmp_path / "a.gif", anim(), isolate=True, worker=ahead)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mp4"]


def test_long_intervals_seek_per_sample(clips, tmp_path):
    src = write_clip(clips / "long.mp4", frames=30, fps=1, options={"g": "2"})  # keyframe every 2 s
    out = tmp_path / "a.gif"
    convert(src, out, anim(interval=7.0), start=1.0)
    assert indices(out) == [1, 8, 15, 22, 29]


def test_sample_video(tmp_path):
    path = engine.sample_video(tmp_path / "s.mp4", 1.0, width=96, height=54, fps=10)
    out = tmp_path / "s.webp"
    result = convert(path, out, anim("webp", interval=0.2))
    assert (result.frames, result.source_width, result.source_height) == (5, 96, 54)


def test_importing_the_engine_does_not_import_pyav():
    code = "import sys, autoanim.engine; assert 'av' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": "src"})
