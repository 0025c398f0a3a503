"""The ports the core talks to. Adapters implement them; only ``bootstrap`` picks one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .convert_request import ConvertRequest

if TYPE_CHECKING:
    from .planner import SourceObject
    from .rules import Rule


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    etag: str
    size: int
    content_type: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class TaskInfo:
    """What a media service knows of a task (IMM GetTask / the local engine)."""

    task_id: str
    status: str  # Running | Succeeded | Failed
    code: str = ""
    message: str = ""
    user_data: str = ""
    start_time: str = ""
    end_time: str = ""
    extra: dict = field(default_factory=dict)


class ObjectStore(Protocol):
    """A bucket-like store. Errors: ``NotFound``, ``TooLarge``, ``ServiceError``."""

    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    def get_tags(self, bucket: str, key: str) -> dict[str, str]: ...

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None: ...

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The whole object; ``TooLarge`` when it is over ``max_bytes``."""
        ...

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """Atomic create: True when this call created the object, False when it already existed."""
        ...

    def exists(self, bucket: str, key: str) -> bool: ...


class MediaService(Protocol):
    """Runs CreateMediaConvertTask requests (IMM in the cloud, the engine locally)."""

    def submit(self, request: ConvertRequest) -> str:
        """Returns the task id. Errors: ``ServiceError`` with ``retryable``."""
        ...

    def get_task(self, task_id: str) -> TaskInfo: ...


class StartPicker(Protocol):
    """Gives a ``start: auto`` rule its start (``rule.auto``) from the video's tiles."""

    def choose(self, source: SourceObject, rule: Rule) -> Rule:
        """Errors: ``MediaError`` (the video cannot be probed), ``ServiceError``."""
        ...
