"""The rule language: tags, sidecars, profiles, limits; errors name source, field, value, limit."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from autoanim import rules
from autoanim.config import Limits, Settings
from autoanim.errors import RuleError

LIMITS = Limits()
SRC = "tags of oss://b/v.mp4"

WINEMAKING = {
    "anim-format": "webp", "anim-start": "5", "anim-duration": "25", "anim-fps": "15", "anim-interval": "1",
    "anim-width": "0.5", "anim-height": "0.5", "anim-scale": "fit",
}


def resolve_tags(tags, settings=None, base="preview"):
    settings = settings or Settings()
    parsed = rules.parse_tags(tags, SRC, settings.limits)
    return rules.resolve([parsed.spec], origin="tags", source=SRC, settings=settings, base_profile=base)


def test_winemaking_tags_resolve_to_the_guide_clip():
    (rule,) = resolve_tags(WINEMAKING)
    assert (rule.format, rule.start, rule.duration, rule.fps, rule.interval) == ("webp", 5, 25, 15, 1)
    assert (rule.frames, rule.width, rule.height, rule.scale) == (25, 0.5, 0.5, "fit")


@pytest.mark.parametrize("text,seconds", [("5", 5), ("5.5", 5.5), ("01:05", 65), ("1:00:01.250", 3601.25),
                                          ("00:00:00", 0)])
def test_time_values(text, seconds):
    spec = rules.parse_tags({"anim-start": text}, SRC, LIMITS).spec
    assert spec.start == pytest.approx(seconds)


@pytest.mark.parametrize(
    "tags,field,limit",
    [
        ({"anim-fps": "1000"}, "anim-fps", "at most 50"),
        ({"anim-fps": "0"}, "anim-fps", "more than 0"),
        ({"anim-fps": "nan"}, "anim-fps", "finite"),
        ({"anim-fps": "inf"}, "anim-fps", "finite"),
        ({"anim-width": "100000"}, "anim-width", "1 to 4096"),
        ({"anim-width": "1.5"}, "anim-width", "ratio in (0, 1)"),
        ({"anim-height": "-0.5"}, "anim-height", "ratio in (0, 1)"),
        ({"anim-name": "../../x"}, "anim-name", "[a-z0-9_-]{1,32}"),
        ({"anim-name": "/etc/passwd"}, "anim-name", "[a-z0-9_-]{1,32}"),
        ({"anim-frames": "2.5"}, "anim-frames", "whole number"),
        ({"anim-frames": "100000"}, "anim-frames", "1 to 300"),
        ({"anim-start": "12:61"}, "anim-start", "below 60"),
        ({"anim-start": "soon"}, "anim-start", "must be a number"),
        ({"anim-duration": "0"}, "anim-duration", "more than 0"),
        ({"anim-format": "mp4"}, "anim-format", "webp"),
        ({"anim-scale": "zoom"}, "anim-scale", "stretch"),
        ({"anim-colour": "red"}, "anim-colour", "unknown tag"),
        ({"anim-FrameRate": "10"}, "anim-FrameRate", "unknown tag"),
        ({"anim": "maybe"}, "anim", "on, off or sidecar"),
    ],
)
def test_bad_tags_name_field_value_and_limit(tags, field, limit):
    with pytest.raises(RuleError) as err:
        rules.parse_tags(tags, SRC, LIMITS)
    message = str(err.value)
    assert message.startswith(SRC) and err.value.field == field and limit in message
    assert repr(next(iter(tags.values()))) in message


def test_limits_come_from_configuration():
    settings = Settings.from_env({"AUTOANIM_MAX_FPS": "20", "AUTOANIM_MAX_FRAMES": "40"})
    with pytest.raises(RuleError, match="at most 20"):
        rules.parse_tags({"anim-fps": "25"}, SRC, settings.limits)
    with pytest.raises(RuleError, match="over the limit of 40 frames") as err:
        resolve_tags({"anim-duration": "60", "anim-interval": "1"}, settings, base=None)
    assert err.value.field == "anim-duration"


def test_pixel_limit_is_checked_before_billing():
    settings = Settings.from_env({"AUTOANIM_MAX_PIXELS": "1000000"})
    with pytest.raises(RuleError, match="output pixels"):
        resolve_tags({"anim-duration": "10", "anim-fps": "10", "anim-width": "1280", "anim-height": "720"}, settings)


def test_modes():
    assert rules.parse_tags({"anim": "off"}, SRC, LIMITS).mode == "off"
    assert rules.parse_tags({"anim": "sidecar"}, SRC, LIMITS).mode == "sidecar"
    assert rules.parse_tags({"anim-fps": "5"}, SRC, LIMITS).mode == "on"
    assert rules.parse_tags({"project": "x"}, SRC, LIMITS) == rules.TagRules(mode=None, spec=None)


def test_one_side_keeps_the_aspect_and_says_so():
    (rule,) = resolve_tags({"anim-width": "320", "anim-duration": "2"})
    assert (rule.width, rule.scale) == (320, "fit")
    assert 1 < rule.height < 4096 and rule.height == int(rule.height)  # inside IMM's open (1, 4096), in pixels
    assert any("aspect" in n for n in rule.notes)
    (rule,) = resolve_tags({"anim-height": "0.25", "anim-duration": "2"})
    assert (rule.width, rule.height) == (0.25, 0.25)
    with pytest.raises(RuleError, match="give both width and height") as err:
        resolve_tags({"anim-width": "320", "anim-scale": "crop"})
    assert err.value.field == "anim-scale"


def test_the_default_profile_sends_its_open_side_inside_imms_range():
    """Regression: ``preview`` (width 480 only) sent Height 4096, on the edge of IMM's open (1, 4096)."""
    (rule,) = rules.resolve([rules.RuleSpec()], origin="default", source="s", settings=Settings(),
                            base_profile="preview")
    assert (rule.width, rule.height) == (480, 4095)


