"""on_upload on in-memory fakes that record state: what is submitted, skipped, rejected, retried."""

from __future__ import annotations

import json

import pytest

import index
from autoanim import fc_events
from autoanim.config import Settings
from autoanim.errors import ServiceError
from autoanim.service import RetryLater
from tests.conftest import event_bytes, event_json

WINEMAKING_TAGS = {"anim-format": "webp", "anim-start": "5", "anim-duration": "25", "anim-fps": "15",
                   "anim-interval": "1", "anim-width": "0.5", "anim-height": "0.5", "anim-scale": "fit"}
VIDEO = b"\x00\x00\x00\x18ftypmp42 video bytes"


def oss_event(*keys: str, bucket: str = "test-bucket", name: str = "ObjectCreated:PutObject") -> bytes:
    """One FC OSS trigger event with an entry per key (the one event builder: ``fc_events``)."""
    return fc_events.oss_event(bucket, *keys, size=len(VIDEO), etag="5B3C1A2E0F9D4E6C8B7A6D5E4F3C2B1A",
                               event_name=name, region="cn-hangzhou")


def upload(app, key, data=VIDEO, tags=None, bucket="test-bucket"):
    app.store.add(bucket, key, data, tags)
    return index.on_upload(oss_event(key, bucket=bucket), None, app=app)


def animations(media):
    return [r.wire()["Targets"][0]["Image"]["Animations"][0] for r in media.requests]


def test_tagged_upload_submits_the_planned_request(app, media):
    report = upload(app, "video-demo/Winemaking.mov", tags=WINEMAKING_TAGS)
    (request,) = media.requests
    wire = request.wire()
    assert wire["Sources"] == [{"URI": "oss://test-bucket/video-demo/Winemaking.mov", "StartTime": 5, "Duration": 25}]
    assert animations(media)[0]["Number"] == 25
    assert wire["Notification"]["MNS"]["TopicName"] == "test-mns-topic"
    assert report["submitted"][0]["billed_frames"] == 25 and not report["rejected"]


def test_untagged_gets_the_default_profile_and_none_makes_it_opt_in(app, media, store, clock):
    upload(app, "videos/a.mp4")
    assert animations(media)[0]["Width"] == 480 and animations(media)[0]["Number"] == 60
    opt_in = type(app)(settings=Settings(default_profile="none"), store=store, media=media, clock=clock)
    report = upload(opt_in, "videos/b.mp4")
    assert len(media.requests) == 1 and "opt-in" in report["skipped"][0]["reason"]


@pytest.mark.parametrize("event", ["oss-output-prefix.json", "oss-not-video.json"])
def test_outputs_and_non_videos_send_nothing(app, media, store, event):
    (entry,) = event_json(event)["events"]
    store.add(entry["oss"]["bucket"]["name"], entry["oss"]["object"]["key"], VIDEO)
    report = index.on_upload(event_bytes(event), None, app=app)
    assert media.requests == [] and report["skipped"]


def test_anim_off_sends_nothing(app, media):
    report = upload(app, "videos/a.mp4", tags={"anim": "off", "anim-fps": "10"})
    assert media.requests == [] and report["skipped"][0]["reason"] == "anim=off"


def test_hostile_rule_sends_nothing_and_is_recorded(app, media, store):
    report = upload(app, "videos/a.mp4", tags={"anim-name": "../../x"})
    assert media.requests == []
    assert "anim-name='../../x'" in report["rejected"][0]["reason"]
    record = json.loads(store.objects[("test-bucket", "animated/videos/a.mp4.rejected.json")])
    assert record["status"] == "Rejected" and "anim-name" in record["message"]


def test_duplicate_delivery_submits_once(app, media):
    upload(app, "videos/a.mp4", tags=WINEMAKING_TAGS)
    report = index.on_upload(oss_event("videos/a.mp4"), None, app=app)
    assert len(media.requests) == 1 and len(report["duplicates"]) == 1


def test_a_new_version_is_a_new_task(app, media):
    upload(app, "videos/a.mp4")
    upload(app, "videos/a.mp4", data=VIDEO + b"v2")
    assert len(media.requests) == 2


