"""The local MediaService: runs the engine off the caller's thread and publishes IMM-shaped results."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autoanim.adapters import local_media
from autoanim.adapters.local_media import LocalMediaService
from autoanim.adapters.local_store import LocalObjectStore
from autoanim.convert_request import Animation, ConvertRequest
from autoanim.errors import MediaError, ServiceError


@dataclass(frozen=True)
class FakeResult:
    frames: int
    width: int
    height: int
    bytes: int
    duration: float
    source_width: int
    source_height: int
    elapsed: float


class FakeEngine:
    """Same signature as ``autoanim.engine.convert``; records its calls, writes a small file."""

    def __init__(self, fail: Exception | None = None, gate: threading.Event | None = None):
        self.fail = fail
        self.gate = gate
        self.calls: list[dict[str, Any]] = []
        self.threads: set[str] = set()

    def __call__(
        self, src: Path, out: Path, animation: Animation, *, start=None, duration=None, quality=None, **_: Any
    ):
        self.calls.append(
            {"src": src, "out": out, "format": animation.format, "start": start, "duration": duration, **_}
        )
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        data = b"RIFF-fake-" + animation.format.encode()
        out.write_bytes(data)
        return FakeResult(12, 320, 180, len(data), 2.4, 640, 360, 0.01)


class Recorder:
    def __init__(self) -> None:
        self.events: list[bytes] = []

    def __call__(self, event: bytes) -> None:
        self.events.append(event)


def request(
    uri: str = "oss://videos/in/clip.mp4", out: str = "oss://videos/animated/in/clip.webp", **extra: Any
) -> ConvertRequest:
    animation = {"Format": out.rsplit(".", 1)[1], "FrameRate": 10, "Interval": 0.1, "Number": 12, "URI": out}
    return ConvertRequest.model_validate(
        {
            "ProjectName": "demo",
            "Sources": [{"URI": uri, "StartTime": 1.5, "Duration": 2.4}],
            "Targets": [{"Image": {"Animations": [animation]}}],
            "Notification": {"MNS": {"TopicName": "results"}},
            "UserData": '{"rule": "preview"}',
            **extra,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "buckets")
    store.put("videos", "in/clip.mp4", b"not really a video")
    return store


def parse(event: bytes) -> tuple[dict, dict, dict]:
    """FC MNS JSON event → IMM envelope → content, checking each layer's own invariants."""
    fc = json.loads(event)
    assert fc["MessageMD5"] == hashlib.md5(fc["Message"].encode()).hexdigest().upper()
    assert isinstance(fc["PublishTime"], int)
    envelope = json.loads(fc["Message"])
    return fc, envelope, json.loads(envelope["content"])


def test_success_publishes_an_imm_shaped_result(store: LocalObjectStore) -> None:
    engine, notify = FakeEngine(), Recorder()
    with LocalMediaService(store, notify=notify, convert=engine, project="demo") as media:
        task_id = media.submit(request())
        assert task_id.startswith("MediaConvert-")
        assert media.wait(timeout=30)
    assert len(notify.events) == 1
    fc, envelope, content = parse(notify.events[0])
    assert fc["TopicName"] == "results"
    assert set(fc) == {
        "TopicOwner",
        "Message",
        "Subscriber",
        "PublishTime",
        "SubscriptionName",
        "MessageMD5",
        "TopicName",
        "MessageId",
    }
    assert envelope["source"] == "acs.imm" and envelope["type"] == "imm:Task:MediaConvert"
    assert envelope["subject"] == "acs:imm:local:local:demo/imm:Task:MediaConvert"
    assert envelope["time"].isdigit()
    assert content["TaskId"] == task_id and content["Status"] == "Succeeded" and content["Code"] == ""
    assert content["UserData"] == '{"rule": "preview"}' and content["TaskType"] == "MediaConvert"
    assert (
        content["ProjectName"] == "demo"
        and content["StartTime"].endswith("Z")
        and content["EndTime"].endswith("Z")
    )
    assert content["Sources"] == [{"URI": "oss://videos/in/clip.mp4", "SubtitleSources": None}]
    (target,) = content["Targets"]
    assert target["URI"] == "" and target["Subtitle"] == {"Extract": {"URI": ""}}
    (animation,) = target["Image"]["Animations"]
    assert animation["URI"] == "oss://videos/animated/in/clip.webp" and animation["Frames"] == 12
    assert store.read("videos", "animated/in/clip.webp", 100) == b"RIFF-fake-webp"
    (call,) = engine.calls
    assert call["src"] == store.path("videos", "in/clip.mp4") and (call["start"], call["duration"]) == (
        1.5,
        2.4,
    )
    assert threading.current_thread().name not in engine.threads  # off the caller's thread