def test_a_form_encoded_gif_webp_tag_means_gif_and_webp():
    """Regression: ``gif+webp`` sent form-encoded in x-oss-tagging arrives as ``gif webp``."""
    assert [r.format for r in resolve_tags({"anim-format": "gif webp", "anim-duration": "2"})] == ["gif", "webp"]


def test_fps_and_interval_default_each_other():
    (rule,) = resolve_tags({"anim-fps": "12", "anim-duration": "2"}, base=None)
    assert rule.interval == pytest.approx(1 / 12) and rule.frames == 24
    (rule,) = resolve_tags({"anim-interval": "0.5", "anim-duration": "3"}, base=None)
    assert rule.fps == 2 and rule.frames == 6
    with pytest.raises(RuleError, match="give fps"):
        resolve_tags({"anim-interval": "0.01"}, base=None)


def test_no_duration_means_the_frame_cap():
    (rule,) = resolve_tags({"anim-fps": "15", "anim-interval": "1"}, base=None)
    assert rule.duration is None and rule.frames == Settings().limits.max_frames
    (rule,) = resolve_tags({"anim-frames": "40"}, base=None)
    assert rule.frames == 40


def test_groups_replace_the_profiles_fields_together():
    # preview: width 480 (one side); a tag that sets height alone drops the profile's width.
    (rule,) = resolve_tags({"anim-height": "200", "anim-duration": "1"})
    assert rule.height == 200 and rule.width == 4095
    # preview: frames 60 as a cap; a duration replaces it so the clip is not cut short.
    (rule,) = resolve_tags({"anim-duration": "30", "anim-interval": "0.2"})
    assert rule.frames == 150


def test_gif_plus_webp_makes_two_rules():
    got = resolve_tags({"anim-format": "gif+webp", "anim-duration": "2"})
    assert [r.format for r in got] == ["gif", "webp"]


def test_profiles_builtin_operator_and_unknown():
    settings = Settings.from_env({"AUTOANIM_PROFILES": json.dumps({"tiny": {"format": "gif", "width": 64,
                                                                             "height": 64, "duration": 1}})})
    (rule,) = resolve_tags({"anim-profile": "tiny"}, settings)
    assert (rule.format, rule.width, rule.frames) == ("gif", 64, 10)
    (rule,) = resolve_tags({"anim-profile": "sticker"})
    assert (rule.format, rule.scale, rule.name) == ("gif", "crop", "sticker")
    with pytest.raises(RuleError, match="no such profile; known: highlight, preview, sticker, timelapse, tiny"):
        resolve_tags({"anim-profile": "huge"}, settings)
    bad = Settings.from_env({"AUTOANIM_PROFILES": json.dumps({"x": {"fps": 500}})})
    with pytest.raises(RuleError, match="profile x: fps=500"):
        rules.profile(bad, "x")


