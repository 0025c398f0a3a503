"""Fuzz: any event, tags, sidecar or profile gives valid bounded requests or a typed refusal.

Driven through ``index.on_upload`` / ``index.on_task_result`` on the in-memory
fakes, and through ``rules`` + ``planner`` directly. What must hold, whatever
the input:

- every submitted request is within the limits (Number, FrameRate, Interval,
  sides), its output is an animation under ``OUTPUT_PREFIX`` (never a video
  extension, never a trigger match), its ``UserData`` fits in 2048 bytes and
  its wire form is strict JSON (no NaN/Infinity);
- anything else is a skip or a rejection that carries a reason, and an
  object whose rule was rejected has no request at all (nothing billed);
- no other exception escapes (a result handler may raise only a retryable
  ``ServiceError``).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import index
from autoanim import objects, planner, rules
from autoanim.adapters.memory import MemoryObjectStore, RecordingMediaService
from autoanim.config import Limits, Settings
from autoanim.convert_request import ConvertRequest
from autoanim.errors import AutoanimError, RuleError, ServiceError
from autoanim.objects import MAX_KEY_BYTES
from autoanim.service import App
from tests.conftest import Clock

BUCKET = "fuzz-bucket"
SETTINGS = Settings.from_env({"AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "fuzz", "IMM_NOTIFY_TOPIC": "fuzz-topic"})
VIDEO = b"\x00\x00\x00\x18ftypmp42 fuzz video"
REPORT_KEYS = {"submitted", "duplicates", "skipped", "rejected", "retry"}
FUZZ = hsettings(max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck))

# --- strategies ------------------------------------------------------------------------------

EVENT_NAMES = ["ObjectCreated:PutObject", "ObjectCreated:PostObject", "ObjectCreated:CopyObject",
               "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:AppendObject", "ObjectCreated:PutSymlink",
               "ObjectRemoved:DeleteObject", "ObjectCreated:*", ""]
EXTENSIONS = [".mp4", ".MOV", ".mkv", ".ts", ".gif", ".webp", ".txt", "", ".mp4.anim.json", ".anim.json",
              ".webp.manifest.json", ".mp4.rejected.json"]
FOLDERS = ["", "videos/", "animated/", "animated/videos/", "a b/", "x+y/", "100%/", "Über/", "视频/", "./", "../",
           "a/../", "a//b/", ".autoanim/claims/"]
TAG_NAMES = ["anim", "anim-profile", "anim-format", "anim-start", "anim-duration", "anim-fps", "anim-interval",
             "anim-frames", "anim-width", "anim-height", "anim-scale", "anim-name", "anim-zoom", "anim-Format",
             "anim-FrameRate", "anim-", "team", "Anim-fps", "anim fps"]
NASTY_VALUES = ["on", "off", "sidecar", "ON", "webp", "gif", "gif+webp", "GIF", "nan", "NaN", "inf", "-inf",
                "Infinity", "1e309", "1e-320", "1e-9", "0", "-1", "0.5", "0.999999", "1", "1.5", "50", "50.1",
                "300", "301", "4096", "4097", "100000", "1_0", "0x10", "5.5", "00:05", "01:00:00.5", "99:99",
                "24:00:01", "../../etc", "/etc/passwd", "a/b", "..", "highlight", "preview", "sticker",
                "timelapse", "nope", "none", "fit", "crop", "stretch", "fill", "zoom", "", " ", "x" * 300]
RULE_FIELDS = ["profile", "name", "format", "start", "duration", "fps", "interval", "frames", "width", "height",
               "scale", "Format", "StartTime", "Duration", "FrameRate", "Interval", "Number", "Width", "Height",
               "ScaleType", "zoom", "anim-fps", ""]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(),
                         st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
key_chars = st.characters(blacklist_categories=("Cs",))


@st.composite
def object_keys(draw) -> str:
    """Plain keys: spaces, ``+``, ``%``, non-ASCII, traversal, very long (to and over 1023 bytes)."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return "videos/" + "k" * draw(st.integers(1000, 1030)) + draw(st.sampled_from(EXTENSIONS))
    if kind == 1:
        return draw(st.text(key_chars, max_size=30))
    stem = draw(st.text(st.sampled_from(list("abz09 +%-_.~é中😀")), min_size=1, max_size=16))
    return draw(st.sampled_from(FOLDERS)) + stem + draw(st.sampled_from(EXTENSIONS))


