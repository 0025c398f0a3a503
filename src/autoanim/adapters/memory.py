"""In-memory adapters: a bucket in a dict and a media service that records requests.

First-class fakes: ``autoanim plan`` runs the real service on them (no network),
and the functional tests assert on the state they record.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..convert_request import ConvertRequest
from ..errors import NotFound, TooLarge
from ..objects import uri
from ..ports import FIND_SLACK, ObjectInfo


class MemoryObjectStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.content_types: dict[tuple[str, str], str] = {}
        self.etags: dict[tuple[str, str], str] = {}  # set by add(); else the MD5 of the content
        self.calls: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def _get(self, call: str, bucket: str, key: str) -> bytes:
        """Records the call; the object's data, or ``NotFound``."""
        self.calls.append((call, bucket, key))
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise NotFound(f"{uri(bucket, key)} does not exist") from None

    def head(self, bucket: str, key: str) -> ObjectInfo:
        data = self._get("head", bucket, key)
        etag = self.etags.get((bucket, key)) or hashlib.md5(data).hexdigest().upper()
        return ObjectInfo(bucket=bucket, key=key, etag=etag, size=len(data),
                          content_type=self.content_types.get((bucket, key), ""))

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        self._get("get_tags", bucket, key)
        return dict(self.tags.get((bucket, key), {}))

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        self._get("put_tags", bucket, key)
        self.tags[(bucket, key)] = dict(tags)

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        data = self._get("read", bucket, key)
        if len(data) > max_bytes:
            raise TooLarge(f"{uri(bucket, key)} is {len(data)} bytes, over {max_bytes}")
        return data

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.calls.append(("put", bucket, key))
        with self._lock:
            self.objects[(bucket, key)] = bytes(data)
            self.content_types[(bucket, key)] = content_type
            self.etags.pop((bucket, key), None)

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        self.calls.append(("create", bucket, key))
        with self._lock:
            if (bucket, key) in self.objects:
                return False
            self.objects[(bucket, key)] = bytes(data)
            self.content_types[(bucket, key)] = content_type
            return True

    def exists(self, bucket: str, key: str) -> bool:
        return (bucket, key) in self.objects

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        self.calls.append(("list", bucket, prefix))
        with self._lock:
            keys = sorted(k for b, k in self.objects
                          if b == bucket and k.startswith(prefix) and k > start_after)
        for key in keys:  # nothing is ever removed here
            yield self.head(bucket, key)

    def add(self, bucket: str, key: str, data: bytes, tags: dict[str, str] | None = None,
            etag: str | None = None) -> ObjectInfo:
        """Seed an object (what an upload would have done), optionally with the ETag OSS gave it."""
        self.put(bucket, key, data)
        self.tags[(bucket, key)] = dict(tags or {})
        if etag:
            self.etags[(bucket, key)] = etag
        return self.head(bucket, key)


@dataclass(kw_only=True, eq=False)
class TaskLog:
    """The tasks made, with their tags: ``find_task`` searches them, as IMM's ListTasks would (shared by the
    memory fake and the local media service)."""

    # (task id, created at, tags) of each task made
    _made: list[tuple[str, float, dict[str, str]]] = field(default_factory=list, init=False, repr=False)

    def made(self, request: ConvertRequest) -> str:
        """A new task's id for ``request``, logged with its tags."""
        task_id = f"MediaConvert-{uuid.uuid4()}"
        self._made.append((task_id, time.time(), dict(request.tags or {})))
        return task_id

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        for task_id, created, made_with in self._made:  # in creation order: the earliest match wins
            if tags and created >= since - FIND_SLACK and tags.items() <= made_with.items():
                return task_id
        return None


@dataclass(kw_only=True, eq=False)
class RecordingMediaService(TaskLog):
    """Accepts requests and records them (``requests``) with their tags.

    ``fail`` (public, settable): a function of the request returning an error to raise instead of
    submitting, or None to submit.
    """

    fail: Callable[[ConvertRequest], Exception | None] | None = None
    requests: list[ConvertRequest] = field(default_factory=list, init=False)

    def submit(self, request: ConvertRequest) -> str:
        if self.fail and (error := self.fail(request)) is not None:
            raise error
        self.requests.append(request)
        return self.made(request)
