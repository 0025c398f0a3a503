"""Platform events as lenient wire models, parsed once at the edge: FC's OSS and MNS triggers, IMM's result.

Object keys are kept as delivered; whether one arrived URL-encoded is settled in ``service.locate_object``.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, AliasPath, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import EventError
from .objects import MAX_KEY_BYTES

# The ObjectCreated kinds that mean "a complete object now exists". Left out, logged and ignored:
# AppendObject (an appendable object is incomplete after each append, and fires once per append) and
# PutSymlink (no new media; IMM reading through a symlink is unverified).
COMPLETE_OBJECT_EVENTS = frozenset(
    {"ObjectCreated:PutObject", "ObjectCreated:PostObject", "ObjectCreated:CopyObject",
     "ObjectCreated:CompleteMultipartUpload"}
)

MAX_EVENT_BYTES = 1024 * 1024


def _object_key(key: str) -> str:
    size = len(key.encode("utf-8"))
    if not key or size > MAX_KEY_BYTES:
        raise ValueError(f"object key must be 1..{MAX_KEY_BYTES} bytes of UTF-8, got {size}")
    if "\x00" in key or key.startswith("/"):
        raise ValueError("object key holds NUL or starts with '/'")
    return key


ObjectKey = Annotated[str, AfterValidator(_object_key)]
Unquoted = Annotated[str, AfterValidator(lambda value: value.strip('"'))]  # OSS's ETags come quoted
Text = Annotated[str, BeforeValidator(lambda value: "" if value is None else value)]  # a JSON null reads as ""


class _Lenient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class OssRecord(_Lenient):
    """One entry of an OSS trigger's ``events[]``: its kind and the object it names."""

    event_name: str = Field(alias="eventName")
    bucket: str = Field(validation_alias=AliasPath("oss", "bucket", "name"))
    key: ObjectKey = Field(validation_alias=AliasPath("oss", "object", "key"))
    etag: Unquoted = Field("", validation_alias=AliasPath("oss", "object", "eTag"))

    @property
    def creates_object(self) -> bool:
        return self.event_name in COMPLETE_OBJECT_EVENTS


class OssBatch(NamedTuple):
    """Every entry of one FC OSS trigger invocation by its index: parsed, or the reason it could not be."""

    records: list[tuple[int, OssRecord]]
    errors: list[tuple[int, str]]


def _check_size(raw: bytes, what: str) -> None:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventError(f"{what}: event is {len(raw)} bytes, over the {MAX_EVENT_BYTES}-byte limit")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise EventError(f"{what} is not JSON ({exc}): {text[:60]!r}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"


def parse_oss_event(raw: bytes | str | dict) -> OssBatch:
    """Parse an FC OSS trigger event; every entry of ``events[]`` is kept or reported."""
    if isinstance(raw, (bytes, bytearray)):
        _check_size(raw, "OSS event")
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"OSS event: event is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    data = raw if isinstance(raw, dict) else _json(raw, "OSS event")
    entries = data.get("events") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise EventError("OSS event: no 'events' list (is this an OSS trigger event?)")
    batch = OssBatch(records=[], errors=[])
    for index, entry in enumerate(entries):
        try:
            batch.records.append((index, OssRecord.model_validate(entry)))
        except ValidationError as exc:
            batch.errors.append((index, f"events[{index}].{_first_error(exc)}"))
    return batch


# --- MNS topic trigger → IMM envelope → IMM task result -------------------------------


class ImmTaskResult(_Lenient):
    task_id: str = Field(alias="TaskId")
    status: str = Field(alias="Status")
    code: Text = Field("", alias="Code")
    message: Text = Field("", alias="Message")
    user_data: Text = Field("", alias="UserData")
    start_time: Text = Field("", alias="StartTime")
    end_time: Text = Field("", alias="EndTime")
    targets: list[Any] | None = Field(None, alias="Targets")

    def animations(self) -> list[dict[str, Any]]:
        """The ``Targets[].Image.Animations[]`` entries IMM reported (may be empty)."""
        found: list[dict[str, Any]] = []
        for target in self.targets or []:
            image = target.get("Image") if isinstance(target, dict) else None
            animations = image.get("Animations") if isinstance(image, dict) else None
            found.extend(a for a in animations or [] if isinstance(a, dict))
        return found


def _decode_body(body: str) -> dict[str, Any]:
    """The IMM envelope: JSON, or Base64 of JSON (MNS TopicMessage encodes bodies)."""
    text = body.strip()
    if not text.startswith("{"):
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8").strip()
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError
            raise EventError(f"MNS message body is neither JSON nor Base64 JSON: {body[:60]!r}") from exc
    value = _json(text, "MNS message body")
    if not isinstance(value, dict):
        raise EventError("MNS message body is JSON but not an object")
    return value


def parse_task_result(raw: bytes | str | dict) -> ImmTaskResult:
    """FC MNS event → its message body → IMM envelope → IMM task result.

    FC's shapes: the JSON format ``{"Message": body, "TopicName": ...}`` (attributes at top level), STREAM
    with attributes ``{"body": body, "attrs": {...}}``, STREAM without: the event is the body. The envelope
    may be absent: a body that is itself the task JSON (``TaskId``, ``Status``, as IMM's older notification
    docs show it) is accepted.
    """
    if isinstance(raw, (bytes, bytearray)):
        _check_size(raw, "MNS event")
        raw = bytes(raw).decode("utf-8", errors="replace")
    body = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        data: Any = raw if isinstance(raw, dict) else json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("Message"), str) and "TopicName" in data:
        body = data["Message"]
    elif isinstance(data, dict) and isinstance(data.get("body"), str) and "attrs" in data:
        body = data["body"]
    found = data if isinstance(data, dict) and "content" in data else _decode_body(body)
    content: Any = found  # IMM's CloudEvents envelope holds the task JSON in "content"
    if "content" in found or "TaskId" not in found or "Status" not in found:
        if not isinstance(found.get("content"), str):
            raise EventError(f"MNS message is not an IMM task notification: content={found.get('content')!r:.60} "
                             "must be the task JSON as a string")
        content = _json(found["content"], "IMM notification content")
    try:
        return ImmTaskResult.model_validate(content)
    except ValidationError as exc:
        raise EventError(f"IMM notification content: {_first_error(exc)}") from exc
