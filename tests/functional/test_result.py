"""on_task_result on in-memory fakes: manifests, failures, bounded resubmits, duplicates, unknowns."""

from __future__ import annotations

import json

import pytest

import index
from autoanim.claims import ClaimBusy
from autoanim.config import Settings
from autoanim.errors import ServiceError
from autoanim.service import App
from tests.conftest import event_json
from tests.functional.test_upload import VIDEO, oss_event, upload

SHAPES = ["mns-imm-succeeded.json", "mns-imm-succeeded-base64.json", "mns-imm-succeeded-attrs.json",
          "mns-imm-stream.json", "mns-imm-stream-raw.json"]
KEY = "video-demo/Winemaking.mov"
OUT = "animated/video-demo/Winemaking.webp"


def result_event(name: str, request, task_id: str, **content_changes) -> bytes:
    """The events/ file ``name`` re-aimed at a task this test submitted (shape kept as is)."""
    import base64
    import hashlib

    event = event_json(name)

    def fix(envelope: dict) -> dict:
        content = json.loads(envelope["content"])
        content.update(TaskId=task_id, UserData=request.user_data, **content_changes)
        return {**envelope, "content": json.dumps(content)}

    if "Message" in event:
        body = event["Message"]
        encoded = not body.lstrip().startswith("{")
        envelope = fix(json.loads(base64.b64decode(body) if encoded else body))
        text = json.dumps(envelope)
        event["Message"] = base64.b64encode(text.encode()).decode() if encoded else text
        event["MessageMD5"] = hashlib.md5(event["Message"].encode()).hexdigest().upper()
    elif "body" in event:
        event["body"] = json.dumps(fix(json.loads(event["body"])))
    else:
        event = fix(event)
    return json.dumps(event).encode()


@pytest.fixture
def submitted(app, media, store):
    store.add("test-bucket", KEY, VIDEO, {"anim-duration": "25", "anim-start": "5", "anim-fps": "15",
                                          "anim-interval": "1", "team": "wine"})
    report = upload(app, KEY, tags=store.tags[("test-bucket", KEY)])
    return media.requests[0], report["submitted"][0]["task_id"]


def manifest(store):
    return json.loads(store.objects[("test-bucket", OUT + ".manifest.json")])


@pytest.mark.parametrize("shape", SHAPES)
def test_success_writes_a_manifest_beside_the_output(app, store, submitted, shape):
    request, task_id = submitted
    store.put("test-bucket", OUT, b"RIFF....WEBP")
    outcome = index.on_task_result(result_event(shape, request, task_id), None, app=app)
    assert outcome["event"] == "recorded"
    m = manifest(store)
    assert m["status"] == "Succeeded" and m["task_id"] == task_id
    assert m["source"] == {"uri": f"oss://test-bucket/{KEY}", "etag": store.head("test-bucket", KEY).etag}
    assert m["output"]["uri"] == f"oss://test-bucket/{OUT}" and m["output"]["bytes"] == 12
    assert m["billed_frames_estimate"] == 25 and m["rule"]["duration"] == 25
    assert m["timings"]["task_end"] and m["request"] == request.wire()


def test_duplicate_notification_changes_nothing(app, store, submitted):
    request, task_id = submitted
    store.put("test-bucket", OUT, b"x")
    event = result_event("mns-imm-succeeded.json", request, task_id)
    index.on_task_result(event, None, app=app)
    before = dict(store.objects)
    outcome = index.on_task_result(event, None, app=app)
    assert outcome["event"] == "duplicate" and store.objects == before


def test_failed_task_gets_a_manifest_that_says_why(app, store, media, submitted):
    request, task_id = submitted
    event = result_event("mns-imm-failed.json", request, task_id)
    outcome = index.on_task_result(event, None, app=app)
    m = manifest(store)
    assert m["status"] == "Failed" and m["code"] == outcome["code"] and m["message"]
    assert m["output"]["bytes"] is None and len(media.requests) == 1


def test_success_without_the_output_is_recorded_as_failed(app, store, submitted):
    request, task_id = submitted
    index.on_task_result(result_event("mns-imm-succeeded.json", request, task_id), None, app=app)
    assert manifest(store)["status"] == "Failed" and manifest(store)["code"] == "OutputMissing"


def test_retryable_failure_is_resubmitted_a_bounded_number_of_times(app, store, media, submitted):
    request, task_id = submitted
    same_work = {"user_data", "tags"}
    for attempt in range(app.settings.max_resubmits):
        current = media.requests[-1]
        outcome = index.on_task_result(result_event("mns-imm-failed-retryable.json", current, task_id), None, app=app)
        assert outcome["event"] == "resubmitted"
        task_id = outcome["new_task_id"]
        resent = media.requests[-1]
        assert resent.model_dump(exclude=same_work) == request.model_dump(exclude=same_work)
        assert json.loads(resent.user_data)["attempt"] == int(resent.tags["autoanim-attempt"]) == attempt + 1
    # A second task for an attempt (not ours) is stale; the last failure is recorded.
    last = media.requests[-1]
    stale = index.on_task_result(result_event("mns-imm-succeeded.json", last, "MediaConvert-old"), None, app=app)
    assert stale["event"] == "stale"
    index.on_task_result(result_event("mns-imm-failed-retryable.json", last, task_id), None, app=app)
    assert len(media.requests) == 1 + app.settings.max_resubmits
    m = manifest(store)
    assert m["status"] == "Failed" and len(m["task_ids"]) == 1 + app.settings.max_resubmits


