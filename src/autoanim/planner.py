"""Plan, then execute: (object, rules, settings) → one CreateMediaConvertTask per clip. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict

from . import rules, targets
from .config import Settings
from .convert_request import (
    MAX_USER_DATA,
    MNS,
    Animation,
    ConvertRequest,
    Notification,
    Source,
    Target,
    TargetImage,
)
from .errors import ConfigError, RuleError
from .objects import MANIFEST_SUFFIX, MAX_KEY_BYTES, ObjectRef, SourceObject, extension, uri
from .rules import OPEN_SIDE, Rule

CLAIMS_FOLDER = ".autoanim/claims/"

# The IMM task tags that carry the claim (ListTasks finds a task by them). IMM documents no limit for task
# tags; these keep to OSS's object-tag limits, the strictest Alibaba tag rules we know.
TAG_CLAIM = "autoanim-claim"  # the idempotency key: 64 hex characters
TAG_ATTEMPT = "autoanim-attempt"  # probe, then 0 for the first animation submit, n for the n-th resubmit
PROBE = -1  # the attempt of a ``start: auto`` clip's probe, before its animation's attempt 0


def step(attempt: int) -> str:
    """An attempt's name in tags and claim records: ``probe``, ``a0``, ``a1``..."""
    return "probe" if attempt == PROBE else f"a{attempt}"


