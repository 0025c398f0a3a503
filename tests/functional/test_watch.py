"""``watch``: each new complete file in a bucket folder is one OSS PutObject event, nothing else is.

Waits are bounded polls (a few seconds at most); nothing asserts how fast it goes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("watchdog")  # the `local` extra; the FC runtime has no watcher

from autoanim.adapters.local_store import LocalObjectStore
from autoanim.local import watch_folder as watch

SETTLE = 0.6


class Watching:
    """``watch`` on a thread with a recording handler."""

    def __init__(self, store: LocalObjectStore, handle: Callable[[bytes], None] | None = None):
        self.store = store
        self.events: list[dict] = []
        self.errors: list[Exception] = []
        self.stop = threading.Event()
        self._handle = handle
        ready = threading.Event()
        self.thread = threading.Thread(
            target=watch,
            args=(store, self._record),
            kwargs={
                "stop": self.stop,
                "settle": SETTLE,
                "on_error": self.errors.append,
                "ignore_prefixes": ("animated/",),
                "ready": ready,
            },
            daemon=True,
        )
        self.thread.start()
        assert ready.wait(10), "the watcher did not start"

    def _record(self, event: bytes) -> None:
        entries = json.loads(event)["events"]
        assert len(entries) == 1
        self.events.append(entries[0])
        if self._handle is not None:
            self._handle(event)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(e["oss"]["bucket"]["name"], e["oss"]["object"]["key"]) for e in self.events]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.events) >= count, f"expected {count} events, got {self.keys} (errors {self.errors})"

    def quiet(self) -> None:
        """Gives a late event time to show up: a sentinel file, then one settle period more."""
        n = len(self.events)
        sentinel = self.store.root / "sentinel" / f"s{n}.txt"
        sentinel.parent.mkdir(exist_ok=True)
        sentinel.write_bytes(b"sentinel")
        self.wait_for(n + 1)
        time.sleep(SETTLE * 2)
        assert ("sentinel", f"s{n}.txt") in self.keys
        self.events = [e for e in self.events if e["oss"]["bucket"]["name"] != "sentinel"]


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "buckets")
    (store.root / "videos").mkdir(parents=True)
    (store.root / "sentinel").mkdir()
    return store


@pytest.fixture
def watching(store: LocalObjectStore) -> Iterator[Watching]:
    w = Watching(store)
    yield w
    w.stop.set()
    w.thread.join(10)
    assert not w.thread.is_alive()
    assert w.errors == []


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def test_a_closed_file_is_one_put_event(store: LocalObjectStore, watching: Watching) -> None:
    (store.root / "videos" / "in").mkdir()
    (store.root / "videos" / "in" / "clip one.mp4").write_bytes(b"video bytes")
    watching.wait_for(1)
    (event,) = watching.events
    assert event["eventName"] == "ObjectCreated:PutObject" and event["eventSource"] == "acs:oss"
    assert event["oss"]["bucket"]["name"] == "videos"
    assert event["oss"]["object"] == {
        "deltaSize": 11,
        "eTag": md5(b"video bytes"),
        "key": "in/clip one.mp4",
        "size": 11,
    }
    watching.quiet()
    assert watching.keys == [("videos", "in/clip one.mp4")]


def test_a_writer_that_never_closes_is_handled_once_settled(
    store: LocalObjectStore, watching: Watching
) -> None:
    path = store.root / "videos" / "slow.mp4"
    chunks = [os.urandom(64 * 1024) for _ in range(10)]
    with open(path, "wb") as handle:
        for chunk in chunks:  # gaps far below SETTLE: never "stable" while being written
            handle.write(chunk)
            handle.flush()
            time.sleep(0.03)
        watching.wait_for(1)  # still open: only the settle rule can have fired
        (event,) = watching.events
        assert event["oss"]["object"]["size"] == len(b"".join(chunks))
        assert event["oss"]["object"]["eTag"] == md5(b"".join(chunks))
    watching.quiet()  # the close that follows changes nothing: no second event
    assert watching.keys == [("videos", "slow.mp4")]


def test_a_file_moved_in_is_handled(store: LocalObjectStore, watching: Watching, tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"moved")
    os.rename(outside, store.root / "videos" / "moved.mp4")
    watching.wait_for(1)
    watching.quiet()
    assert watching.keys == [("videos", "moved.mp4")]
    assert watching.events[0]["oss"]["object"]["eTag"] == md5(b"moved")


def test_store_writes_are_one_event_each_and_carry_their_tags(
    store: LocalObjectStore, tmp_path: Path
) -> None:
    seen_tags: list[dict] = []

    def handle(event: bytes) -> None:
        obj = json.loads(event)["events"][0]["oss"]
        seen_tags.append(store.get_tags(obj["bucket"]["name"], obj["object"]["key"]))

    w = Watching(store, handle)
    try:
        src = tmp_path / "v.mp4"
        src.write_bytes(b"x" * 1000)
        store.put_file("videos", "tagged.mp4", src, tags={"anim-format": "gif"})
        store.put("videos", "put.mp4", b"y")
        w.wait_for(2)
        w.quiet()
        assert sorted(w.keys) == [("videos", "put.mp4"), ("videos", "tagged.mp4")]
        assert {"anim-format": "gif"} in seen_tags  # tags are there when the event is
    finally:
        w.stop.set()
        w.thread.join(10)
    assert w.errors == []


def test_ignored_paths_give_no_event(store: LocalObjectStore, watching: Watching) -> None:
    root = store.root
    (root / ".autoanim" / "meta" / "videos").mkdir(parents=True)
    (root / ".autoanim" / "meta" / "videos" / "a.mp4.json").write_text("{}")
    (root / "videos" / ".0123abcd.tmp").write_bytes(b"store temp")
    (root / "videos" / ".clip.webp.1234abcd.part").write_bytes(b"engine temp")
    (root / "videos" / ".claims").mkdir()
    (root / "videos" / ".claims" / "k.json").write_bytes(b"{}")
    (root / "videos" / "animated" / "in").mkdir(parents=True)
    (root / "videos" / "animated" / "in" / "clip.webp").write_bytes(b"our output")
    (root / "top-level.mp4").write_bytes(b"not in a bucket")
    (root / "Not_A_Bucket").mkdir()
    (root / "Not_A_Bucket" / "x.mp4").write_bytes(b"bad bucket name")
    store.put("videos", ".hidden/x.mp4", b"hidden key")
    watching.quiet()
    assert watching.keys == []


def test_the_same_content_is_not_handled_twice(store: LocalObjectStore, watching: Watching) -> None:
    path = store.root / "videos" / "again.mp4"
    path.write_bytes(b"one")
    watching.wait_for(1)
    open(path, "ab").close()  # opened for writing, nothing written: same size and mtime
    watching.quiet()
    assert watching.keys == [("videos", "again.mp4")]
    path.write_bytes(b"two!")  # new content: a new upload, as OSS would report
    watching.wait_for(2)
    assert watching.events[1]["oss"]["object"]["eTag"] == md5(b"two!")


def test_files_in_a_new_bucket_folder_are_seen(
    store: LocalObjectStore, watching: Watching, tmp_path: Path
) -> None:
    staged = tmp_path / "staged"
    (staged / "deep").mkdir(parents=True)
    (staged / "deep" / "a.mp4").write_bytes(b"a")
    (staged / "b.mp4").write_bytes(b"b")
    os.rename(staged, store.root / "newbucket")  # a whole folder moved in at once
    (store.root / "fresh" / "x").mkdir(parents=True)
    (store.root / "fresh" / "x" / "c.mp4").write_bytes(b"c")
    watching.wait_for(3)
    watching.quiet()
    assert sorted(watching.keys) == [
        ("fresh", "x/c.mp4"),
        ("newbucket", "b.mp4"),
        ("newbucket", "deep/a.mp4"),
    ]


def test_existing_files_are_not_handled(store: LocalObjectStore) -> None:
    (store.root / "videos" / "old.mp4").write_bytes(b"was here before")
    w = Watching(store)
    try:
        w.quiet()
        assert w.keys == []
    finally:
        w.stop.set()
        w.thread.join(10)


def test_a_failing_handler_is_reported_and_watching_goes_on(store: LocalObjectStore) -> None:
    def handle(event: bytes) -> None:
        if json.loads(event)["events"][0]["oss"]["object"]["key"] == "bad.mp4":
            raise RuntimeError("handler failed")

    w = Watching(store, handle)
    try:
        (store.root / "videos" / "bad.mp4").write_bytes(b"1")
        w.wait_for(1)
        (store.root / "videos" / "good.mp4").write_bytes(b"2")
        w.wait_for(2)
        assert [str(e) for e in w.errors] == ["handler failed"]
    finally:
        w.stop.set()
        w.thread.join(10)