@pytest.mark.parametrize("order", ["video-first", "sidecar-first"])
def test_sidecar_either_order_gives_the_same_clips(app, media, store, order):
    sidecar = json.dumps({"animations": [{"name": "a", "duration": 2, "fps": 10},
                                         {"name": "b", "start": 3, "duration": 1, "format": "gif"}]}).encode()
    video, side = ("videos/m.mp4", {"anim": "sidecar"}), ("videos/m.mp4.anim.json", None)
    steps = [video, side] if order == "video-first" else [side, video]
    for key, tags in steps:
        store.add("test-bucket", key, sidecar if key.endswith(".json") else VIDEO, tags)
        index.on_upload(oss_event(key), None, app=app)
    outputs = sorted(a["URI"] for a in animations(media))
    assert outputs == ["oss://test-bucket/animated/videos/m-a.webp", "oss://test-bucket/animated/videos/m-b.gif"]
    index.on_upload(oss_event("videos/m.mp4", "videos/m.mp4.anim.json"), None, app=app)  # redelivery
    assert len(media.requests) == 2


def test_sidecar_beats_tags_and_bad_sidecar_is_rejected(app, media, store):
    store.add("test-bucket", "videos/s.mp4.anim.json", b'{"animations": [{"fps": 5, "duration": 1, "zoom": 2}]}')
    report = upload(app, "videos/s.mp4", tags=WINEMAKING_TAGS)
    assert media.requests == []
    assert "sidecar oss://test-bucket/videos/s.mp4.anim.json: animations[0].zoom" in report["rejected"][0]["reason"]


def test_oversized_sidecar_is_a_rule_error(app, media, store):
    store.add("test-bucket", "videos/s.mp4.anim.json", b" " * 20000)
    report = upload(app, "videos/s.mp4")
    assert media.requests == [] and "at most 16384 bytes" in report["rejected"][0]["reason"]


def test_url_encoded_keys_are_decoded_once(app, media, store):
    key = "videos/My Holiday/Überfahrt +1.mp4"
    store.add("test-bucket", key, VIDEO)
    index.on_upload(oss_event("videos/My%20Holiday/%C3%9Cberfahrt%20%2B1.mp4"), None, app=app)
    assert media.requests[0].source.uri == f"oss://test-bucket/{key}"
    store.add("test-bucket", "videos/100%25 + more.mp4", VIDEO)  # a plain key that looks encoded
    index.on_upload(oss_event("videos/100%25 + more.mp4"), None, app=app)
    assert media.requests[1].source.uri == "oss://test-bucket/videos/100%25 + more.mp4"


def test_a_form_encoded_key_is_found(app, media, store):
    """Regression: a key delivered form-encoded ('+' for a space, as S3 and OBS encode) was not found."""
    key = "videos/My Holiday/clip 1.mp4"
    store.add("test-bucket", key, VIDEO)
    report = index.on_upload(oss_event("videos/My+Holiday/clip+1.mp4"), None, app=app)
    assert media.requests[0].source.uri == f"oss://test-bucket/{key}" and report["submitted"]


def test_non_completing_events_are_ignored(app, media, store):
    store.add("test-bucket", "videos/a.mp4", VIDEO)
    for name in ("ObjectCreated:AppendObject", "ObjectCreated:PutSymlink", "ObjectRemoved:DeleteObject"):
        report = index.on_upload(oss_event("videos/a.mp4", name=name), None, app=app)
        assert name in report["skipped"][0]["reason"]
    assert media.requests == []


def test_batch_one_bad_object_does_not_stop_the_others(app, media, store):
    store.add("test-bucket", "videos/good.mp4", VIDEO)
    store.add("test-bucket", "videos/bad.mp4", VIDEO, {"anim-fps": "1000"})
    store.add("test-bucket", "videos/good2.mp4", VIDEO)
    report = index.on_upload(oss_event("videos/good.mp4", "videos/bad.mp4", "videos/good2.mp4"), None, app=app)
    assert len(media.requests) == 2 and len(report["rejected"]) == 1


def test_retryable_failure_is_raised_after_the_others_and_the_retry_submits(app, store, settings, clock):
    from autoanim.adapters.memory import RecordingMediaService
    from autoanim.service import App

    def throttle_a(request):
        if "a.mp4" in request.source.uri and not flaky.requests_seen:
            flaky.requests_seen = True
            return ServiceError("Throttling.User", retryable=True, code="Throttling.User")
        return None

    flaky = RecordingMediaService(fail=throttle_a)
    flaky.requests_seen = False
    app = App(settings=settings, store=store, media=flaky, clock=clock)
    for key in ("videos/a.mp4", "videos/b.mp4"):
        store.add("test-bucket", key, VIDEO)
    with pytest.raises(RetryLater) as err:
        index.on_upload(oss_event("videos/a.mp4", "videos/b.mp4"), None, app=app)
    assert err.value.retryable and len(flaky.requests) == 1  # b went through
    report = index.on_upload(oss_event("videos/a.mp4", "videos/b.mp4"), None, app=app)  # FC's retry
    assert len(flaky.requests) == 2 and len(report["submitted"]) == 1 and len(report["duplicates"]) == 1


