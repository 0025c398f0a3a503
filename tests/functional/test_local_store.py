"""The folder ObjectStore keeps the ObjectStore contract (the same one the OSS adapter keeps)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoanim.adapters.local_store import LocalObjectStore, is_temp_name
from autoanim.errors import NotFound, ServiceError, TooLarge


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "buckets")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if is_temp_name(p.name)]


def test_put_then_head_read_exists(store: LocalObjectStore) -> None:
    store.put("videos", "in dir/clip +1.mp4", b"abc", content_type="video/mp4")
    info = store.head("videos", "in dir/clip +1.mp4")
    assert (info.bucket, info.key, info.size, info.etag) == ("videos", "in dir/clip +1.mp4", 3, md5(b"abc"))
    assert info.content_type == "video/mp4"
    assert info.last_modified.endswith("Z")
    assert store.read("videos", "in dir/clip +1.mp4", 3) == b"abc"
    assert store.exists("videos", "in dir/clip +1.mp4")
    assert not store.exists("videos", "in dir/other.mp4")
    assert store.path("videos", "in dir/clip +1.mp4") == store.root / "videos" / "in dir" / "clip +1.mp4"
    assert not leftovers(store.root)


def test_missing_objects_are_not_found(store: LocalObjectStore) -> None:
    store.put("videos", "a/b.mp4", b"x")
    for key in ("nothing.mp4", "a", "a/b.mp4/c"):
        with pytest.raises(NotFound):
            store.head("videos", key)
        with pytest.raises(NotFound):
            store.read("videos", key, 10)
        with pytest.raises(NotFound):
            store.get_tags("videos", key)
    with pytest.raises(NotFound):
        store.head("nobucket", "a/b.mp4")


def test_read_cap_is_checked_before_reading(store: LocalObjectStore) -> None:
    store.put("videos", "side.anim.json", b"x" * 100)
    assert store.read("videos", "side.anim.json", 100) == b"x" * 100
    with pytest.raises(TooLarge) as caught:
        store.read("videos", "side.anim.json", 99)
    assert "100 bytes" in str(caught.value) and not caught.value.retryable


def test_read_refuses_an_object_that_grew_over_the_cap_after_its_stat(store: LocalObjectStore, monkeypatch) -> None:
    store.put("videos", "side.anim.json", b"x" * 50)
    path, stat = store._stat("videos", "side.anim.json")
    path.write_bytes(b"x" * 100)  # grows between the stat and the read
    monkeypatch.setattr(store, "_stat", lambda bucket, key: (path, stat))
    assert store.read("videos", "side.anim.json", 100) == b"x" * 100
    with pytest.raises(TooLarge):
        store.read("videos", "side.anim.json", 99)


def test_plain_file_dropped_in_has_etag_and_no_tags(store: LocalObjectStore) -> None:
    path = store.root / "videos" / "dropped.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"dropped")
    info = store.head("videos", "dropped.mp4")
    assert info.etag == md5(b"dropped") and info.content_type == "video/mp4"
    assert store.get_tags("videos", "dropped.mp4") == {}


def test_etag_cache_follows_size_and_mtime(store: LocalObjectStore) -> None:
    store.put("videos", "v.mp4", b"one")
    meta = store.root / ".autoanim" / "meta" / "videos" / "v.mp4.json"
    assert json.loads(meta.read_text())["etag"] == md5(b"one")
    path = store.path("videos", "v.mp4")
    path.write_bytes(b"second")  # changed behind the store's back
    assert store.head("videos", "v.mp4").etag == md5(b"second")
    # A cached value is used as long as size and mtime match (no re-hash of big files).
    cached = json.loads(meta.read_text())
    meta.write_text(json.dumps({**cached, "etag": "CACHED"}))
    assert store.head("videos", "v.mp4").etag == "CACHED"


def test_tags_round_trip_and_put_resets_them(store: LocalObjectStore) -> None:
    store.put("videos", "v.mp4", b"x")
    store.put_tags("videos", "v.mp4", {"anim-format": "gif", "anim-start": "00:05"})
    assert store.get_tags("videos", "v.mp4") == {"anim-format": "gif", "anim-start": "00:05"}
    assert store.head("videos", "v.mp4").etag == md5(b"x")  # tags do not disturb the etag cache
    store.put_tags("videos", "v.mp4", {"anim": "off"})
    assert store.get_tags("videos", "v.mp4") == {"anim": "off"}
    store.put("videos", "v.mp4", b"new")  # like OSS PutObject: a new object, no tags
    assert store.get_tags("videos", "v.mp4") == {}


def test_tags_written_by_hand_are_read(store: LocalObjectStore) -> None:
    meta = store.root / ".autoanim" / "meta" / "videos" / "in" / "v.mp4.json"
    meta.parent.mkdir(parents=True)
    meta.write_text('{"tags": {"anim-format": "webp"}}')
    store.put_file("videos", "in/v.mp4", _file(store.root.parent / "src.mp4", b"v"), tags={"anim-fps": "5"})
    assert store.get_tags("videos", "in/v.mp4") == {"anim-fps": "5"}  # put_file sets what it is given
    meta.write_text('{"tags": {"anim-format": "webp"}}')
    assert store.get_tags("videos", "in/v.mp4") == {"anim-format": "webp"}
    meta.write_text("{not json")
    with pytest.raises(ServiceError, match="metadata file .* unreadable") as caught:
        store.get_tags("videos", "in/v.mp4")
    assert not caught.value.retryable


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"anim": "{json}"},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"": "v"},
    ],
)
def test_tags_over_oss_limits_are_refused(store: LocalObjectStore, tags: dict[str, str]) -> None:
    store.put("videos", "v.mp4", b"x")
    with pytest.raises(ServiceError) as caught:
        store.put_tags("videos", "v.mp4", tags)
    assert caught.value.code == "InvalidTag" and not caught.value.retryable


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_put_file_copies_with_tags(store: LocalObjectStore, tmp_path: Path) -> None:
    src = _file(tmp_path / "clip.mp4", os.urandom(3 * 1024 * 1024 + 5))
    info = store.put_file("videos", "up/clip.mp4", src, tags={"anim-format": "gif"})
    assert info.etag == md5(src.read_bytes()) and info.size == src.stat().st_size
    assert store.path("videos", "up/clip.mp4").read_bytes() == src.read_bytes()
    assert store.get_tags("videos", "up/clip.mp4") == {"anim-format": "gif"}
    assert store.key_for(store.path("videos", "up/clip.mp4")) == ("videos", "up/clip.mp4")
    assert not leftovers(store.root)


def test_create_is_create_if_absent(store: LocalObjectStore) -> None:
    assert store.create("videos", ".claims/k.json", b'{"n": 1}') is True
    assert store.create("videos", ".claims/k.json", b'{"n": 2}') is False
    assert store.read("videos", ".claims/k.json", 100) == b'{"n": 1}'
    assert store.head("videos", ".claims/k.json").content_type == "application/json"
    assert not leftovers(store.root)


def test_create_exactly_once_across_threads(store: LocalObjectStore) -> None:
    for round_ in range(20):
        key = f".claims/{round_}.json"
        barrier = threading.Barrier(8)
        results: dict[int, bool] = {}

        def claim(
            n: int, key: str = key, barrier: threading.Barrier = barrier, results: dict = results
        ) -> None:
            barrier.wait()
            results[n] = store.create("videos", key, f"thread {n}".encode())

        threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [n for n, won in results.items() if won]
        assert len(results) == 8 and len(winners) == 1
        assert store.read("videos", key, 100) == f"thread {winners[0]}".encode()
    assert not leftovers(store.root)


def _claim_in_process(root: str, key: str, n: int, barrier, results) -> None:
    store = LocalObjectStore(root)
    barrier.wait()
    results.put((n, store.create("videos", key, f"process {n}".encode())))


def test_create_exactly_once_across_processes(store: LocalObjectStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(3):
        key = f".claims/p{round_}.json"
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [
            ctx.Process(target=_claim_in_process, args=(str(store.root), key, n, barrier, results))
            for n in range(4)
        ]
        for p in procs:
            p.start()
        outcomes = dict(results.get(timeout=60) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        winners = [n for n, won in outcomes.items() if won]
        assert len(outcomes) == 4 and len(winners) == 1
        assert store.read("videos", key, 100) == f"process {winners[0]}".encode()
    assert not leftovers(store.root)


def test_concurrent_puts_leave_one_whole_object(store: LocalObjectStore) -> None:
    payloads = [bytes([n]) * 200_000 for n in range(8)]
    threads = [threading.Thread(target=store.put, args=("videos", "same.bin", p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = store.read("videos", "same.bin", 10**6)
    assert data in payloads and store.head("videos", "same.bin").etag == md5(data)
    assert not leftovers(store.root)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "\\evil",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        "nul\x00.mp4",
        "x" * 1024,
        "y" * 251,
    ],
)
def test_unsafe_keys_are_refused(store: LocalObjectStore, key: str) -> None:
    for call in (
        lambda: store.put("videos", key, b"x"),
        lambda: store.create("videos", key, b"x"),
        lambda: store.head("videos", key),
        lambda: store.path("videos", key),
    ):
        with pytest.raises(ServiceError) as caught:
            call()
        assert caught.value.code == "InvalidObjectName" and not caught.value.retryable
    assert not any(store.root.parent.rglob("x"))


@pytest.mark.parametrize(
    "bucket", ["", "ab", "UPPER", "-lead", "trail-", "a" * 64, "../up", ".autoanim", "a_b"]
)
def test_bad_bucket_names_are_refused(store: LocalObjectStore, bucket: str) -> None:
    with pytest.raises(ServiceError) as caught:
        store.put(bucket, "k", b"x")
    assert caught.value.code == "InvalidBucketName"


def test_a_key_cannot_be_both_file_and_folder(store: LocalObjectStore) -> None:
    store.put("videos", "a", b"x")
    with pytest.raises(ServiceError, match="cannot hold both") as caught:
        store.put("videos", "a/b", b"y")
    assert not caught.value.retryable
    store.put("videos", "d/e", b"y")
    with pytest.raises(ServiceError, match="folder"):
        store.create("videos", "d", b"z")


_SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "", "~", "\x00", "\\", "..\\..", "%2e%2e", "\u202e", "a b", "+", "é"]),
    st.text(min_size=0, max_size=12),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=st.lists(_SEGMENTS, min_size=1, max_size=6), leading_slash=st.booleans())
def test_hostile_keys_never_escape_their_bucket(
    store: LocalObjectStore, segments: list[str], leading_slash: bool
) -> None:
    key = ("/" if leading_slash else "") + "/".join(segments)
    bucket_dir = store.root / "videos"
    try:
        path = store.path("videos", key)
    except ServiceError as exc:
        assert exc.code == "InvalidObjectName" and not exc.retryable
        return
    assert os.path.commonpath([os.path.abspath(path), bucket_dir]) == str(bucket_dir)
    assert Path(os.path.abspath(path)) != bucket_dir
    try:
        store.put("videos", key, b"data")
    except ServiceError as exc:  # e.g. 'a' then 'a/b': refused with a reason, never written elsewhere
        assert exc.code == "InvalidObjectName"
        return
    assert store.read("videos", key, 10) == b"data"
    assert store.key_for(path) == ("videos", key)
    path.unlink()  # the next example starts without it