def test_the_result_parses_with_the_project_parser(store: LocalObjectStore) -> None:
    events = pytest.importorskip("autoanim.events")
    notify = Recorder()
    with LocalMediaService(store, notify=notify, convert=FakeEngine()) as media:
        task_id = media.submit(request())
    result = events.parse_task_result(notify.events[0])
    assert (result.task_id, result.status, result.user_data) == (task_id, "Succeeded", '{"rule": "preview"}')
    assert [a["URI"] for a in result.animations()] == ["oss://videos/animated/in/clip.webp"]


def test_unreadable_media_fails_with_reason_and_no_output(store: LocalObjectStore) -> None:
    notify = Recorder()
    engine = FakeEngine(fail=MediaError("no video stream in in/clip.mp4"))
    with LocalMediaService(store, notify=notify, convert=engine) as media:
        media.submit(request())
    _, _, content = parse(notify.events[0])
    assert (content["Status"], content["Code"], content["Message"]) == (
        "Failed",
        "InvalidMedia",
        "no video stream in in/clip.mp4",
    )
    assert content["Targets"][0]["Image"]["Animations"] == [{"URI": "oss://videos/animated/in/clip.webp"}]
    assert not store.exists("videos", "animated/in/clip.webp")


def test_an_engine_crash_is_an_internal_error(store: LocalObjectStore) -> None:
    notify = Recorder()
    with LocalMediaService(store, notify=notify, convert=FakeEngine(fail=RuntimeError("boom"))) as media:
        media.submit(request())
    _, _, content = parse(notify.events[0])
    assert (content["Status"], content["Code"]) == ("Failed", "InternalError") and "boom" in content[
        "Message"
    ]


def test_a_failed_second_animation_removes_the_first(store: LocalObjectStore) -> None:
    class FailSecond(FakeEngine):
        def __call__(self, src, out, animation, **kw):
            if self.calls:
                self.fail = MediaError("decode error at 3.0 s")
            return super().__call__(src, out, animation, **kw)

    notify = Recorder()
    two = request().wire()
    gif = {
        **two["Targets"][0]["Image"]["Animations"][0],
        "Format": "gif",
        "URI": "oss://videos/animated/in/clip.gif",
    }
    two["Targets"][0]["Image"]["Animations"].append(gif)
    with LocalMediaService(store, notify=notify, convert=FailSecond()) as media:
        media.submit(ConvertRequest.model_validate(two))
    _, _, content = parse(notify.events[0])
    assert content["Status"] == "Failed"
    assert not store.exists("videos", "animated/in/clip.webp") and not store.exists(
        "videos", "animated/in/clip.gif"
    )


@pytest.mark.parametrize(
    ("uri", "out", "code"),
    [
        ("oss://videos/in/missing.mp4", "oss://videos/animated/x.webp", "ResourceNotFound"),
        ("oss://elsewhere/in/clip.mp4", "oss://videos/animated/x.webp", "ResourceNotFound"),
        ("oss://videos/in/clip.mp4", "oss://nobucket/animated/x.webp", "ResourceNotFound"),
        ("https://example.com/clip.mp4", "oss://videos/animated/x.webp", "InvalidArgument"),
        ("oss://videos/../../etc/passwd", "oss://videos/animated/x.webp", "InvalidArgument"),
        ("oss://videos/in/clip.mp4", "oss://videos/../escape.webp", "InvalidArgument"),
    ],
)
def test_uris_outside_the_store_fail_the_task(store: LocalObjectStore, uri: str, out: str, code: str) -> None:
    notify, engine = Recorder(), FakeEngine()
    with LocalMediaService(store, notify=notify, convert=engine) as media:
        media.submit(request(uri, out))
    _, _, content = parse(notify.events[0])
    assert (content["Status"], content["Code"]) == ("Failed", code), content["Message"]
    assert engine.calls == [] or code == "ResourceNotFound"
    assert not list(store.root.parent.rglob("escape.webp")) and not list(store.root.rglob("x.webp"))


def test_wait_covers_tasks_submitted_by_a_notification(store: LocalObjectStore) -> None:
    delivered: list[str] = []
    media: LocalMediaService

    def on_result(event: bytes) -> None:  # like on_task_result resubmitting a retryable failure
        _, _, content = parse(event)
        delivered.append(content["TaskId"])
        if len(delivered) < 3:
            media.submit(request())

    with LocalMediaService(store, notify=on_result, convert=FakeEngine(), workers=1) as media:
        media.submit(request())
        assert media.wait(timeout=30)
        assert len(delivered) == 3 and len(set(delivered)) == 3


