"""The rule language (README, "Rules"): object tags ``anim-*``, the sidecar ``<key>.anim.json``, profiles.

Each source is parsed strictly into ``RuleSpec`` values, resolved into ``Rule`` values (the clips the
planner plans); every error names the source, the field, the value and the limit. Precedence is the service's.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import parse_qsl

from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
)

from . import objects
from .config import Limits, Settings
from .convert_request import Format, ScaleType
from .errors import RuleError

Mode = Literal["on", "off", "sidecar"]

TAG_PREFIX = "anim-"
MAX_SECONDS = 24 * 3600.0
MAX_INTERVAL = 3600.0
MAX_SIDECAR_DEPTH = 6
DEFAULT_FPS = 10.0  # when a rule gives neither fps nor interval (real time)
AUTO = "auto"  # start: "auto" picks the most active window (see autoanim.activity)
AUTO_WINDOW = 3.0  # seconds: the window of an auto start when the rule gives no duration
# Ratio sizes and a single pixel side are estimated against this source for the
# pixel limit (the planner cannot probe the video): 1080p in either orientation.
ASSUMED_SOURCE = (1920, 1080)
# The side sent for the one a rule leaves open (with fit, so the aspect is kept): inside IMM's
# range, not on its edge; the TargetImage docs give sprite sizes as the open interval (1, 4096).
OPEN_SIDE = 4095
# A byte cap (anim-max-bytes) below this leaves nothing to show; above this it bounds nothing IMM makes.
MIN_CAP, MAX_CAP = 1024, 2**31 - 1

_CLOCK = re.compile(r"^(?:(\d{1,2}):)?(\d{1,2}):(\d{1,2}(?:\.\d{1,3})?)$")

# A sidecar may give a field by IMM's name for it.
_IMM_NAMES = {"format": "Format", "start": "StartTime", "duration": "Duration", "fps": "FrameRate",
              "interval": "Interval", "frames": "Number", "width": "Width", "height": "Height",
              "scale": "ScaleType"}


def _aliases(field: str) -> AliasChoices:
    """A field as a sidecar (``max_bytes``), a tag (``max-bytes``) or IMM (``FrameRate``) spells it."""
    return AliasChoices(field, field.replace("_", "-"), *([_IMM_NAMES[field]] if field in _IMM_NAMES else []))


def _number(value: Any) -> float:
    """A finite number from JSON (int/float) or a tag string; bool and NaN/inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("must be a number")  # noqa: TRY004 - pydantic reports ValueError as a validation error
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _seconds(value: Any) -> float:
    """Seconds as a number (``5``, ``5.5``) or a clock ``[hh:]mm:ss[.fff]``."""
    if isinstance(value, str) and ":" in value:
        match = _CLOCK.match(value.strip())
        if not match:
            raise ValueError("must be seconds (5, 5.5) or [hh:]mm:ss[.fff]")
        hours, minutes, seconds = match.groups()
        if int(minutes) >= 60 or float(seconds) >= 60:
            raise ValueError("minutes and seconds must be below 60")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return _number(value)


def _seconds_or_auto(value: Any) -> float | str:
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return _seconds(value)
    except ValueError as exc:
        raise ValueError(f"{exc}, or auto") from None


def _lower(value: Any) -> Any:
    # A client that form-encodes x-oss-tagging sends gif+webp as "gif webp": the same value.
    return " ".join(value.split()).lower().replace("gif webp", "gif+webp") if isinstance(value, str) else value