def test_unknown_notifications_change_nothing(app, store):
    event = event_json("mns-imm-succeeded.json")
    before = dict(store.objects)
    outcome = index.on_task_result(json.dumps(event).encode(), None, app=app)
    assert outcome["event"] == "unknown" and store.objects == before
    other = json.loads(event["Message"])
    other["content"] = json.dumps({**json.loads(other["content"]), "UserData": "from someone else"})
    outcome = index.on_task_result(json.dumps({**event, "Message": json.dumps(other)}).encode(), None, app=app)
    assert outcome["event"] == "unknown"


def test_not_an_imm_message_is_rejected(app):
    outcome = index.on_task_result(b'{"TopicName": "t", "Message": "hello topic"}', None, app=app)
    assert outcome["event"] == "rejected"


def test_status_tag_is_merged_within_the_limit(store, media, clock, submitted):
    request, task_id = submitted
    tagging = App(settings=Settings(status_tag=True, imm_project="p"), store=store, media=media, clock=clock)
    store.put("test-bucket", OUT, b"x")
    index.on_task_result(result_event("mns-imm-succeeded.json", request, task_id), None, app=tagging)
    tags = store.tags[("test-bucket", KEY)]
    assert tags["autoanim-status"] == "succeeded" and tags["team"] == "wine" and tags["anim-fps"] == "15"


def test_status_tag_skipped_when_the_object_has_ten_tags(store, media, clock, app, submitted):
    request, task_id = submitted
    full = {f"t{i}": "v" for i in range(10)}
    store.tags[("test-bucket", KEY)] = dict(full)
    tagging = App(settings=Settings(status_tag=True, imm_project="p"), store=store, media=media, clock=clock)
    index.on_task_result(result_event("mns-imm-failed.json", request, task_id), None, app=tagging)
    assert store.tags[("test-bucket", KEY)] == full and manifest(store)["status"] == "Failed"


def test_a_result_for_a_claim_whose_submit_was_never_recorded_is_adopted(app, store, media):
    """IMM accepted the task, then the invocation died before recording it on the claim."""
    task = {}
    real_submit = media.submit

    def submit_then_crash(request):
        task["id"] = real_submit(request)
        raise SystemExit("invocation killed after IMM accepted the task")

    media.submit = submit_then_crash
    with pytest.raises(SystemExit):
        upload(app, KEY)
    media.submit = real_submit
    (request,) = media.requests
    store.put("test-bucket", "animated/video-demo/Winemaking.webp", b"x")
    outcome = index.on_task_result(result_event("mns-imm-succeeded.json", request, task["id"]), None, app=app)
    assert outcome["event"] == "recorded" and manifest(store)["task_id"] == task["id"]
    assert manifest(store)["attempts"][0]["how"] == "adopted"
    app.clock.now += app.settings.claim_timeout + 1  # the FC retry after the crash, past the lease
    report = index.on_upload(oss_event(KEY), None, app=app)
    assert report["duplicates"] and len(media.requests) == 1
    claims = app.claims
    claim = claims.load(*json.loads(request.user_data)["claim"][6:].split("/", 1))
    assert claims.outcome(claim).status == "Succeeded"


def test_a_resubmit_refused_for_good_is_recorded_not_raised(app, store, media, submitted):
    request, task_id = submitted
    media.fail = lambda r: ServiceError("refused", retryable=False, code="InvalidArgument")
    outcome = index.on_task_result(result_event("mns-imm-failed-retryable.json", request, task_id), None, app=app)
    assert outcome["event"] == "recorded" and manifest(store)["code"] == "InvalidArgument"


def test_two_copies_of_a_failure_resubmit_once(app, store, media, submitted):
    request, task_id = submitted
    event = result_event("mns-imm-failed-retryable.json", request, task_id)
    outcomes = []

    def deliver_the_copy_mid_flight(request):
        if not outcomes:  # the second copy arrives while the first holds the resubmit's lease
            with pytest.raises(ClaimBusy):
                index.on_task_result(event, None, app=app)
            outcomes.append("busy")

    media.fail = deliver_the_copy_mid_flight
    assert index.on_task_result(event, None, app=app)["event"] == "resubmitted"
    assert index.on_task_result(event, None, app=app)["event"] == "duplicate"  # the copy, redelivered
    assert outcomes == ["busy"] and len(media.requests) == 2  # the upload's task and one resubmit