def test_submit_returns_before_the_conversion_runs(store: LocalObjectStore) -> None:
    gate = threading.Event()
    notify = Recorder()
    media = LocalMediaService(store, notify=notify, convert=FakeEngine(gate=gate), workers=2)
    ids = [media.submit(request()) for _ in range(3)]
    assert media.wait(timeout=0.05) is False and not notify.events  # all three still running
    gate.set()
    assert media.wait(timeout=30)
    results = [parse(event)[2] for event in notify.events]
    assert sorted(r["TaskId"] for r in results) == sorted(ids)
    assert {r["Status"] for r in results} == {"Succeeded"}
    media.close()


def test_a_failing_notify_is_retried_then_kept_not_lost(store: LocalObjectStore, monkeypatch) -> None:
    monkeypatch.setattr(local_media, "DELIVERY_BACKOFF", 0.0)
    tries = []

    def notify(event: bytes) -> None:
        tries.append(event)
        raise OSError("result handler unavailable")

    with LocalMediaService(store, notify=notify, convert=FakeEngine()) as media:
        task_id = media.submit(request())
    assert len(tries) == local_media.DELIVERY_ATTEMPTS
    (failed,) = media.failed_deliveries
    assert failed.task_id == task_id and isinstance(failed.error, OSError)
    assert parse(failed.event)[2]["TaskId"] == task_id


@pytest.mark.media
def test_real_engine_makes_a_webp(store: LocalObjectStore, tmp_path: Path) -> None:
    engine = pytest.importorskip("autoanim.engine")
    if not hasattr(engine, "convert"):
        pytest.skip("autoanim.engine.convert is not there yet")
    video = engine.sample_video(tmp_path / "sample.mp4", seconds=3.0, width=160, height=90)
    store.put_file("videos", "in/clip.mp4", video)
    notify = Recorder()
    with LocalMediaService(store, notify=notify) as media:
        media.submit(request())
        media.submit(request("oss://videos/in/clip.mp4", "oss://videos/animated/in/clip.gif"))
    results = [parse(e)[2] for e in notify.events]
    assert [r["Status"] for r in results] == ["Succeeded", "Succeeded"], [r["Message"] for r in results]
    for key, magic in (("animated/in/clip.webp", b"RIFF"), ("animated/in/clip.gif", b"GIF8")):
        assert store.read("videos", key, 10**7)[:4] == magic
    frames = {a["URI"]: a["Frames"] for r in results for a in r["Targets"][0]["Image"]["Animations"]}
    assert all(0 < n <= 12 for n in frames.values())
    assert not list((store.root / "videos").rglob(".*"))  # no temp file of the store or the engine left
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    store.put_file("videos", "in/bad.mp4", corrupt)
    notify.events.clear()
    with LocalMediaService(store, notify=notify) as media:
        media.submit(request("oss://videos/in/bad.mp4", "oss://videos/animated/in/bad.webp"))
    content = parse(notify.events[0])[2]
    assert (content["Status"], content["Code"]) == ("Failed", "InvalidMedia") and content["Message"]
    assert not store.exists("videos", "animated/in/bad.webp")


def test_a_conversion_that_times_out_is_a_retryable_internal_error(store: LocalObjectStore) -> None:
    """The engine kills its worker past the timeout (ServiceError, retryable): IMM's InternalError."""
    notify = Recorder()
    engine = FakeEngine(fail=ServiceError("the media worker ran past 5 s", retryable=True, code="Timeout"))
    with LocalMediaService(store, notify=notify, convert=engine, timeout=5.0) as media:
        media.submit(request())
    _, _, content = parse(notify.events[0])
    assert engine.calls[0]["timeout"] == 5.0
    assert (content["Status"], content["Code"]) == ("Failed", "InternalError")


def test_a_notify_that_fails_once_is_delivered_on_retry(store: LocalObjectStore, monkeypatch) -> None:
    monkeypatch.setattr(local_media, "DELIVERY_BACKOFF", 0.0)
    delivered = []

    def notify(event: bytes) -> None:
        if not delivered:
            delivered.append(None)
            raise OSError("busy")
        delivered.append(event)

    with LocalMediaService(store, notify=notify, convert=FakeEngine()) as media:
        media.submit(request())
    assert len(delivered) == 2 and not media.failed_deliveries
