"""The ports the core talks to. Adapters implement them; only ``bootstrap`` picks one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from .convert_request import ConvertRequest
from .objects import SourceObject

if TYPE_CHECKING:
    from .rules import Rule


class ObjectInfo(SourceObject):
    """What a store knows of an object (a HEAD, or a listing): the version, and more."""

    size: int
    content_type: str = ""
    last_modified: str = ""
    storage_class: str = ""  # from a listing: Standard, IA, Archive, ColdArchive, DeepColdArchive
    restored: bool = False  # an archived object whose restore has completed (readable for now)


class ObjectStore(Protocol):
    """A bucket-like store. Errors: ``NotFound``, ``TooLarge``, ``ServiceError``."""

    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    def get_tags(self, bucket: str, key: str) -> dict[str, str]: ...

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None: ...

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """The whole object; ``TooLarge`` when it is over ``max_bytes``."""

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """Atomic create: True when this call created the object, False when it already existed."""

    def exists(self, bucket: str, key: str) -> bool: ...

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` and sorts after ``start_after``, in key order; keys
        plain (decoded once, by the adapter), ``content_type`` maybe empty (a listing does not carry it)."""


# ``find_task`` also counts tasks created this many seconds before ``since`` (clock skew).
FIND_SLACK = 300.0


class MediaService(Protocol):
    """Runs CreateMediaConvertTask requests (IMM in the cloud, the engine locally)."""

    def submit(self, request: ConvertRequest) -> str:
        """Returns the task id. Errors: ``ServiceError`` with ``retryable``, and ``ambiguous`` when
        the task may exist although the call failed (so it is looked up before it is sent again)."""

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        """The id of the task created (no earlier than ``since``, epoch seconds) with all these tags."""


class StartPicker(Protocol):
    """Gives a ``start: auto`` rule its start (``rule.auto``) from the video's tiles."""

    def choose(self, source: SourceObject, rule: Rule) -> Rule:
        """Errors: ``MediaError`` (the video cannot be probed), ``ServiceError``."""