def _named(what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not objects.NAME.match(value):
            raise ValueError(f"must {what}")
        return value

    return BeforeValidator(check)


def _within(parse: Callable[[Any], Any], ok: Callable[[float, float], bool], bound: float | str,
            limit: str) -> BeforeValidator:
    """A rule field's parsing, then its one range check ``ok(value, bound)``, else ``limit`` (which may show
    ``{bound}``); ``bound`` is a number or a limit's name in the context's ``Limits``. An error shows the value
    as written."""

    def check(value: Any, info: ValidationInfo) -> Any:
        parsed = parse(value)
        most = getattr((info.context or {}).get("limits") or Limits(), bound) if isinstance(bound, str) else bound
        if parsed != AUTO and not ok(parsed, most):
            raise ValueError(limit.format(bound=most))
        return parsed

    return BeforeValidator(check)


def _positive(parse: Callable[[Any], float], bound: float | str, unit: str) -> BeforeValidator:
    return _within(parse, lambda value, most: 0 < value <= most, bound,
                   f"must be more than 0 and at most {{bound:g}} {unit}")


class _Strict(BaseModel):  # frozen, and an unknown field is an error (a user's rules are strict)
    model_config = ConfigDict(frozen=True, extra="forbid")


# The rule fields' types, each optional: numbers and clocks parsed from tag strings or JSON, checked once.
Start = Annotated[float | Literal["auto"], _within(_seconds_or_auto, lambda v, most: 0 <= v <= most, MAX_SECONDS,
                                                   "must be between 0 and {bound:g} seconds, or auto")] | None
Duration = Annotated[float, _positive(_seconds, MAX_SECONDS, "seconds")] | None
Interval = Annotated[float, _positive(_number, MAX_INTERVAL, "seconds")] | None
Fps = Annotated[float, _positive(_number, "max_fps", "frames per second")] | None
Frames = Annotated[int, _within(_number, lambda v, most: v == int(v) and 1 <= v <= most, "max_frames",
                                "must be a whole number from 1 to {bound} (frames per animation)")] | None
Side = Annotated[float, _within(_number, lambda v, most: 0 < v < 1 or (v == int(v) and 1 <= v <= most), "max_side",
                                "must be a ratio in (0, 1) or whole pixels from 1 to {bound}")] | None
MaxBytes = Annotated[int, _within(_number, lambda v, most: v == int(v) and MIN_CAP <= v <= most, MAX_CAP,
                                  f"must be whole bytes from {MIN_CAP} to {{bound}}")] | None


class RuleSpec(_Strict):
    """What one source says about one clip: every field optional, nothing unknown allowed; validated with
    the limits in the context (``RuleSpec.model_validate(data, context={"limits": limits})``)."""

    model_config = ConfigDict(populate_by_name=True, alias_generator=AliasGenerator(validation_alias=_aliases))

    profile: Annotated[str, _named("be a profile name matching [a-z0-9_-]{1,32}")] | None = None
    name: Annotated[str, _named("match [a-z0-9_-]{1,32} (a suffix of the output name, no paths)")] | None = None
    format: Annotated[Literal["webp", "gif", "gif+webp"], BeforeValidator(_lower)] | None = None
    start: Start = None
    duration: Duration = None
    fps: Fps = None
    interval: Interval = None
    frames: Frames = None
    width: Side = None
    height: Side = None
    scale: Annotated[ScaleType, BeforeValidator(_lower)] | None = None
    target: Annotated[str, _named("be a target name matching [a-z0-9_-]{1,32}")] | None = None
    max_bytes: MaxBytes = None


class AutoStart(_Strict):
    """The start an ``auto`` rule was given by the activity score, and why."""

    start: float  # seconds: the Sources[].StartTime sent
    score: float
    why: str
    tiles: int  # tiles scored
    sheet: str = ""  # the probe's sprite sheet, when one was written


# Rule fields newer than the first keys: left out of the identity at these values, so that rules older than
# them keep their keys (and claims).
_NEWER_FIELDS = {"start_auto": False, "target": None, "max_bytes": None}


class Rule(_Strict):
    """One fully resolved clip: what the planner needs, nothing left to default.

    ``start_auto``: the activity score picks the start (``start`` is None); ``auto`` holds the pick once
    made, outside the rule's identity, so the probe and the animation of one upload share one claim.
    """

    name: str = ""
    format: Format
    start: float | None = None
    start_auto: bool = False
    auto: AutoStart | None = None
    duration: float | None = None
    fps: float
    interval: float
    frames: int  # the IMM Number: billed frames at most
    width: float | None = None
    height: float | None = None
    scale: ScaleType = "fit"
    origin: str  # e.g. "tags", "sidecar", "profile:preview"
    notes: tuple[str, ...] = ()
    target: str | None = None  # the target whose limits the rule meets (``autoanim.targets``)
    max_bytes: int | None = None  # the byte cap: the target's, or anim-max-bytes (the smaller)
    # What the planner's size model gave up to meet the cap ("fps 15 → 10"); derived, not identity.
    given_up: tuple[str, ...] = ()
    fixed_size: bool = False  # the target's size is exact: not something the size model may give up

    def identity(self) -> dict[str, Any]:
        """What makes two rules the same clip (origin, notes and what the planner derived excluded)."""
        identity = self.model_dump(exclude={"origin", "notes", "auto", "given_up", "fixed_size"})
        return {k: v for k, v in identity.items() if k not in _NEWER_FIELDS or v != _NEWER_FIELDS[k]}

    @property
    def start_time(self) -> float | None:
        """The Sources[].StartTime to send: the given start, or the auto pick once made."""
        return self.auto.start if self.auto is not None else self.start


# --- profiles -------------------------------------------------------------------------

BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    # A quick look at the whole video: one frame a second, played at 10 fps, 480 px wide.
    "preview": {"format": "webp", "fps": 10, "interval": 1, "frames": 60, "width": 480, "scale": "fit"},
    # A short square looping sticker from the start, real-time speed.
    "sticker": {"format": "gif", "start": 0, "duration": 3, "fps": 12, "width": 240, "height": 240,
                "scale": "crop", "name": "sticker"},
    # The whole video sped up: a frame every 2 s, played at 15 fps.
    "timelapse": {"format": "webp", "fps": 15, "interval": 2, "frames": 150, "width": 640, "scale": "fit",
                  "name": "timelapse"},
    # A real-time 5 s highlight, 640 px wide, where the video moves most (start: auto).
    "highlight": {"format": "webp", "start": AUTO, "duration": 5, "fps": 15, "width": 640, "scale": "fit",
                  "name": "highlight"},
}