class TaskUserData(BaseModel):
    """What every task carries in ``UserData`` (at most 2048 bytes) to tie its result to its claim."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: Literal[2] = 2
    claim: str  # oss://bucket/key of the claim record
    attempt: int = 0
    src: str | None = None
    etag: str = ""
    rule: str = ""

    def dump(self) -> str:
        text = self.model_dump_json(exclude_none=True)
        if len(text.encode()) > MAX_USER_DATA:  # the claim alone ties the result back; it always fits
            text = self.model_copy(update={"src": None}).model_dump_json(exclude_none=True)
        return text

    @classmethod
    def parse(cls, text: str) -> TaskUserData | None:
        """The user data of one of our tasks, or None for anything else."""
        try:
            data = cls.model_validate_json(text)
            ObjectRef.parse(data.claim)
        except ValueError:  # not JSON, not ours (a pydantic ValidationError), or no oss:// claim
            return None
        return data

    @property
    def claim_location(self) -> tuple[str, str]:
        claim = ObjectRef.parse(self.claim)
        return claim.bucket, claim.key


class PlannedTask(BaseModel):
    """One IMM request plus what we know of it before it exists."""

    model_config = ConfigDict(frozen=True)

    source: SourceObject
    rule: Rule
    request: ConvertRequest
    output_bucket: str
    output_key: str
    billed_frames: int
    idempotency_key: str
    claim_key: str
    # ``start: auto``: the probe (a sprite sheet of the clip range) that picks the animation's start
    probe: ConvertRequest | None = None
    size_retries: int = 0  # a capped rule: AUTOANIM_TARGET_RETRIES when the plan was made

    @property
    def output_uri(self) -> str:
        return uri(self.output_bucket, self.output_key)

    @property
    def manifest_key(self) -> str:
        return self.output_key + MANIFEST_SUFFIX

    @property
    def first_attempt(self) -> int:
        return PROBE if self.probe is not None else 0

    @property
    def worst_billed_frames(self) -> int:
        """Billed frames if every size retry runs (each smaller, so this bounds them from above)."""
        return self.billed_frames * (1 + self.size_retries)  # no retries without a cap

    def request_for(self, attempt: int, start: float | None = None, scale: float | None = None) -> ConvertRequest:
        """The request of one attempt: the probe, or the animation from ``start`` (the probe's pick)
        shrunk by ``scale`` (a size retry's bytes factor, ``scaled``); each with its own ``UserData``
        and ``Tags``, so that its result and its task can be told apart."""
        base = self.probe if attempt == PROBE else self.request
        if base is None:
            raise ValueError(f"{self.claim_key} has no probe")
        if attempt != PROBE:  # the planned rule makes the planned request; a scaled one, a smaller one
            rule = self.rule if scale is None else scaled(self.rule, scale)
            clip = base.source.model_copy(update={"duration": rule.duration,
                                                  "start_time": base.source.start_time if start is None else start})
            base = base.model_copy(update={"sources": [clip], "targets": [Target(Image=_image(rule, base.animation.uri))]})
        user_data = TaskUserData.model_validate_json(self.request.user_data)
        return base.model_copy(update={
            "user_data": user_data.model_copy(update={"attempt": attempt}).dump(),
            "tags": task_tags(self.idempotency_key, attempt),
        })


def _image(rule: Rule, uri_: str) -> TargetImage:
    return TargetImage(Animations=[Animation(
        Format=rule.format, FrameRate=rule.fps, Interval=rule.interval, Number=rule.frames, Width=rule.width,
        Height=rule.height, ScaleType=rule.scale, URI=uri_)])


def estimated_size(rule: Rule) -> tuple[float, float]:
    """The output's pixels, at most (a side at ``OPEN_SIDE`` is open: the aspect is kept)."""
    width, height = (None if side is None or side >= OPEN_SIDE else side for side in (rule.width, rule.height))
    return rules.estimated_size(width, height, fit=rule.scale == "fit")


def estimated_bytes(rule: Rule) -> int:
    return targets.estimate_bytes(rule.format, *estimated_size(rule), rule.frames)


def scaled(rule: Rule, factor: float) -> Rule:
    """``rule`` with fewer frames, a lower rate or a smaller size so that its bytes scale by ``factor``;
    the planner's fit and a size retry both use it, so every holder builds the same request."""
    width, height = estimated_size(rule)
    knobs = targets.Knobs(fps=rule.fps, interval=rule.interval, frames=rule.frames, width=width, height=height,
                          size_fixed=rule.fixed_size)
    new, given_up = targets.shrink(knobs, factor)
    if not given_up:
        return rule
    side = new.width / width if width else 1.0

    def shrink_side(value: float | None) -> float | None:
        if value is None or value >= OPEN_SIDE or side >= 1:
            return value
        return value * side if value < 1 else float(max(1, math.floor(value * side)))

    duration = new.frames * new.interval if rule.duration is not None else None
    return rule.model_copy(update={
        "fps": new.fps, "interval": new.interval, "frames": new.frames, "duration": duration,
        "width": shrink_side(rule.width), "height": shrink_side(rule.height),
        "given_up": (*rule.given_up, *given_up),
    })


def fit(rule: Rule) -> Rule:
    """A capped rule shrunk by the size model until its estimate is within the cap's margin."""
    if rule.max_bytes is None:
        return rule
    estimate = estimated_bytes(rule)
    budget = rule.max_bytes * targets.MARGIN
    if estimate <= budget:
        return rule
    factor = budget / estimate
    for _ in range(6):  # bytes are not linear in the area (small pictures cost more a pixel): a few rounds
        fitted = scaled(rule, factor)
        estimate = estimated_bytes(fitted)
        if estimate <= budget:
            break
        factor *= budget / estimate * 0.98  # a little under: the sides and frames round down
    return fitted


def claim_request(source: SourceObject, rule: Rule, settings: Settings, idem: str, clip: Source,
                  image: TargetImage, attempt: int = 0) -> ConvertRequest:
    """A request of claim ``idem`` for ``clip`` of the source, to the result topic, with ``UserData`` and
    ``Tags`` naming the claim and the attempt."""
    claim = uri(settings.output_bucket or source.bucket, claim_key(idem, settings))
    topic = settings.imm_notify_topic
    return ConvertRequest(
        ProjectName=settings.imm_project or "local",
        Sources=[clip],
        Targets=[Target(Image=image)],
        Notification=Notification(MNS=MNS(TopicName=topic)) if topic else None,
        UserData=TaskUserData(claim=claim, attempt=attempt, src=source.uri, etag=source.etag,
                              rule=rule.name or rule.origin).dump(),
        Tags=task_tags(idem, attempt),
    )


def task_tags(idempotency_key: str, attempt: int) -> dict[str, str]:
    return {TAG_CLAIM: idempotency_key, TAG_ATTEMPT: step(attempt).removeprefix("a")}


def claim_key(idem: str, settings: Settings) -> str:
    return f"{settings.output_prefix}{CLAIMS_FOLDER}{idem}.json"


def idempotency_key(source: SourceObject, rule: Rule) -> str:
    identity = {"bucket": source.bucket, "key": source.key, "etag": source.etag, "rule": rule.identity()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def output_key(source: SourceObject, rule: Rule, settings: Settings) -> str:
    """The output key from ``OUTPUT_TEMPLATE``; always under ``OUTPUT_PREFIX``, never a trigger match."""
    dirname, basename = posixpath.split(source.key)
    values = {"prefix": settings.output_prefix, "bucket": source.bucket, "key": source.key,
              "dirname": dirname, "barename": basename.rsplit(".", 1)[0], "basename": basename,
              "srcext": extension(source.key), "name": f"-{rule.name}" if rule.name else "",
              "ext": rule.format}
    template = settings.output_template
    unknown = {f for _, f, _, _ in string.Formatter().parse(template) if f} - values.keys()
    if unknown:
        raise ConfigError(f"OUTPUT_TEMPLATE={template!r}: unknown variable(s) {sorted(unknown)}; "
                          f"known: {sorted(values)}")
    key = template.format_map(values)
    key = "/".join(part for part in key.split("/") if part)
    if not key.startswith(settings.output_prefix) or not key.endswith("." + values["ext"]):
        raise ConfigError(f"OUTPUT_TEMPLATE={template!r} makes {key!r}: outputs must start with "
                          f"OUTPUT_PREFIX={settings.output_prefix!r} and end with .{values['ext']}")
    if any(part in (".", "..") for part in key.split("/")):
        raise RuleError(f"source {source.uri}", "key", source.key, "output keys may not hold '.' or '..' folders")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise RuleError(f"source {source.uri}", "key", source.key,
                        f"the output key would be {len(key.encode())} bytes, over OSS's {MAX_KEY_BYTES}")
    return key


def plan(source: SourceObject, rules: list[Rule], settings: Settings, *, fit_caps: bool = True) -> list[PlannedTask]:
    """One task per rule (explicit Interval, FrameRate and Number; Container/URI empty), a capped rule fitted
    to its cap (``fit``) unless ``fit_caps=False`` (the local engine's search starts there and measures)."""
    out_bucket = settings.output_bucket or source.bucket
    tasks = []
    for rule in rules:
        key = output_key(source, rule, settings)
        idem = idempotency_key(source, rule)
        if fit_caps:
            rule = fit(rule)
        clip = Source(URI=source.uri, StartTime=rule.start_time, Duration=rule.duration)
        request = claim_request(source, rule, settings, idem, clip, _image(rule, uri(out_bucket, key)))
        probe = None
        if rule.start_auto and rule.auto is None:  # nothing picked the start yet: IMM's probe will
            from .probe import plan_probe  # (and its activity score: imported only for such a rule)

            probe = plan_probe(source, rule, settings).request
        tasks.append(PlannedTask(source=source, rule=rule, request=request, output_bucket=out_bucket,
                                 output_key=key, billed_frames=rule.frames, idempotency_key=idem,
                                 claim_key=claim_key(idem, settings), probe=probe,
                                 size_retries=settings.target_retries if rule.max_bytes else 0))
    return tasks