def test_permanent_submit_failure_is_recorded_not_retried(app, store, settings, clock):
    from autoanim.adapters.memory import RecordingMediaService
    from autoanim.service import App

    media = RecordingMediaService(fail=lambda r: ServiceError("bad project", retryable=False, code="ResourceNotFound"))
    app = App(settings=settings, store=store, media=media, clock=clock)
    report = upload(app, "videos/a.mp4")
    assert report["rejected"][0]["code"] == "ResourceNotFound"
    again = index.on_upload(oss_event("videos/a.mp4"), None, app=app)
    assert again["duplicates"] and media.requests == []


def test_a_crashed_claim_is_taken_over_after_the_timeout(app, media, store, clock):
    store.add("test-bucket", "videos/a.mp4", VIDEO)

    def crash(request):  # the first invocation dies holding the lease, before IMM saw anything
        raise SystemExit("killed")

    media.fail = crash
    with pytest.raises(SystemExit):
        index.on_upload(oss_event("videos/a.mp4"), None, app=app)
    media.fail = None
    with pytest.raises(RetryLater, match="held by another invocation"):
        index.on_upload(oss_event("videos/a.mp4"), None, app=app)
    assert media.requests == []
    clock.now += app.settings.claim_timeout + 1
    report = index.on_upload(oss_event("videos/a.mp4"), None, app=app)
    assert len(media.requests) == 1 and report["submitted"][0]["how"] == "submitted"
    clock.now += app.settings.claim_timeout + 1
    assert index.on_upload(oss_event("videos/a.mp4"), None, app=app)["duplicates"]


def test_malformed_event_is_rejected_not_raised(app, media):
    report = index.on_upload(b"{not json", None, app=app)
    assert "not JSON" in report["rejected"][0]["reason"] and media.requests == []


def test_an_unexpected_error_in_one_entry_is_retried_after_the_others(app, media, store):
    store.add("test-bucket", "videos/a.mp4", VIDEO)
    store.add("test-bucket", "videos/b.mp4", VIDEO)
    real_tags = store.get_tags

    def broken(bucket, key):
        if key == "videos/a.mp4":
            raise KeyError("a bug")
        return real_tags(bucket, key)

    store.get_tags = broken
    with pytest.raises(RetryLater) as err:
        index.on_upload(oss_event("videos/a.mp4", "videos/b.mp4"), None, app=app)
    assert err.value.report.retry[0].code == "Unexpected" and len(media.requests) == 1


def test_a_clip_refused_for_good_does_not_stop_the_videos_other_clips(store, settings, clock):
    from autoanim.adapters.memory import RecordingMediaService
    from autoanim.service import App

    refuse_b = RecordingMediaService(fail=lambda r: ServiceError("bad size", retryable=False, code="InvalidArgument")
                                     if r.animation.uri.endswith("-b.webp") else None)
    app = App(settings=settings, store=store, media=refuse_b, clock=clock)
    sidecar = {"animations": [{"name": n, "duration": 1, "fps": 5} for n in ("a", "b", "c")]}
    store.add("test-bucket", "videos/m.mp4.anim.json", json.dumps(sidecar).encode())
    report = upload(app, "videos/m.mp4")
    assert [r.animation.uri.rsplit("/", 1)[1] for r in refuse_b.requests] == ["m-a.webp", "m-c.webp"]
    assert report["rejected"][0]["output"].endswith("m-b.webp")
    manifest = json.loads(store.objects[("test-bucket", "animated/videos/m-b.webp.manifest.json")])
    assert (manifest["status"], manifest["code"]) == ("Failed", "InvalidArgument")


def test_a_bad_tag_does_not_block_a_valid_sidecar(app, media, store):
    store.add("test-bucket", "videos/s.mp4.anim.json", b'{"animations": [{"fps": 5, "duration": 1}]}')
    report = upload(app, "videos/s.mp4", tags={"anim-fps": "1000"})
    assert len(media.requests) == 1 and not report["rejected"]