def profile_names(settings: Settings) -> list[str]:
    return sorted({**BUILTIN_PROFILES, **settings.profiles})


def profile(settings: Settings, name: str) -> RuleSpec | None:
    """A built-in or operator profile (operator ones win), validated; None when unknown."""
    body = settings.profiles.get(name, BUILTIN_PROFILES.get(name))
    if body is None:
        return None
    if not objects.NAME.match(name) or name == "none":
        raise RuleError("AUTOANIM_PROFILES", "name", name, "profile names match [a-z0-9_-]{1,32}, not 'none'")
    if not isinstance(body, dict) or "profile" in body:
        raise RuleError("AUTOANIM_PROFILES", name, body, "a profile is an object of rule fields, no 'profile'")
    return validate_spec(body, settings.limits, f"profile {name}", "")


# --- sources ---------------------------------------------------------------------------


def validate_spec(data: Mapping[str, Any], limits: Limits, source: str, prefix: str) -> RuleSpec:
    try:
        return RuleSpec.model_validate(dict(data), context={"limits": limits})
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "extra_forbidden":
            message = f"unknown field; known: {', '.join(sorted(RuleSpec.model_fields))}"
        else:
            message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
        field = f"{prefix}{'.'.join(str(p) for p in err['loc'])}" or '""'  # a profile's field named ""
        raise RuleError(source, field, err.get("input"), message) from None


def parse_tag_string(text: str) -> dict[str, str]:
    """``k=v&k2=v2`` (the ``x-oss-tagging`` form, URL-encoded or not) to a dict; ``+`` is a character OSS
    allows in tags (``anim-format=gif+webp``), not a space."""
    pairs = parse_qsl(text.replace("+", "%2B"), keep_blank_values=True, strict_parsing=False)
    tags: dict[str, str] = {}
    for key, value in pairs:
        if key in tags:
            raise RuleError("tags", key, value, "each tag key may appear once")
        tags[key] = value
    return tags


def check_tags(tags: Mapping[str, str], source: str) -> None:
    """OSS's own tagging limits, for tags that did not come through OSS (CLI, local store)."""
    if len(tags) > objects.MAX_TAGS:
        raise RuleError(source, "tags", len(tags), f"at most {objects.MAX_TAGS} tags per object")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise RuleError(source, "tag", f"{key!r}={value!r}", "tag keys and values are strings")
        if not 1 <= len(key) <= objects.MAX_TAG_KEY or not objects.TAG_TEXT.match(key):
            raise RuleError(source, "tag key", key,
                            f"1-{objects.MAX_TAG_KEY} characters: {objects.TAG_CHARACTERS}")
        if len(value) > objects.MAX_TAG_VALUE or not objects.TAG_TEXT.match(value):
            raise RuleError(source, key, value,
                            f"at most {objects.MAX_TAG_VALUE} characters: {objects.TAG_CHARACTERS}")


