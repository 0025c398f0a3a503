"""Event parsing on every file in events/ and on the fc3 component's own templates."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from autoanim.errors import EventError
from autoanim.events import COMPLETE_OBJECT_EVENTS, parse_oss_event, parse_task_result
from tests.conftest import EVENTS, ROOT, event_bytes

TEMPLATES = ROOT.parent / "shared" / "reference" / "fc3-event-templates"


def test_every_events_file_parses():
    for path in sorted(EVENTS.glob("*.json")):
        raw = path.read_bytes()
        if path.name.startswith("oss-"):
            batch = parse_oss_event(raw)
            assert batch.records and not batch.errors, path.name
        else:
            result = parse_task_result(raw)
            assert result.task_id.startswith("MediaConvert-"), path.name
            assert json.loads(result.user_data)["claim"].startswith("oss://"), path.name


def test_keys_are_kept_as_delivered():
    (_, record), = parse_oss_event(event_bytes("oss-multipart-unicode.json")).records
    assert record.key == "videos/My Holiday 2026/Überfahrt +1 日本.mp4"
    assert record.event_name == "ObjectCreated:CompleteMultipartUpload" and record.creates_object


def test_batch_keeps_every_entry():
    batch = parse_oss_event(event_bytes("oss-batch.json"))
    assert len(batch.records) == 5
    kinds = [r.event_name for _, r in batch.records]
    assert sum(k in COMPLETE_OBJECT_EVENTS for k in kinds) == 4


def test_bad_entries_are_reported_not_dropped():
    good = json.loads(event_bytes("oss-put-tagged.json"))["events"][0]
    raw = json.dumps({"events": [good, {"eventName": "ObjectCreated:PutObject"}, good]}).encode()
    batch = parse_oss_event(raw)
    assert [i for i, _ in batch.records] == [0, 2]
    (index, reason), = batch.errors
    assert index == 1 and "oss" in reason


@pytest.mark.parametrize("raw,match", [
    (b"", "not JSON"), (b"\xff", "not UTF-8"), (b"[]", "no 'events' list"), (b'{"events": 3}', "no 'events'"),
    (b"{" * 5000, "not JSON"),
])
def test_malformed_oss_events(raw, match):
    with pytest.raises(EventError, match=match):
        parse_oss_event(raw)


@pytest.mark.skipif(not TEMPLATES.is_dir(), reason="../shared/reference is not beside this clone")
def test_fc3_templates():
    batch = parse_oss_event((TEMPLATES / "oss.json").read_bytes())
    assert batch.records[0][1].key == "image/a.jpg"
    for name in ("mns-stream.json", "mns-with-MessageAttributes.json", "mns-without-MessageAttributes.json"):
        with pytest.raises(EventError, match="neither JSON nor Base64|not an IMM"):
            parse_task_result((TEMPLATES / name).read_bytes())


def test_result_shapes_agree():
    shapes = ["mns-imm-succeeded.json", "mns-imm-succeeded-base64.json", "mns-imm-succeeded-attrs.json",
              "mns-imm-stream.json", "mns-imm-stream-raw.json"]
    parsed = [parse_task_result(event_bytes(n)) for n in shapes]
    assert all(p.status == "Succeeded" for p in parsed)
    assert len({(p.task_id, p.user_data) for p in parsed}) == 1
    assert parsed[0].animations()[0]["URI"] == "oss://test-bucket/animated/video-demo/Winemaking.webp"
    failed = parse_task_result(event_bytes("mns-imm-failed.json"))
    assert failed.status == "Failed" and failed.code and failed.message


def test_stream_body_in_base64():
    envelope = json.loads(event_bytes("mns-imm-stream-raw.json"))
    body = base64.b64encode(json.dumps(envelope).encode()).decode()
    result = parse_task_result(json.dumps({"body": body, "attrs": {}}).encode())
    assert result.status == "Succeeded"


@pytest.mark.parametrize("raw", [b"hello topic", b'{"Message": "x", "TopicName": "t"}', b"{}",
                                 b'{"content": "not json"}', b'{"content": "{}"}', b"\x00\x01"])
def test_non_imm_messages_are_rejected_clearly(raw):
    with pytest.raises(EventError):
        parse_task_result(raw)


def test_a_content_that_is_not_a_string_is_named_but_not_copied_whole_into_the_error():
    with pytest.raises(EventError, match="content=.* must be the task JSON as a string") as caught:
        parse_task_result(json.dumps({"content": {"TaskId": "t", "padding": "x" * 100_000}}).encode())
    assert len(caught.value.message) < 200


@hsettings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=3) | st.dictionaries(
                                  st.sampled_from(["events", "oss", "eventName", "key", "bucket", "object", "name",
                                                   "Message", "TopicName", "content", "body", "attrs"]), c, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_any_bytes_give_a_parse_or_an_event_error(raw):
    for parse in (parse_oss_event, parse_task_result):
        try:
            parse(raw)
        except EventError:
            pass
