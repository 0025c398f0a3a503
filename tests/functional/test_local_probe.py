"""The start: auto probe on the local backend, with a fake engine: the media service runs Sprites targets,
the start picker scores the sheet it wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoanim import objects, planner, probe, rules
from autoanim.activity import PARAMS, make_sheet
from autoanim.adapters.local_media import LocalMediaService
from autoanim.adapters.local_probe import LocalStartPicker
from autoanim.adapters.local_store import LocalObjectStore
from autoanim.errors import MediaError
from tests.functional.test_local_media import Recorder, parse
from tests.unit.test_activity import clip

SOURCE = objects.SourceObject(bucket="videos", key="in/clip.mp4", etag="E")


@dataclass(frozen=True)
class Sheet:
    tiles: int
    width: int
    height: int
    bytes: int


class FakeSheets:
    """Same signature as ``engine.probe.sprite_sheet``: lays out tiles made here; records its calls."""

    def __init__(self, segments, fail: Exception | None = None):
        self.tiles, _ = clip(segments)
        self.fail = fail
        self.calls = []

    def __call__(self, src, out, sprite, *, start=None, duration=None, timeout=None):
        self.calls.append({"src": Path(src), "sprite": sprite, "start": start, "duration": duration})
        if self.fail is not None:
            raise self.fail
        tiles = self.tiles[: sprite.number]
        data = make_sheet(tiles, columns=sprite.tile_width, fmt=sprite.format)
        Path(out).write_bytes(data)
        return Sheet(len(tiles), sprite.tile_width * PARAMS.tile_width, 0, len(data))


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "buckets")
    store.put("videos", "in/clip.mp4", b"not really a video")
    return store


def auto_rule(settings) -> rules.Rule:
    spec = rules.RuleSpec.model_validate({"start": "auto", "duration": 3, "fps": 10})
    (rule,) = rules.resolve([spec], origin="tags", source="tags", settings=settings)
    return rule


def test_the_local_media_service_runs_a_probe_request_like_imm(store, settings):
    planned = probe.plan_probe(SOURCE, auto_rule(settings), settings)
    sheets, notify = FakeSheets([("still", 5), ("move", 5), ("still", 5)]), Recorder()
    with LocalMediaService(store, notify=notify, sheet=sheets) as media:
        media.submit(planned.request)
    (call,) = sheets.calls
    assert call["duration"] == planned.span and call["sprite"] == planned.sprite
    _, _, content = parse(notify.events[0])
    assert content["Status"] == "Succeeded"
    assert planner.TaskUserData.parse(content["UserData"]).attempt == planner.PROBE
    (target,) = content["Targets"]
    (sheet,) = target["Image"]["Sprites"]
    assert sheet["URI"] == planned.sheet_uri and sheet["Tiles"] == 30 and target["Image"]["Animations"] == []
    data = store.read(planned.sheet_bucket, planned.sheet_key, PARAMS.max_sheet_bytes)
    assert 5 <= probe.pick_start(data, planned).start <= 7  # what the result function will do with it


def test_a_probe_that_cannot_read_the_video_fails_and_leaves_no_sheet(store, settings):
    planned = probe.plan_probe(SOURCE, auto_rule(settings), settings)
    notify = Recorder()
    with LocalMediaService(store, notify=notify, sheet=FakeSheets([], fail=MediaError("corrupt video"))) as media:
        media.submit(planned.request)
    _, _, content = parse(notify.events[0])
    assert (content["Status"], content["Code"]) == ("Failed", "InvalidMedia")
    assert content["Targets"][0]["Image"]["Sprites"] == [{"URI": planned.sheet_uri}]
    assert not store.exists(planned.sheet_bucket, planned.sheet_key)


def test_the_start_picker_scores_the_sheet_it_keeps_in_the_bucket(store, settings):
    sheets = FakeSheets([("black", 2), ("still", 6), ("move", 6), ("still", 6)])
    picker = LocalStartPicker(store, settings, render=sheets)
    rule = picker.choose(SOURCE, auto_rule(settings))
    assert 8 <= rule.auto.start <= 11 and rule.start_time == rule.auto.start and rule.auto.tiles == 40
    assert rule.auto.sheet.endswith(".jpg") and any(n.startswith("start auto: ") for n in rule.notes)
    (call,) = sheets.calls
    assert call["src"] == store.path("videos", "in/clip.mp4")
    key = rule.auto.sheet.split("/", 3)[3]
    assert key.startswith(settings.output_prefix + probe.PROBES_FOLDER) and store.exists("videos", key)
    (task,) = planner.plan(SOURCE, [rule], settings)
    assert task.request.source.start_time == rule.auto.start
    assert json.loads(task.request.user_data)["claim"].endswith(task.claim_key)