tag_values = st.one_of(st.sampled_from(NASTY_VALUES), st.text(max_size=12), st.floats().map(repr),
                       st.integers(-10**6, 10**6).map(str))
tag_dicts = st.dictionaries(st.one_of(st.sampled_from(TAG_NAMES), st.text(max_size=8), st.just("k" * 129)),
                            tag_values, max_size=12)
rule_values = st.one_of(st.sampled_from(NASTY_VALUES), st.floats(), st.integers(-10**6, 10**6), json_values)
animations = st.dictionaries(st.sampled_from(RULE_FIELDS), rule_values, max_size=6)


@st.composite
def sidecar_bytes(draw) -> bytes:
    """Valid-looking, unknown fields, not JSON, not UTF-8, too large, nested too deep, wrong shapes."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.binary(max_size=64))
    if kind == 1:
        depth = draw(st.integers(5, 5000))
        return ('{"animations": [' + "[" * depth + "]" * depth + "]}").encode()
    if kind == 2:
        return b'{"animations": [{"fps": 10}]}' + b" " * draw(st.integers(16 * 1024 - 40, 17 * 1024))
    if kind == 3:
        return json.dumps(draw(json_values)).encode()
    document = {"animations": draw(st.lists(animations, max_size=12))}
    if kind == 4:
        document.update(draw(st.dictionaries(st.text(max_size=8), json_scalars, max_size=2)))
    return json.dumps(document).encode()  # NaN and Infinity included: Python's json reads them back


@st.composite
def oss_entries(draw, key: str):
    """One ``events[]`` entry naming ``key``; fields missing or of the wrong type now and then."""
    entry = {"eventName": draw(st.sampled_from(EVENT_NAMES)), "eventSource": "acs:oss", "region": "cn-hangzhou",
             "oss": {"bucket": {"name": BUCKET, "arn": f"acs:oss:cn-hangzhou:1:{BUCKET}"},
                     "object": {"key": key, "eTag": "0123456789ABCDEF", "size": 10}}}
    damage = draw(st.integers(0, 9))
    if damage == 0:
        del entry[draw(st.sampled_from(["eventName", "oss"]))]
    elif damage == 1:
        where = draw(st.sampled_from(["bucket", "object"]))
        entry["oss"][where] = draw(json_values)
    elif damage == 2:
        entry["oss"]["object"]["key"] = draw(json_scalars)
    elif damage == 3:
        entry["eventName"] = draw(json_scalars)
    return entry


@st.composite
def uploads(draw):
    """A bucket with some objects (tags, sidecars) and the event bytes that announce them."""
    store = MemoryObjectStore()
    entries = []
    for key in draw(st.lists(object_keys(), min_size=1, max_size=4)):
        if draw(st.booleans()):
            store.add(BUCKET, key, VIDEO, draw(tag_dicts) if draw(st.booleans()) else None)
        if draw(st.booleans()):
            store.add(BUCKET, key + objects.SIDECAR_SUFFIX, draw(sidecar_bytes()))
        delivered = quote(key, safe="/") if draw(st.integers(0, 4)) == 0 else key
        entries.append(draw(oss_entries(delivered)))
    event = {"events": entries}
    if draw(st.integers(0, 9)) == 0:
        event = draw(st.sampled_from([{}, {"events": None}, {"events": {"0": entries}}, [event], {"Events": entries}]))
    return store, json.dumps(event).encode()


fuzz_settings = st.builds(
    lambda frames, fps, side, profile, operator: Settings(
        backend="imm", imm_project="fuzz", imm_notify_topic="fuzz-topic", default_profile=profile,
        limits=Limits(max_frames=frames, max_fps=fps, max_side=side), profiles=operator),
    st.integers(1, 300), st.floats(0.5, 50), st.integers(1, 4096),
    st.sampled_from(["preview", "sticker", "timelapse", "none", "nope", "Bad Name"]),
    st.dictionaries(st.sampled_from(["preview", "clip", "none", "Bad", "x" * 40]), animations, max_size=2),
)

# --- invariants --------------------------------------------------------------------------------


def assert_within_limits(request: ConvertRequest, settings: Settings) -> None:
    limits = settings.limits
    json.dumps(request.wire(), allow_nan=False)  # strict JSON: IMM and the SDK get no NaN/Infinity
    source = request.source
    for seconds in (source.start_time, source.duration):
        assert seconds is None or 0 <= seconds <= rules.MAX_SECONDS
    if request.targets[0].image.animations:
        target = animation = request.animation
        assert 1 <= animation.number <= limits.max_frames
        assert 0 < animation.frame_rate <= limits.max_fps
        assert 0 < animation.interval <= rules.MAX_INTERVAL
        for side in (animation.width, animation.height):
            assert side is None or 0 < side < 1 or (side == int(side) and 1 <= side <= limits.max_side)
    else:  # a start: auto probe's sprite sheet
        target = request.sprite
        assert 1 <= target.number <= limits.max_frames and target.interval > 0
    out_bucket, _, out_key = target.uri.removeprefix("oss://").partition("/")
    assert out_bucket == (settings.output_bucket or BUCKET)
    assert out_key.startswith(settings.output_prefix) and objects.is_ours(out_key, settings.output_prefix)
    assert objects.extension(out_key) == target.format and not objects.is_video_key(out_key)
    assert not any(part in (".", "..") for part in out_key.split("/"))
    assert len(out_key.encode()) <= MAX_KEY_BYTES
    assert request.user_data is not None and len(request.user_data.encode()) <= 2048


def assert_upload_outcome(report: dict, media: RecordingMediaService, settings: Settings) -> None:
    assert set(report) <= REPORT_KEYS
    for entry in report.get("skipped", []) + report.get("rejected", []):
        assert entry["reason"]
    for request in media.requests:
        assert_within_limits(request, settings)
        assert not request.source.uri.startswith(f"oss://{BUCKET}/{settings.output_prefix}")  # no loop
    submitted = {r.source.uri for r in media.requests}
    rejected = {f"oss://{BUCKET}/{e['key']}" for e in report.get("rejected", []) if "key" in e}
    assert not submitted & rejected  # nothing billed for an object whose rule was refused
    assert len(report.get("submitted", [])) == len(media.requests)


def run_upload(store: MemoryObjectStore, event: bytes, settings: Settings = SETTINGS):
    media = RecordingMediaService()
    app = App(settings=settings, store=store, media=media, clock=Clock())
    report = index.on_upload(event, None, app=app)  # memory fakes never fail retryably: nothing may raise
    assert_upload_outcome(report, media, settings)
    return report, media


def plan_or_refuse(specs_of, settings: Settings) -> None:
    """rules + planner directly: a typed ``RuleError`` or tasks within every limit."""
    source = objects.SourceObject(bucket=BUCKET, key="videos/clip.mp4", etag="E")
    try:
        specs = specs_of()
        clips = rules.resolve(specs, origin="fuzz", source="fuzz", settings=settings,
                              base_profile=None if settings.default_profile == "none" else settings.default_profile)
        tasks = planner.plan(source, clips, settings)
    except RuleError as exc:
        assert exc.field and exc.limit and exc.message
        return
    assert len(tasks) <= 2 * settings.limits.max_rules
    for task in tasks:
        assert_within_limits(task.request, settings)
        assert task.billed_frames == task.request.animation.number


# --- on_upload ----------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_any_bytes_are_rejected_or_handled(event):
    _, media = run_upload(MemoryObjectStore(), event)
    assert not media.requests


@FUZZ
@given(uploads())
def test_any_oss_event_gives_bounded_requests_or_reasons(upload):
    store, event = upload
    run_upload(store, event)


@FUZZ
@given(tag_dicts, st.sampled_from(["videos/a.mp4", "a b/+%20 ü.mov", "videos/" + "k" * 1000 + ".mp4"]))
def test_any_tags_give_one_bounded_request_set_or_a_recorded_rejection(tags, key):
    store = MemoryObjectStore()
    store.add(BUCKET, key, VIDEO, tags)
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}).encode()
    report, media = run_upload(store, event)
    outcomes = [name for name in ("submitted", "skipped", "rejected") if report[name]]
    assert outcomes in (["submitted"], ["skipped"], ["rejected"])
    if report["rejected"]:
        assert not media.requests
        assert (BUCKET, f"animated/{key}.rejected.json") in store.objects
    again, _ = run_upload(store, event)  # a redelivery submits nothing new
    assert not again["submitted"] and len(again["duplicates"]) == len(report["submitted"])


@FUZZ
@given(sidecar_bytes(), st.booleans())
def test_any_sidecar_gives_bounded_requests_or_a_rejection(raw, sidecar_event):
    store = MemoryObjectStore()
    store.add(BUCKET, "videos/s.mp4", VIDEO, {"anim": "sidecar"})
    store.add(BUCKET, "videos/s.mp4.anim.json", raw)
    key = "videos/s.mp4.anim.json" if sidecar_event else "videos/s.mp4"
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": key}}}]}).encode()
    report, media = run_upload(store, event)
    if report["rejected"]:
        assert not media.requests and "sidecar" in report["rejected"][0]["reason"]
    else:
        assert report["submitted"] and len(media.requests) <= 2 * SETTINGS.limits.max_rules


@FUZZ
@given(st.one_of(st.sampled_from(["nope", "Preview", "../x", "", "none", "x" * 40, *sorted(rules.BUILTIN_PROFILES)]),
                 st.text(max_size=10)))
def test_unknown_profiles_are_rejected_with_the_known_names(name):
    store = MemoryObjectStore()
    store.add(BUCKET, "videos/p.mp4", VIDEO, {"anim-profile": name})
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": "videos/p.mp4"}}}]})
    report, media = run_upload(store, event.encode())
    if name not in rules.BUILTIN_PROFILES:
        assert not media.requests and "anim-profile" in report["rejected"][0]["reason"]


# --- rules and planner directly ------------------------------------------------------------------


@FUZZ
@given(tag_dicts, fuzz_settings)
def test_tags_plan_or_typed_rule_error(tags, settings):
    def specs():
        parsed = rules.parse_tags(tags, "tags", settings.limits)
        return [parsed.spec] if parsed.spec is not None else [rules.RuleSpec()]

    plan_or_refuse(specs, settings)


@FUZZ
@given(sidecar_bytes(), fuzz_settings)
def test_sidecar_plan_or_typed_rule_error(raw, settings):
    plan_or_refuse(lambda: rules.parse_sidecar(raw, "sidecar", settings.limits), settings)


def test_a_tiny_fps_is_refused_not_sent_as_an_infinite_interval():
    """Found by this fuzz (fixed in 8ed8589): 1/fps was unchecked; 1e-320 gave Interval=inf (not JSON)."""
    store = MemoryObjectStore()
    store.add(BUCKET, "videos/a.mp4", VIDEO, {"anim-fps": "1e-320"})
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": "videos/a.mp4"}}}]})
    report, media = run_upload(store, event.encode())
    assert not media.requests and "anim-fps" in report["rejected"][0]["reason"]


def test_a_derived_interval_stays_within_the_interval_limit():
    """Found by this fuzz (fixed in 8ed8589): anim-fps=0.000001 planned Interval=1000000 s, over MAX_INTERVAL."""
    specs = [rules.RuleSpec.model_validate({"fps": "0.000001", "duration": 5})]
    with pytest.raises(RuleError, match="fps"):
        rules.resolve(specs, origin="tags", source="tags", settings=SETTINGS)


def test_the_default_fps_respects_a_lower_fps_limit():
    """Found by this fuzz (fixed in 8ed8589): no fps nor interval gave 10 fps even over AUTOANIM_MAX_FPS."""
    settings = Settings.from_env({"AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "fuzz", "DEFAULT_PROFILE": "none",
                                  "AUTOANIM_MAX_FPS": "5"})
    store = MemoryObjectStore()
    store.add(BUCKET, "videos/a.mp4", VIDEO, {"anim-duration": "2"})
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": "videos/a.mp4"}}}]})
    run_upload(store, event.encode(), settings)  # asserts FrameRate <= max_fps on whatever was submitted


# --- on_task_result --------------------------------------------------------------------------


STATUSES = ["Succeeded", "Failed", "Running", "", "Unknown"]
CODES = ["", "InternalError", "ServiceUnavailable.Busy", "Throttling", "InvalidArgument", "ResourceNotFound"]


@st.composite
def result_events(draw, user_data: str, task_id: str) -> bytes:
    content = {"ProjectName": "fuzz", "TaskType": "MediaConvert",
               "TaskId": draw(st.sampled_from([task_id, "MediaConvert-other", ""])),
               "Status": draw(st.sampled_from(STATUSES)), "Code": draw(st.sampled_from(CODES)),
               "Message": draw(st.text(max_size=10)),
               "UserData": draw(st.sampled_from([user_data, "", "{}", '{"v":1,"claim":"oss://x"}',
                                                 '{"v":1,"claim":"oss://b/k"}', "not json", "[1]"]))}
    for name in draw(st.lists(st.sampled_from(sorted(content)), max_size=2)):
        content[name] = draw(json_values)
    if draw(st.booleans()):
        content["Targets"] = draw(st.one_of(json_values, st.just([{"Image": {"Animations": [{"URI": "x"}]}}])))
    envelope = {"id": "1", "source": "acs.imm", "type": "imm:Task:MediaConvert", "subject": "s",
                "time": "t", "content": json.dumps(content)}
    shape = draw(st.integers(0, 4))
    if shape == 0:
        return json.dumps(envelope).encode()
    if shape == 1:
        return json.dumps({"TopicName": "fuzz-topic", "Message": json.dumps(envelope)}).encode()
    if shape == 2:
        return json.dumps({"body": json.dumps(envelope), "attrs": {}}).encode()
    if shape == 3:
        import base64

        return json.dumps({"TopicName": "t", "Message": base64.b64encode(json.dumps(envelope).encode()).decode()}
                          ).encode()
    return draw(st.one_of(st.binary(max_size=100), json_values.map(lambda v: json.dumps(v).encode())))


def _submitted_app(fail_resubmit: bool):
    store = MemoryObjectStore()
    media = RecordingMediaService()
    app = App(settings=SETTINGS, store=store, media=media, clock=Clock())
    store.add(BUCKET, "videos/r.mp4", VIDEO, {"anim-duration": "2", "anim-fps": "5"})
    event = json.dumps({"events": [{"eventName": "ObjectCreated:PutObject",
                                    "oss": {"bucket": {"name": BUCKET}, "object": {"key": "videos/r.mp4"}}}]})
    (task,) = index.on_upload(event.encode(), None, app=app)["submitted"]
    store.put(BUCKET, media.requests[0].animation.uri.split("/", 3)[3], b"RIFF....WEBP")
    if fail_resubmit:
        media.fail = lambda request: ServiceError("IMM throttled", retryable=True, code="Throttling")
    return app, media, media.requests[0].user_data, task["task_id"]


@FUZZ
@given(st.data(), st.booleans())
def test_any_result_notification_is_recorded_ignored_or_retryable(data, fail_resubmit):
    app, media, user_data, task_id = _submitted_app(fail_resubmit)
    event = data.draw(result_events(user_data, task_id))
    for _ in range(2):  # a duplicate delivery of the same notification
        try:
            outcome = index.on_task_result(event, None, app=app)
        except AutoanimError as exc:
            assert isinstance(exc, ServiceError) and exc.retryable, exc
        else:
            assert isinstance(outcome, dict) and outcome["event"] in {"recorded", "resubmitted", "duplicate", "stale", "unknown", "running", "rejected"}
    assert len(media.requests) <= 1 + SETTINGS.max_resubmits


@pytest.mark.parametrize("event", [
    b"[" * 100_000,
    json.dumps({"TopicName": "t", "Message": '{"content": ' + "[" * 100_000 + "}"}).encode(),
    json.dumps({"id": "1", "content": "[" * 100_000}).encode(),
])
def test_deeply_nested_result_json_is_rejected_not_a_crash(event):
    """Found by this fuzz (fixed in 8ed8589): deep nesting raised RecursionError out of parse_task_result."""
    outcome = index.on_task_result(event, None, app=_submitted_app(False)[0])
    assert outcome["event"] == "rejected"


def test_a_malformed_targets_list_in_a_real_result_is_recorded_not_a_crash():
    """Found by this fuzz (fixed in 8ed8589): animations() assumed Targets[].Image is an object."""
    app, _, user_data, task_id = _submitted_app(False)
    content = {"TaskId": task_id, "Status": "Succeeded", "UserData": user_data, "Targets": [{"Image": "x"}]}
    outcome = index.on_task_result(json.dumps({"content": json.dumps(content)}).encode(), None, app=app)
    assert outcome["event"] == "recorded"


def test_a_profile_field_with_an_empty_name_is_refused_with_a_named_field():
    """Found by this fuzz: a profile field named "" gave a RuleError whose field was empty."""
    settings = SETTINGS.model_copy(update={"profiles": {"preview": {"": "on"}}})
    with pytest.raises(RuleError, match="unknown field") as caught:
        rules.resolve([rules.RuleSpec()], origin="tags", source="tags", settings=settings, base_profile="preview")
    assert caught.value.field == '""' and caught.value.limit
