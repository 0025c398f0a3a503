"""start: auto in the rule language, the probe request as a value (golden), and the pick it leads to."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import index
from autoanim import objects, planner, probe, rules
from autoanim.activity import PARAMS, make_sheet
from autoanim.config import Settings
from autoanim.errors import RuleError
from tests.conftest import EVENTS
from tests.unit.test_activity import clip
from tests.unit.test_planner import run_plan

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SOURCE = objects.SourceObject(bucket="test-bucket", key="videos/clip.mp4", etag="E1")


def auto_rule(settings: Settings, **fields) -> rules.Rule:
    spec = rules.validate_spec({"start": "auto", **fields}, settings.limits, "tags", "anim-")
    (rule,) = rules.resolve([spec], origin="tags", source="tags", settings=settings)
    return rule


# --- the rule language -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["auto", "AUTO", " Auto "])
def test_tags_sidecars_and_imm_names_accept_auto(settings, value):
    tags = rules.parse_tags({"anim-start": value, "anim-duration": "4"}, "tags", settings.limits)
    (rule,) = rules.resolve([tags.spec], origin="tags", source="tags", settings=settings)
    assert rule.start_auto and rule.start is None and rule.auto is None and rule.duration == 4
    raw = json.dumps({"animations": [{"start": value}, {"StartTime": "auto", "name": "b"}]}).encode()
    got = rules.resolve(rules.parse_sidecar(raw, "sidecar", settings.limits), origin="sidecar",
                        source="sidecar", settings=settings)
    assert [r.start_auto for r in got] == [True, True]


def test_without_a_duration_auto_takes_a_short_window(settings):
    rule = auto_rule(settings, fps=10)
    assert rule.duration == rules.AUTO_WINDOW == 3.0 and rule.frames == 30
    assert any("most active 3 s window" in n for n in rule.notes)
    capped = auto_rule(settings, fps=10, frames=12)  # a frame cap shorter than the window: its length
    assert capped.duration == pytest.approx(1.2) and capped.frames == 12


def test_the_highlight_profile_starts_auto(settings):
    (rule,) = rules.resolve([rules.RuleSpec(profile="highlight")], origin="tags", source="t", settings=settings)
    assert rule.start_auto and rule.duration == 5 and rule.name == "highlight"
    own = rules.RuleSpec.model_validate({"profile": "highlight", "start": 2})
    (rule,) = rules.resolve([own], origin="tags", source="t", settings=settings)
    assert not rule.start_auto and rule.start == 2


@pytest.mark.parametrize("value", ["autox", "later", "-1"])
def test_other_words_are_refused_naming_auto(settings, value):
    with pytest.raises(RuleError, match=r"anim-start=.*or auto"):
        rules.parse_tags({"anim-start": value}, "tags", settings.limits)


def test_rules_that_do_not_say_auto_keep_their_identity(settings):
    (rule,) = rules.resolve([rules.RuleSpec(start=5, duration=2)], origin="tags", source="t", settings=settings)
    assert "start_auto" not in rule.identity()
    assert auto_rule(settings).identity()["start_auto"] is True


# --- the probe ---------------------------------------------------------------------------------


def test_the_plan_of_an_auto_upload_is_golden(monkeypatch, capsys):
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / "oss-put-tagged.json"),
                          "--tags", "anim-start=auto&anim-duration=3&anim-fps=10&anim-width=320")
    golden = GOLDEN / "probe-auto-3s.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    assert plan == json.loads(golden.read_text())
    assert code == 0 and not plan["rejected"]
    (animation,) = plan["tasks"]  # made after the probe's result, from the start it picks
    assert animation["start"] == "auto" and animation["billed_frames"] == plan["billed_frames_total"] == 30
    assert "StartTime" not in animation["request"]["Sources"][0]
    (entry,) = plan["probes"]
    assert entry["start"] == "auto" and entry["sampled_frames"] == 100
    request = entry["request"]
    (target,) = request["Targets"]
    assert set(target) == {"Image"} and target["Image"]["Animations"] == []  # no Container, no URI
    (sprite,) = target["Image"]["Sprites"]
    assert sprite["Mode"] == "interval" and sprite["Interval"] == 0.5 and sprite["Number"] == 100
    assert (sprite["TileWidth"], sprite["TileHeight"], sprite["ScaleWidth"], sprite["ScaleHeight"]) == (10, 10, 64, 48)
    assert sprite["URI"].startswith("oss://test-bucket/animated/.autoanim/probes/") and sprite["URI"].endswith(".jpg")
    assert request["Sources"] == [{"URI": "oss://test-bucket/video-demo/Winemaking.mov", "Duration": 50}]
    assert request["Notification"] == {"MNS": {"TopicName": "test-mns-topic"}}
    user_data = json.loads(request["UserData"])
    assert user_data["attempt"] == -1 and request["Tags"]["autoanim-attempt"] == "probe"
    assert user_data["claim"] == json.loads(animation["request"]["UserData"])["claim"]  # one claim, two steps


def test_probe_and_animation_share_one_claim_and_the_pick_becomes_the_start_time(settings):
    rule = auto_rule(settings, duration=3, fps=10)
    planned = probe.plan_probe(SOURCE, rule, settings)
    assert planned.interval == 0.5 and planned.tiles == 100 and planned.span == 50
    tiles, _ = clip([("still", 9), ("move", 5), ("still", 9)])
    sheet = make_sheet(tiles, columns=PARAMS.columns)
    auto = probe.pick_start(sheet, planned)
    assert 9 <= auto.start <= 11 and auto.tiles == len(tiles) and auto.sheet == planned.sheet_uri
    picked = probe.with_start(rule, auto)
    (task,) = planner.plan(SOURCE, [picked], settings)
    assert task.request.source.start_time == auto.start and task.request.source.duration == 3
    assert task.request.tags["autoanim-claim"] == planned.request.tags["autoanim-claim"] == task.idempotency_key
    assert json.loads(task.request.user_data)["claim"] == json.loads(planned.request.user_data)["claim"]
    assert planner.TaskUserData.parse(task.request.user_data).attempt == 0
    with pytest.raises(ValueError, match="over the limit"):
        probe.pick_start(np.zeros(PARAMS.max_sheet_bytes + 1, np.uint8).tobytes(), planned)
    # What the result function can do from the stored probe request alone (no re-planning):
    stored = type(planned.request).model_validate(json.loads(json.dumps(planned.request.wire())))
    again = probe.score_sheet(sheet, stored.sprite, rule)
    assert again == auto


def test_an_unpicked_auto_rule_is_planned_with_its_probe(settings):
    (task,) = planner.plan(SOURCE, [auto_rule(settings, duration=3)], settings)
    assert task.first_attempt == planner.PROBE and task.probe.targets[0].image.sprites
    assert task.request.source.start_time is None  # the probe's pick gives it
    picked = task.request_for(0, start=12.5)
    assert picked.source.start_time == 12.5 and picked.tags["autoanim-attempt"] == "0"
    with pytest.raises(ValueError, match="start is auto"):
        probe.plan_probe(SOURCE, rules.Rule(format="webp", fps=1, interval=1, frames=1, origin="x"), settings)


class FakePicker:
    """A StartPicker that records what it was asked and picks a fixed second."""

    def __init__(self, start: float):
        self.start, self.asked = start, []

    def choose(self, source, rule):
        self.asked.append((source.key, rule.name))
        return probe.with_start(rule, rules.AutoStart(start=self.start, score=1.5, why="fake", tiles=3))


def test_on_upload_with_a_start_picker_submits_the_picked_start_and_records_it(app, store, media):
    from tests.functional.test_upload import oss_event

    app.starts = FakePicker(7.5)
    store.add("test-bucket", "v/a.mp4", b"video", {"anim-start": "auto", "anim-duration": "3"})
    report = index.on_upload(oss_event("v/a.mp4"), None, app=app)
    assert len(report["submitted"]) == 1 and app.starts.asked == [("v/a.mp4", "")]
    (request,) = media.requests
    assert request.source.start_time == 7.5 and request.source.duration == 3
    claim = json.loads(next(v for (_, k), v in store.objects.items() if k.endswith(request.tags["autoanim-claim"] + ".json")))
    assert claim["plan"]["rule"]["auto"] == {"start": 7.5, "score": 1.5, "why": "fake", "tiles": 3, "sheet": ""}


def test_on_upload_without_a_start_picker_submits_the_probe_first(app, store, media):
    from tests.functional.test_upload import oss_event

    store.add("test-bucket", "v/a.mp4", b"video", {"anim-profile": "highlight"})
    report = index.on_upload(oss_event("v/a.mp4"), None, app=app)
    (request,) = media.requests
    assert request.targets[0].image.sprites and not report["rejected"] and report["submitted"]

