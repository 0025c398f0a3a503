"""backfill.run on the in-memory adapters: on_upload in process, stops and resumes, claims as "done"."""

from __future__ import annotations

import json
import threading

from autoanim import backfill, objects

SIDECAR = json.dumps({"animations": [{"format": "gif", "duration": 2, "fps": 5}, {"profile": "sticker"}]}).encode()


def seed(store, n: int = 40) -> set[str]:
    videos = set()
    for i in range(n):
        key = f"videos/{i:03d} {'日本' if i % 3 else 'a+b'}.mp4"
        store.add("bkt", key, f"v{i}".encode(), {"anim": "off"} if i % 10 == 9 else None)
        if i % 10 != 9:
            videos.add(key)
        if i % 7 == 0:
            store.add("bkt", key + ".anim.json", SIDECAR)
    store.add("bkt", "videos/readme.txt", b"x")
    return videos


def run(app, **kw):
    return backfill.run(app, "bkt", "videos/", source="oss://bkt/videos/", via="direct",
                        submit=backfill.in_process_submitter(app), workers=4, **kw)


def test_every_video_is_handed_to_on_upload_once(app, store, media):
    videos = seed(store)
    summary = run(app)
    assert summary.complete and summary.invoked == len(videos) and not summary.failed
    assert len(media.requests) == summary.clips
    assert {r.sources[0].uri.split("/", 3)[3] for r in media.requests} == videos
    assert sum(r.animation.number for r in media.requests) == summary.billed_frames_total

    again = run(app)
    assert again.invoked == 0 and again.skipped_done == len(videos) and again.clips_done == summary.clips
    assert len(media.requests) == summary.clips  # nothing submitted twice


def test_an_interrupted_run_resumes_from_its_checkpoint(app, store, media, tmp_path):
    videos = seed(store)
    checkpoint = backfill.Checkpoint(tmp_path / "c.json", source="oss://bkt/videos/", via="direct", function="f")

    listed = store.list

    def interrupting(bucket, prefix="", start_after=""):
        """Ctrl-C while the first run's listing is at its 20th object."""
        for n, info in enumerate(listed(bucket, prefix, start_after)):
            if n == 20 and not start_after and prefix == "videos/":
                raise KeyboardInterrupt
            yield info

    store.list = interrupting
    first = run(app, checkpoint=checkpoint)
    assert first.interrupted and not first.complete and first.last_key
    assert checkpoint.load() == first.last_key
    second = run(app, checkpoint=checkpoint, start_after=checkpoint.load())
    assert second.complete and second.resumed_after == first.last_key
    assert first.invoked + second.invoked == len(videos)
    assert {r.sources[0].uri.split("/", 3)[3] for r in media.requests} == videos
    assert len(media.requests) == first.clips + second.clips


def test_a_stop_event_and_a_limit_leave_the_rest_for_later(app, store, media):
    videos = seed(store)
    limited = run(app, limit=5)
    assert limited.invoked == 5 and not limited.complete
    stop = threading.Event()
    stop.set()
    stopped = run(app, stop=stop, start_after=limited.last_key)
    assert not stopped.complete
    rest = run(app, start_after=limited.last_key)
    assert rest.complete and limited.invoked + rest.invoked + stopped.invoked == len(videos)


def test_a_dry_run_writes_nothing(app, store, media):
    seed(store)
    before = dict(store.objects)
    store.calls.clear()
    summary = backfill.run(app, "bkt", "videos/", source="oss://bkt/videos/", via="fc")
    assert summary.mode == "dry-run" and summary.to_submit == summary.videos_with_clips > 0
    assert store.objects == before and not media.requests
    assert not [c for c in store.calls if c[0] in ("put", "create")]
    reads = [c for c in store.calls if c[0] == "read"]  # sidecars only where the listing showed one
    assert {c[2] for c in reads} <= {k for _, k in store.objects if objects.is_sidecar_key(k)}
