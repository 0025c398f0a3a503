"""Platform events as wire models: FC's OSS trigger, FC's MNS topic trigger, IMM's result.

Platform events are lenient (``extra="ignore"``, wire names kept), parsed once
here at the edge. Object keys are kept as delivered; whether one arrived
URL-encoded is settled in exactly one place, ``service.locate_object``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import EventError
from .objects import MAX_KEY_BYTES

# The ObjectCreated kinds that mean "a complete object now exists".
# AppendObject is left out: an appendable object is incomplete after each append and
# fires once per append. PutSymlink is left out: a symlink is no new media, and
# IMM reading through one is unverified. Both are logged and ignored.
COMPLETE_OBJECT_EVENTS = frozenset(
    {
        "ObjectCreated:PutObject",
        "ObjectCreated:PostObject",
        "ObjectCreated:CopyObject",
        "ObjectCreated:CompleteMultipartUpload",
    }
)

MAX_EVENT_BYTES = 1024 * 1024


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class OssBucket(_Lenient):
    name: str
    arn: str = ""


class OssObject(_Lenient):
    key: str
    e_tag: str = Field("", alias="eTag")
    size: int = 0

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        key = value
        if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ValueError(f"object key must be 1..{MAX_KEY_BYTES} bytes of UTF-8, got {len(key.encode())}")
        if "\x00" in key or key.startswith("/"):
            raise ValueError("object key holds NUL or starts with '/'")
        return key

    @field_validator("e_tag")
    @classmethod
    def _etag(cls, value: str) -> str:
        return value.strip('"')


class OssDetail(_Lenient):
    bucket: OssBucket
    object: OssObject


class OssRecord(_Lenient):
    event_name: str = Field(alias="eventName")
    event_source: str = Field("acs:oss", alias="eventSource")
    event_time: str = Field("", alias="eventTime")
    region: str = ""
    oss: OssDetail

    @property
    def bucket(self) -> str:
        return self.oss.bucket.name

    @property
    def key(self) -> str:
        return self.oss.object.key

    @property
    def etag(self) -> str:
        return self.oss.object.e_tag

    @property
    def creates_object(self) -> bool:
        return self.event_name in COMPLETE_OBJECT_EVENTS


class EntryError(BaseModel):
    """An entry of ``events[]`` that could not be parsed; kept so it is reported, not lost."""

    model_config = ConfigDict(frozen=True)

    index: int
    reason: str


class OssBatch(BaseModel):
    """Every entry of one FC OSS trigger invocation, parsed or with its reason."""

    model_config = ConfigDict(frozen=True)

    records: list[tuple[int, OssRecord]]
    errors: list[EntryError]


def _load_json(raw: bytes | str | dict, what: str) -> Any:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_EVENT_BYTES:
            raise EventError(f"{what}: event is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"{what}: event is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EventError(f"{what}: event is not JSON ({exc})") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"


def parse_oss_event(raw: bytes | str | dict) -> OssBatch:
    """Parse an FC OSS trigger event; every entry of ``events[]`` is kept or reported."""
    data = _load_json(raw, "OSS event")
    entries = data.get("events") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise EventError("OSS event: no 'events' list (is this an OSS trigger event?)")
    records: list[tuple[int, OssRecord]] = []
    errors: list[EntryError] = []
    for index, entry in enumerate(entries):
        try:
            records.append((index, OssRecord.model_validate(entry)))
        except ValidationError as exc:
            errors.append(EntryError(index=index, reason=f"events[{index}].{_first_error(exc)}"))
    return OssBatch(records=records, errors=errors)


# --- MNS topic trigger → IMM envelope → IMM task result -------------------------------


class ImmEnvelope(_Lenient):
    id: str = ""
    source: str = ""
    type: str = ""
    subject: str = ""
    time: str = ""
    content: str


class ImmTaskResult(_Lenient):
    project_name: str = Field("", alias="ProjectName")
    request_id: str = Field("", alias="RequestId")
    task_type: str = Field("", alias="TaskType")
    task_id: str = Field(alias="TaskId")
    status: str = Field(alias="Status")
    code: str = Field("", alias="Code")
    message: str = Field("", alias="Message")
    user_data: str = Field("", alias="UserData")
    start_time: str = Field("", alias="StartTime")
    end_time: str = Field("", alias="EndTime")
    targets: list[Any] | None = Field(None, alias="Targets")

    @field_validator("code", "message", "user_data", "start_time", "end_time", "project_name", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    def animations(self) -> list[dict[str, Any]]:
        """The ``Targets[].Image.Animations[]`` entries IMM reported (may be empty)."""
        found: list[dict[str, Any]] = []
        for target in self.targets or []:
            image = target.get("Image") if isinstance(target, dict) else None
            animations = image.get("Animations") if isinstance(image, dict) else None
            found.extend(a for a in animations or [] if isinstance(a, dict))
        return found


def _message_body(data: Any, raw_text: str) -> str:
    """The MNS message body from any of FC's MNS trigger shapes.

    JSON format: ``{"Message": body, "TopicName": ...}`` (attributes at top level).
    STREAM with attributes: ``{"body": body, "attrs": {...}}``. STREAM without
    attributes: the event is the body itself.
    """
    if isinstance(data, dict):
        if isinstance(data.get("Message"), str) and "TopicName" in data:
            return data["Message"]
        if isinstance(data.get("body"), str) and "attrs" in data:
            return data["body"]
    return raw_text


def _decode_body(body: str) -> dict[str, Any]:
    """The IMM envelope: JSON, or Base64 of JSON (MNS TopicMessage encodes bodies)."""
    text = body.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8").strip()
        except (binascii.Error, ValueError) as exc:
            raise EventError(
                f"MNS message body is neither JSON nor Base64 JSON: {body[:60]!r}"
            ) from exc
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EventError(f"MNS message body is not JSON: {text[:60]!r}") from exc
    if not isinstance(value, dict):
        raise EventError("MNS message body is JSON but not an object")
    return value


def parse_task_result(raw: bytes | str | dict) -> ImmTaskResult:
    """FC MNS event (JSON or STREAM format) → IMM envelope → IMM task result.

    The envelope (CloudEvents: ``content`` holds the task JSON) may be absent: a
    message body that is itself the task JSON (``TaskId``, ``Status``) is accepted.
    """
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_EVENT_BYTES:
            raise EventError(f"MNS event: {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit")
        raw_text = bytes(raw).decode("utf-8", errors="replace")
    else:
        raw_text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        data: Any = raw if isinstance(raw, dict) else json.loads(raw_text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    body = _message_body(data, raw_text)
    envelope_data = data if data is not None and isinstance(data, dict) and "content" in data else _decode_body(body)
    if "content" not in envelope_data and "TaskId" in envelope_data and "Status" in envelope_data:
        content: Any = envelope_data  # the bare task JSON of IMM's older notification docs (no envelope)
    else:
        try:
            envelope = ImmEnvelope.model_validate(envelope_data)
        except ValidationError as exc:
            raise EventError(f"MNS message is not an IMM task notification: {_first_error(exc)}") from exc
        try:
            content = json.loads(envelope.content)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise EventError(f"IMM notification content is not JSON: {envelope.content[:60]!r}") from exc
    try:
        return ImmTaskResult.model_validate(content)
    except ValidationError as exc:
        raise EventError(f"IMM notification content: {_first_error(exc)}") from exc
