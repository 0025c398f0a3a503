"""Targets: the shipped data, how a target combines with a rule, the size model's plan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoanim import bootstrap, planner, rules, targets
from autoanim.config import Settings
from autoanim.errors import ConfigError, RuleError
from autoanim.objects import SourceObject

SRC = "tags of oss://b/v.mp4"
SOURCE = SourceObject(bucket="b", key="v.mp4", etag="e")
BUILTIN = ("whatsapp-sticker", "discord", "discord-sticker", "slack-emoji", "github", "email")


def resolve(tags, settings=None):
    settings = settings or Settings()
    parsed = rules.parse_tags(tags, SRC, settings.limits)
    (rule,) = rules.resolve([parsed.spec], origin="tags", source=SRC, settings=settings, base_profile="preview")
    return rule


def test_every_builtin_target_is_there_with_a_source_for_each_limit():
    data = targets.builtin()
    assert set(BUILTIN) <= set(data.targets)
    for name, target in data.targets.items():
        limits = {"format", "max_bytes"} | {f for f in ("size", "max_duration", "max_fps")
                                            if getattr(target, f) is not None}
        assert limits <= set(target.sources), name
        assert all("2026" in text for text in target.sources.values()), name  # each with its date


def test_whatsapp_sticker_fills_the_rule():
    rule = resolve({"anim-target": "whatsapp-sticker"})
    assert (rule.format, rule.width, rule.height, rule.scale) == ("webp", 512, 512, "crop")
    assert rule.max_bytes == 500_000 and rule.target == "whatsapp-sticker" and rule.fixed_size
    assert rule.frames / rule.fps <= 10


def test_max_bytes_alone_is_a_cap_on_the_default_profile():
    rule = resolve({"anim-max-bytes": "50000"})
    assert rule.max_bytes == 50_000 and rule.target is None and rule.origin == "tags+profile:preview"


@pytest.mark.parametrize("tags,field,reason", [
    ({"anim-target": "email", "anim-format": "webp"}, "anim-format", "target email takes gif"),
    ({"anim-target": "email", "anim-fps": "20"}, "anim-fps", "at most 12 fps"),
    ({"anim-target": "email", "anim-width": "900"}, "anim-width", "fits inside 600x600"),
    ({"anim-target": "email", "anim-width": "0.5"}, "anim-width", "whole pixels"),
    ({"anim-target": "whatsapp-sticker", "anim-width": "256"}, "anim-width", "exactly 512x512"),
    ({"anim-target": "whatsapp-sticker", "anim-scale": "fit"}, "anim-scale", "not fit"),
    ({"anim-target": "whatsapp-sticker", "anim-duration": "12"}, "anim-duration", "at most 10 s"),
    ({"anim-target": "slack-emoji", "anim-max-bytes": "200000"}, "anim-max-bytes", "at most 128000 bytes"),
    ({"anim-target": "nope"}, "anim-target", "no such target"),
    ({"anim-max-bytes": "12"}, "anim-max-bytes", "whole bytes from 1024"),
])
def test_a_rule_that_contradicts_its_target_is_refused_with_the_reason(tags, field, reason):
    with pytest.raises(RuleError) as caught:
        resolve(tags)
    assert caught.value.field == field
    assert reason in caught.value.message


def test_target_in_a_sidecar_and_in_a_profile():
    settings = Settings(profiles={"mail": {"target": "email", "name": "mail"}})
    specs = rules.parse_sidecar(b'{"animations": [{"target": "slack-emoji", "max_bytes": 100000}, {"profile": "mail"}]}',
                                "sidecar", settings.limits)
    a, b = rules.resolve(specs, origin="sidecar", source="sidecar", settings=settings, base_profile="preview")
    assert (a.target, a.max_bytes, a.format) == ("slack-emoji", 100_000, "gif")
    assert (b.target, b.max_bytes, b.name) == ("email", 1_000_000, "mail")


def test_operator_targets_are_validated_at_start_up():
    good = Settings(targets={"intranet": {"format": "webp", "max_bytes": 2_000_000, "max_fps": 15}})
    bootstrap.check(good)
    assert resolve({"anim-target": "intranet"}, good).max_bytes == 2_000_000
    with pytest.raises(ConfigError, match="AUTOANIM_TARGETS intranet.max_bytes"):
        bootstrap.check(Settings(targets={"intranet": {"format": "webp", "max_bytes": "lots"}}))
    with pytest.raises(ConfigError, match="AUTOANIM_TARGETS is not JSON"):
        Settings.from_env({"AUTOANIM_TARGETS": "{nope"})


def test_rules_without_a_target_keep_their_identity():
    rule = resolve({"anim-fps": "10"})
    assert "target" not in rule.identity() and "max_bytes" not in rule.identity()


@pytest.mark.parametrize("name", BUILTIN)
def test_the_planner_fits_every_builtin_target_within_its_estimate(name):
    rule = resolve({"anim-target": name})
    (task,) = planner.plan(SOURCE, [rule], Settings())
    assert planner.estimated_bytes(task.rule) <= rule.max_bytes * targets.MARGIN
    animation = task.request.animation
    assert animation.number / animation.frame_rate <= targets.builtin().targets[name].max_duration + 1e-6
    assert task.billed_frames == animation.number
    assert task.worst_billed_frames == animation.number * (1 + Settings().target_retries)
    if task.rule.given_up:  # what was given up is said, against the rule as asked
        assert all("→" in item for item in task.rule.given_up)


def test_email_gives_up_fps_then_size():
    rule = resolve({"anim-target": "email"})
    fitted = planner.fit(rule)
    assert fitted.fps < rule.fps and fitted.width < rule.width
    assert fitted.given_up[0].startswith("fps 10 → ") and fitted.given_up[1].startswith("size 600x338 → ")


@given(st.floats(0.01, 0.99))
def test_a_scale_never_grows_the_estimate_and_is_deterministic(factor):
    rule = planner.fit(resolve({"anim-target": "email"}))
    smaller = planner.scaled(rule, factor)
    assert planner.estimated_bytes(smaller) <= planner.estimated_bytes(rule)
    assert planner.scaled(rule, factor) == smaller  # what it gave up included: ``smaller.given_up``


def test_a_scaled_request_keeps_its_claim_and_uri():
    (task,) = planner.plan(SOURCE, [resolve({"anim-target": "email"})], Settings())
    first, second = task.request_for(0), task.request_for(1, scale=0.5)
    assert second.animation.uri == first.animation.uri
    assert second.animation.number * second.animation.width * second.animation.height < \
        first.animation.number * first.animation.width * first.animation.height
    assert second.tags["autoanim-claim"] == first.tags["autoanim-claim"]


def test_plan_shows_the_cap_and_the_worst_case(capsys):
    import json

    from autoanim import cli
    from tests.conftest import EVENTS

    assert cli.main(["plan", str(EVENTS / "oss-put-tagged.json"), "--tags", "anim-target=email", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (task,) = summary["tasks"]
    assert task["cap"] == 1_000_000 and task["target"] == "email" and task["given_up"]
    assert task["billed_frames_worst"] == task["billed_frames"] * 2 == summary["billed_frames_worst_total"]
    assert cli.main(["plan", str(EVENTS / "oss-put-tagged.json"), "--tags", "anim-target=email"]) == 0
    assert "at worst" in capsys.readouterr().out