class TagRules(NamedTuple):
    """What an object's tags say: the mode (None: no anim tags at all) and, with ``anim-*`` fields, a spec."""

    mode: Mode | None
    spec: RuleSpec | None


def parse_tags(tags: Mapping[str, str], source: str, limits: Limits) -> TagRules:
    check_tags(tags, source)
    mode_value = tags.get("anim")
    if mode_value is not None and mode_value not in ("on", "off", "sidecar"):
        raise RuleError(source, "anim", mode_value, "must be on, off or sidecar")
    fields = {k[len(TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(TAG_PREFIX)}
    if not fields:
        return TagRules(mode=mode_value, spec=None)
    for short, value in fields.items():
        if short in _IMM_NAMES.values() or short.replace("-", "_") not in RuleSpec.model_fields:
            allowed = ", ".join(TAG_PREFIX + f.replace("_", "-") for f in RuleSpec.model_fields)
            raise RuleError(source, TAG_PREFIX + short, value, f"unknown tag; known: anim, {allowed}")
    return TagRules(mode=mode_value or "on", spec=validate_spec(fields, limits, source, TAG_PREFIX))


class Sidecar(_Strict):
    """The sidecar file's shape: ``{"animations": [ {...}, ... ]}``."""

    animations: list[dict[str, Any]] = Field(min_length=1)


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)  # to the end when unterminated


def _depth(text: str) -> int:
    """How deep JSON text nests, counted before parsing (which deep nesting would end in RecursionError)."""
    steps = [1 if ch in "[{" else -1 for ch in _JSON_STRING.sub("", text) if ch in "[]{}"]
    return max(itertools.accumulate(steps, initial=0))


def parse_sidecar(raw: bytes, source: str, limits: Limits) -> list[RuleSpec]:
    """A sidecar's bytes to specs; size, depth, JSON, shape and every field checked."""
    if len(raw) > limits.max_sidecar_bytes:
        raise RuleError(source, "size", len(raw), f"at most {limits.max_sidecar_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError(source, "encoding", raw[:16], "must be UTF-8 JSON") from None
    if (depth := _depth(text)) > MAX_SIDECAR_DEPTH:
        raise RuleError(source, "nesting", depth, f"JSON nested at most {MAX_SIDECAR_DEPTH} deep")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleError(source, "json", text[:40], f"must be JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        sidecar = Sidecar.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise RuleError(source, field, err.get("input"), 'must be {"animations": [{...}, ...]} with no other fields') from None
    if len(sidecar.animations) > limits.max_rules:
        raise RuleError(source, "animations", len(sidecar.animations), f"at most {limits.max_rules} animations")
    return [validate_spec(a, limits, source, f"animations[{i}].") for i, a in enumerate(sidecar.animations)]


# --- resolution --------------------------------------------------------------------------


# How each origin spells a field in error messages.
_FIELD_PREFIX = {"tags": TAG_PREFIX, "cli": "--"}
# Fields that only make sense together: setting one overrides the profile's others.
_GROUPS = ({"width", "height"}, {"fps", "interval"}, {"duration", "frames"})


def resolve(specs: list[RuleSpec], *, origin: str, source: str, settings: Settings,
            base_profile: str | None = None) -> list[Rule]:
    """Specs (each over its profile, else ``base_profile``) to resolved, limit-checked rules.

    ``gif+webp`` becomes two rules. Unnamed clips of a multi-clip sidecar are named
    ``clip1``, ``clip2``... so outputs never collide; duplicate names are refused.
    """
    from . import targets

    rules: list[Rule] = []
    for index, spec in enumerate(specs):
        prefix = f"animations[{index}]." if origin == "sidecar" else _FIELD_PREFIX.get(origin, "")
        # A target of the spec's own replaces the default profile (it says what the clip is for); a named
        # profile still applies, and a profile may name a target itself.
        profile_name = spec.profile or (None if spec.target else base_profile)
        base = profile(settings, profile_name) if profile_name else RuleSpec()
        if base is None:
            field = f"{prefix}profile" if spec.profile else "DEFAULT_PROFILE"
            raise RuleError(source, field, profile_name,
                            f"no such profile; known: {', '.join(profile_names(settings))}")
        target_name = spec.target or base.target
        target = targets.get(settings, target_name) if target_name else None
        if target_name and target is None:
            raise RuleError(source, f"{prefix}target", target_name,
                            f"no such target; known: {', '.join(targets.names(settings))}")
        own = spec.model_dump(exclude_none=True, exclude={"profile"})
        replaced = {field for group in _GROUPS if group & own.keys() for field in group}
        merged = {k: v for k, v in base.model_dump(exclude_none=True).items() if k not in replaced} | own
        if target is not None:
            _apply_target(merged, own.get("max_bytes"), target_name, target, source, prefix, settings.limits)
        if "name" not in merged and len(specs) > 1:
            merged["name"] = f"clip{index + 1}"
        rule_origin = origin if not profile_name else f"{origin}+profile:{profile_name}"
        finished = _finish(merged, rule_origin, source, prefix, settings.limits)
        if target is not None:  # (a target's format is one: one rule)
            _check_target(finished[0], target_name, target, source, prefix)
        rules.extend(finished)
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        if (rule.name, rule.format) in seen:
            raise RuleError(source, "name", rule.name, "each clip of a video needs its own name")
        seen.add((rule.name, rule.format))
    return rules


def _apply_target(fields: dict[str, Any], cap: int | None, name: str, target: Any, source: str, prefix: str,
                  limits: Limits) -> None:
    """The target's limits over the merged fields: it fills what is open and refuses what contradicts it."""
    why = f"target {name}"
    if fields.get("format", target.format) != target.format:
        raise RuleError(source, f"{prefix}format", fields["format"], f"{why} takes {target.format}")
    fields["format"] = target.format
    if (size := target.size) is not None:
        width, height = fields.get("width"), fields.get("height")
        box = f"{size.width}x{size.height}"
        for side, value, bound in (("width", width, size.width), ("height", height, size.height)):
            if size.rule == "exact" and value is not None and value != bound:
                raise RuleError(source, f"{prefix}{side}", value, f"{why} is exactly {box}")
            if size.rule == "max" and value is not None and not 1 <= value <= bound:
                raise RuleError(source, f"{prefix}{side}", value,
                                f"{why} fits inside {box}: whole pixels up to {bound}")
        if size.rule == "exact":
            scale = fields.get("scale", "crop")
            if scale == "fit":
                raise RuleError(source, f"{prefix}scale", scale,
                                f"{why} is exactly {box}: crop, fill or stretch, not fit")
            fields.update(width=size.width, height=size.height, scale=scale, fixed_size=True)
        elif width is None and height is None:
            fields.update(width=size.width, height=size.height, scale=fields.get("scale", "fit"))
        elif width is None or height is None:  # one side: the other is bounded by the target, aspect kept
            fields.update(width=width or size.width, height=height or size.height, scale="fit")
    if fields.get("fps") is None and fields.get("interval") is None:  # a given fps is checked on the rule
        fields["fps"] = min(DEFAULT_FPS, target.max_fps or DEFAULT_FPS, limits.max_fps)
    if cap is not None and cap > target.max_bytes:
        raise RuleError(source, f"{prefix}max-bytes", cap, f"{why} takes at most {target.max_bytes} bytes")
    fields["max_bytes"] = cap or target.max_bytes
    if target.max_duration is not None and fields.get("duration") is None and fields.get("frames") is None:
        interval = fields.get("interval") or 1.0 / fields["fps"]
        fps = fields.get("fps") or 1.0 / interval
        frames = max(1, min(limits.max_frames, math.floor(target.max_duration * fps + 1e-9)))
        fields["duration"] = frames * interval
    fields["target"] = name


def _check_target(rule: Rule, name: str, target: Any, source: str, prefix: str) -> None:
    playback = rule.frames / rule.fps
    if target.max_duration is not None and playback > target.max_duration + 1e-6:
        raise RuleError(source, f"{prefix}duration", rule.duration or f"{rule.frames} frames",
                        f"plays {playback:g} s ({rule.frames} frames at {rule.fps:g} fps): target {name} "
                        f"plays at most {target.max_duration:g} s")
    if target.max_fps is not None and rule.fps > target.max_fps + 1e-9:
        raise RuleError(source, f"{prefix}fps", rule.fps, f"target {name} plays at most {target.max_fps:g} fps")


def _finish(fields: dict[str, Any], origin: str, source: str, prefix: str, limits: Limits) -> list[Rule]:
    notes: list[str] = []
    fps, interval = fields.get("fps"), fields.get("interval")
    if fps is None and interval is None:
        fps = min(DEFAULT_FPS, limits.max_fps)
        notes.append(f"no fps or interval given: {fps:g} fps in real time")
    elif interval is None and fps < 1.0 / MAX_INTERVAL:
        raise RuleError(source, f"{prefix}fps", fps,
                        f"without an interval, frames are taken every 1/fps s, at most {MAX_INTERVAL:g} s: "
                        f"fps must be at least 1/{MAX_INTERVAL:g}")
    elif fps is None:
        fps = 1.0 / interval
        if fps > limits.max_fps:
            raise RuleError(source, f"{prefix}interval", interval,
                            f"plays at 1/interval = {fps:g} fps without an fps, over {limits.max_fps:g}; give fps")
        notes.append(f"fps defaults to 1/interval = {fps:g}")
    interval = interval or 1.0 / fps  # real time

    duration, cap = fields.get("duration"), fields.get("frames")
    start, start_auto = fields.get("start"), fields.get("start") == AUTO
    if start_auto:
        start = None
        if duration is None:  # a window is needed to score; "to the end" has no window
            duration = AUTO_WINDOW if cap is None else min(AUTO_WINDOW, cap * interval)
            notes.append(f"start auto without a duration: the most active {duration:g} s window")
    if duration is not None:
        needed = max(1, math.ceil(duration / interval - 1e-9))
        if cap is None and needed > limits.max_frames:
            raise RuleError(source, f"{prefix}duration", duration,
                            f"{duration:g} s every {interval:g} s is {needed} frames, over the limit of "
                            f"{limits.max_frames} frames per animation")
        frames = min(needed, cap) if cap is not None else needed
    else:
        frames = cap if cap is not None else limits.max_frames
        if cap is None:
            notes.append(f"no duration: at most the frame cap, {frames} frames")

    width, height, scale = fields.get("width"), fields.get("height"), fields.get("scale", "fit")
    area = int(math.prod(estimated_size(width, height)))
    if (width is None) != (height is None):
        given, value = ("width", width) if width is not None else ("height", height)
        if scale != "fit":
            raise RuleError(source, f"{prefix}scale", scale,
                            f"only fit keeps the aspect with one side; give both width and height for {scale}")
        other = value if value < 1 else float(min(limits.max_side, OPEN_SIDE))
        width, height = (value, other) if given == "width" else (other, value)
        notes.append(f"only {given} given: sent {'the same ratio' if value < 1 else f'{other:g} px'} "
                     "for the other side with fit, so the aspect is kept")
    if frames * area > limits.max_pixels:
        raise RuleError(source, f"{prefix}width/height", f"{width}x{height}",
                        f"{frames} frames of about {area:,} px is {frames * area:,} px, over the limit of "
                        f"{limits.max_pixels:,} output pixels (ratios and a single side are estimated "
                        f"against a {ASSUMED_SOURCE[0]}x{ASSUMED_SOURCE[1]} source in either orientation)")

    formats = ["gif", "webp"] if fields.get("format") == "gif+webp" else [fields.get("format", "webp")]
    kept = {k: fields[k] for k in ("name", "target", "max_bytes", "fixed_size") if k in fields}  # as given
    return [Rule(format=fmt, start=start, start_auto=start_auto, duration=duration, fps=fps, interval=interval,
                 frames=frames, width=width, height=height, scale=scale, origin=origin, notes=tuple(notes), **kept)
            for fmt in formats]


def estimated_size(width: float | None, height: float | None, fit: bool = False) -> tuple[float, float]:
    """The largest picture made of a source up to ``ASSUMED_SOURCE`` in either orientation: a ratio scales
    the source's side, None keeps the aspect; ``fit`` fits the source inside two pixel sides."""
    sizes = []
    for source_w, source_h in (ASSUMED_SOURCE, ASSUMED_SOURCE[::-1]):
        w = width * source_w if width is not None and width < 1 else width
        h = height * source_h if height is not None and height < 1 else height
        if w is None and h is None:
            w, h = source_w, source_h
        elif w is None or h is None:
            w, h = (w, w * source_h / source_w) if h is None else (h * source_w / source_h, h)
        elif fit and width >= 1 and height >= 1:
            w = min(w, h * source_w / source_h)
            h = w * source_h / source_w
        sizes.append((w, h))
    return max(sizes, key=lambda size: size[0] * size[1])