def test_oss_tag_limits_for_tags_that_skip_oss():
    with pytest.raises(RuleError, match="at most 10 tags"):
        rules.check_tags({f"k{i}": "v" for i in range(11)}, "--tags")
    with pytest.raises(RuleError, match="256"):
        rules.check_tags({"anim-name": "x" * 257}, "--tags")
    with pytest.raises(RuleError, match="letters, digits"):
        rules.check_tags({"anim-name": '{"json": 1}'}, "--tags")
    assert rules.parse_tag_string("anim-fps=15&anim-name=a%20b") == {"anim-fps": "15", "anim-name": "a b"}


# --- sidecars ---------------------------------------------------------------------------

SIDE = "sidecar oss://b/v.mp4.anim.json"


def sidecar(doc) -> list[rules.RuleSpec]:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return rules.parse_sidecar(raw, SIDE, LIMITS)


def test_sidecar_short_and_imm_names():
    specs = sidecar({"animations": [
        {"format": "webp", "start": 5, "duration": 25, "fps": 15, "interval": 1, "width": 0.5, "height": 0.5,
         "scale": "fit", "name": "highlight"},
        {"Format": "gif", "StartTime": 1, "Duration": 2, "FrameRate": 10, "Interval": 0.1, "Number": 20,
         "Width": 200, "Height": 200, "ScaleType": "crop"},
    ]})
    got = rules.resolve(specs, origin="sidecar", source=SIDE, settings=Settings())
    assert [(r.name, r.format, r.frames) for r in got] == [("highlight", "webp", 25), ("clip2", "gif", 20)]


@pytest.mark.parametrize(
    "doc,field,limit",
    [
        (b"not json", "json", "must be JSON"),
        (b"\xff\xfe", "encoding", "UTF-8"),
        (b"[" * 50 + b"]" * 50, "nesting", "nested at most"),
        (b" " * (16 * 1024 + 1), "size", "at most 16384 bytes"),
        ({"animations": []}, "animations", '{"animations"'),
        ({"animations": [{}], "extra": 1}, "extra", '{"animations"'),
        ({"animations": [{"fps": 15, "colour": "red"}]}, "animations[0].colour", "unknown field"),
        ({"animations": [{"fps": 15}] * 11}, "animations", "at most 10 animations"),
        ({"animations": [{"name": "../x"}]}, "animations[0].name", "[a-z0-9_-]"),
        ({"animations": [{"Number": True}]}, "animations[0].Number", "must be a number"),
    ],
)
def test_bad_sidecars(doc, field, limit):
    with pytest.raises(RuleError) as err:
        sidecar(doc)
    assert err.value.source == SIDE and err.value.field == field and limit in str(err.value)


def test_duplicate_names_refused():
    specs = sidecar({"animations": [{"name": "a", "duration": 1}, {"name": "a", "duration": 2}]})
    with pytest.raises(RuleError, match="its own name"):
        rules.resolve(specs, origin="sidecar", source=SIDE, settings=Settings())


# --- properties ---------------------------------------------------------------------------

tag_values = st.one_of(st.text(max_size=40), st.floats(allow_nan=True, allow_infinity=True).map(str),
                       st.integers(-10**9, 10**9).map(str))
tag_keys = st.sampled_from(["anim", "anim-profile", "anim-format", "anim-start", "anim-duration", "anim-fps",
                            "anim-interval", "anim-frames", "anim-width", "anim-height", "anim-scale", "anim-name",
                            "anim-x", "other"])


@hsettings(max_examples=400, deadline=None)
@given(st.dictionaries(tag_keys, tag_values, max_size=10))
def test_any_tags_give_rules_within_limits_or_a_rule_error(tags):
    settings = Settings()
    try:
        parsed = rules.parse_tags(tags, SRC, settings.limits)
        got = rules.resolve([parsed.spec or rules.RuleSpec()], origin="tags", source=SRC, settings=settings,
                            base_profile="preview")
    except RuleError as err:
        assert err.source and err.field and err.limit
        return
    for rule in got:
        lim = settings.limits
        assert 1 <= rule.frames <= lim.max_frames
        assert 0 < rule.fps <= lim.max_fps and math.isfinite(rule.interval) and rule.interval > 0
        for side in (rule.width, rule.height):
            assert side is None or 0 < side < 1 or (side == int(side) and 1 <= side <= lim.max_side)
        assert rule.name == "" or rule.name.replace("-", "").replace("_", "").isalnum()


@hsettings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                    max_leaves=30))
def test_any_sidecar_json_gives_specs_or_a_rule_error(doc):
    try:
        specs = sidecar({"animations": doc} if not isinstance(doc, dict) else doc)
    except RuleError as err:
        assert err.source == SIDE
        return
    assert all(isinstance(s, rules.RuleSpec) for s in specs)
