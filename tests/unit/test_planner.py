"""The planner: golden `autoanim plan` outputs for the IMM guide's examples, keys, UserData, loop guard."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from autoanim import cli, objects, planner, rules
from autoanim.config import Settings
from autoanim.errors import ConfigError, RuleError
from tests.conftest import EVENTS

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
GUIDE_TAGS = "anim-format=webp&anim-fps=15&anim-interval=1&anim-width=0.5&anim-height=0.5&anim-scale=fit"
CASES = {
    "guide-whole-video": GUIDE_TAGS,
    "guide-time-range": GUIDE_TAGS + "&anim-start=5&anim-duration=25",
}
# The IMM guide's two requests (imm-guide-video-to-animated-image.txt), field for field.
GUIDE_ANIMATION = {"Format": "webp", "FrameRate": 15, "Height": 0.5, "Interval": 1, "ScaleType": "fit", "Width": 0.5}
GUIDE_SOURCES = {"guide-whole-video": {"URI": "oss://test-bucket/video-demo/Winemaking.mov"},
                 "guide-time-range": {"URI": "oss://test-bucket/video-demo/Winemaking.mov", "StartTime": 5,
                                      "Duration": 25}}


def run_plan(monkeypatch, capsys, *args) -> tuple[int, dict]:
    for var in list(os.environ):
        if var.startswith(("IMM_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "FC_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("IMM_PROJECT", "test-project")
    monkeypatch.setenv("IMM_NOTIFY_TOPIC", "test-mns-topic")
    code = cli.main(["plan", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("case", sorted(CASES))
def test_guide_examples_are_golden(case, monkeypatch, capsys):
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / "oss-put-tagged.json"), "--tags", CASES[case])
    assert code == 0
    golden = GOLDEN / f"{case}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")
    assert plan == json.loads(golden.read_text())
    (task,) = plan["tasks"]
    request = task["request"]
    assert request["ProjectName"] == "test-project"
    assert request["Notification"] == {"MNS": {"TopicName": "test-mns-topic"}}
    assert request["Sources"] == [GUIDE_SOURCES[case]]
    (target,) = request["Targets"]
    assert set(target) == {"Image"}  # no Container, no URI: animation-only target
    (animation,) = target["Image"]["Animations"]
    assert {k: animation[k] for k in GUIDE_ANIMATION} == GUIDE_ANIMATION
    assert animation["URI"] == "oss://test-bucket/animated/video-demo/Winemaking.webp"
    assert animation["Number"] == task["billed_frames"] == (25 if "range" in case else 60)  # whole video: the profile's frame cap


def test_plan_with_a_sidecar(monkeypatch, capsys, tmp_path):
    side = tmp_path / "s.json"
    side.write_text(json.dumps({"animations": [{"format": "gif+webp", "duration": 2, "fps": 10, "name": "a"},
                                               {"Format": "webp", "StartTime": 3, "Duration": 1, "FrameRate": 5}]}))
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / "oss-put-tagged.json"), "--sidecar", str(side),
                          "--tags", "anim-fps=3")
    assert code == 0
    assert [t["output"].rsplit("/", 1)[1] for t in plan["tasks"]] == [
        "Winemaking-a.gif", "Winemaking-a.webp", "Winemaking-clip2.webp"]
    assert plan["billed_frames_total"] == 20 + 20 + 5


@pytest.mark.parametrize("tags,reason", [("anim-name=../../x", "anim-name"), ("anim-fps=1000", "anim-fps"),
                                         ("anim-width=100000", "anim-width")])
def test_hostile_rules_send_nothing_and_say_why(monkeypatch, capsys, tags, reason):
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / "oss-put-tagged.json"), "--tags", tags)
    assert code == 2 and plan["tasks"] == []
    assert reason in plan["rejected"][0]["reason"]


@pytest.mark.parametrize("event,tags", [("oss-output-prefix.json", ""), ("oss-not-video.json", ""),
                                        ("oss-put-tagged.json", "anim=off")])
def test_nothing_to_do_sends_nothing(monkeypatch, capsys, event, tags):
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / event), *(["--tags", tags] if tags else []))
    assert code == 0 and plan["tasks"] == [] and plan["skipped"]


# --- keys ---------------------------------------------------------------------------------

SRC = objects.SourceObject(bucket="b", key="videos/My Trip/clip.final.MOV", etag="E")


def rule(**kw) -> rules.Rule:
    base = {"format": "webp", "fps": 10, "interval": 0.1, "frames": 10, "origin": "t"}
    return rules.Rule(**{**base, **kw})


def test_output_keys_follow_the_template_and_stay_under_the_prefix():
    s = Settings()
    assert planner.output_key(SRC, rule(), s) == "animated/videos/My Trip/clip.final.webp"
    assert planner.output_key(SRC, rule(name="hl", format="gif"), s) == "animated/videos/My Trip/clip.final-hl.gif"
    top = objects.SourceObject(bucket="b", key="x.mp4", etag="E")
    assert planner.output_key(top, rule(), s) == "animated/x.webp"
    flat = Settings(output_template="{prefix}{barename}{name}.{ext}")
    assert planner.output_key(SRC, rule(), flat) == "animated/clip.final.webp"
    with pytest.raises(ConfigError, match="must start with OUTPUT_PREFIX"):
        planner.output_key(SRC, rule(), Settings(output_template="{dirname}/{barename}.{ext}"))
    with pytest.raises(ConfigError, match="unknown variable"):
        planner.output_key(SRC, rule(), Settings(output_template="{prefix}{secret}.{ext}"))
    sneaky = objects.SourceObject(bucket="b", key="a/../../etc/passwd.mp4", etag="E")
    with pytest.raises(RuleError, match="'..'"):
        planner.output_key(sneaky, rule(), s)


@hsettings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=300)
       .filter(lambda k: not k.startswith("/")).map(lambda k: k + ".mp4"),
       st.sampled_from(["", "hl", "a-b_c"]))
def test_any_key_gives_an_output_under_the_prefix_or_a_rule_error(key, name):
    s = Settings()
    try:
        (task,) = planner.plan(objects.SourceObject(bucket="bkt", key=key, etag="E"), [rule(name=name)], s)
    except RuleError:
        return
    assert task.output_key.startswith("animated/") and task.output_key.endswith(".webp")
    assert ".." not in task.output_key.split("/") and len(task.output_key.encode()) <= 1023
    assert objects.is_ours(task.output_key, s.output_prefix) and not objects.is_video_key(task.output_key)
    assert len(task.request.user_data.encode()) <= 2048
    assert json.loads(task.request.user_data)["claim"] == f"oss://bkt/{task.claim_key}"


def test_idempotency_key_is_per_object_version_and_rule():
    a = planner.idempotency_key(SRC, rule())
    assert a == planner.idempotency_key(SRC, rule(origin="other", notes=("x",)))
    assert a != planner.idempotency_key(SRC.model_copy(update={"etag": "F"}), rule())
    assert a != planner.idempotency_key(SRC, rule(fps=12))
    assert re.fullmatch(r"[0-9a-f]{64}", a)


def test_user_data_drops_the_source_when_too_long():
    long_key = "v/" + "é" * 500 + ".mp4"
    (task,) = planner.plan(objects.SourceObject(bucket="b", key=long_key, etag="E"), [rule()], Settings())
    data = json.loads(task.request.user_data)
    assert len(task.request.user_data.encode()) <= 2048 and "claim" in data


def test_pixel_sizes_go_out_as_integers():
    (task,) = planner.plan(SRC, [rule(width=480.0, height=4096.0)], Settings())
    animation = task.request.wire()["Targets"][0]["Image"]["Animations"][0]
    assert json.dumps(animation["Width"]) == "480" and json.dumps(animation["Height"]) == "4096"


def test_plan_of_a_sidecar_upload(monkeypatch, capsys, tmp_path):
    side = tmp_path / "s.json"
    side.write_text(json.dumps({"animations": [{"duration": 2, "fps": 5, "name": "x"}]}))
    code, plan = run_plan(monkeypatch, capsys, str(EVENTS / "oss-sidecar.json"), "--sidecar", str(side))
    assert code == 0 and [t["output"] for t in plan["tasks"]] == [
        "oss://test-bucket/animated/videos/clips/match-x.webp"]


@pytest.mark.parametrize("args,match", [
    (["oss-sidecar.json"], "give its content with --sidecar"),
    (["oss-put-tagged.json", "--sidecar", "/nonexistent/s.json"], "cannot read sidecar file"),
])
def test_plan_argument_problems_exit_2_with_one_line(monkeypatch, capsys, args, match):
    monkeypatch.setenv("IMM_PROJECT", "p")
    assert cli.main(["plan", str(EVENTS / args[0]), *args[1:]]) == 2
    assert match in capsys.readouterr().err


def test_plan_prints_only_the_plan_for_people_and_exact_json_on_request(monkeypatch, capsys):
    for var in list(os.environ):
        if var.startswith(("IMM_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "FC_")):
            monkeypatch.delenv(var)
    assert cli.main(["plan", str(EVENTS / "oss-put-tagged.json"), "--tags", CASES["guide-time-range"]]) == 0
    captured = capsys.readouterr()
    assert "1 IMM task, 25 billed frames in all" in captured.out and "every 1 s at 15 fps" in captured.out
    assert "upload.submitted" not in captured.err  # no network, no task: the plan is the only output
    assert cli.main(["plan", str(EVENTS / "oss-put-tagged.json"), "--json"]) == 0
    (task,) = json.loads(capsys.readouterr().out)["tasks"]
    assert task["request"]["ProjectName"] == "<IMM_PROJECT>"  # unset: shown as what it stands for
