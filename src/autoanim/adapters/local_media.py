"""``MediaService`` on the local engine: what IMM does, offline (see ``docs/local.md``).

``submit`` returns a task id at once; the conversion runs on a bounded thread pool (the engine isolates
each job in its own worker process). When a task ends, its result is published exactly as IMM would
publish it to MNS (the envelope of ``reference/alibaba-cloud.md`` section 2), wrapped as an FC MNS topic
trigger event in the JSON format, and handed to ``notify`` (the composition root passes
``on_task_result``). A failed task leaves no output. ``Image.Sprites`` targets (the ``start: auto``
probe) are sprite sheets made by ``autoanim.engine.probe``, reported under ``Targets[].Image.Sprites[]``.

Task codes (IMM's own codes for these cases are unconfirmed; consumers should treat any ``Failed``
status as final unless the code says otherwise):
- ``InvalidMedia``: the engine cannot read the source (``MediaError``); permanent.
- ``ResourceNotFound``: the source object or an output bucket does not exist; permanent.
- ``InvalidArgument``: a URI or key outside the local store, or a request the engine cannot run; permanent.
- ``InternalError``: anything else (an engine bug, a crash, a timeout); worth retrying.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenacity import Retrying, stop_after_attempt, wait_exponential

from ..convert_request import ConvertRequest
from ..errors import AutoanimError, ServiceError
from ..fc_events import LOCAL_ACCOUNT, iso_ms, mns_json_event
from ..objects import ObjectRef
from .local_probe import sprite_sheet
from .local_store import LocalObjectStore
from .memory import TaskLog

log = logging.getLogger(__name__)


# Result deliveries to the subscriber (on_task_result): 1 + 3 retries, 0.5 s, 1 s, 2 s apart.
DELIVERY_ATTEMPTS = 4
DELIVERY_BACKOFF = 0.5

# A failure's task code by its error's code (the list above); anything else is InternalError.
TASK_CODES = {"InvalidMedia": "InvalidMedia", "InvalidArgument": "InvalidArgument",
              "ResourceNotFound": "ResourceNotFound", "InvalidObjectName": "InvalidArgument",
              "InvalidBucketName": "InvalidArgument"}


@dataclass(frozen=True)
class FailedDelivery:
    """A task result that ``notify`` did not accept; the event is kept so it can be delivered again."""

    task_id: str
    event: bytes
    error: BaseException


def _convert(*args: Any, **kw: Any) -> Any:
    from ..engine import convert  # PyAV: imported on first use

    return convert(*args, **kw)


@dataclass(kw_only=True, eq=False)
class LocalMediaService(TaskLog, AbstractContextManager):
    """Runs requests on the engine; finds tasks by their tags as the memory fake does."""

    store: LocalObjectStore = field(kw_only=False)
    notify: Callable[[bytes], None]
    workers: int = 2
    project: str = "local"
    convert: Callable[..., Any] = _convert
    sheet: Callable[..., Any] = sprite_sheet  # Image.Sprites targets (the start: auto probe)
    timeout: float | None = None  # seconds per conversion; the engine kills its worker past it
    failed_deliveries: list[FailedDelivery] = field(default_factory=list, init=False)
    _pending: int = field(default=0, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _idle: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    def __post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="autoanim-local-media")

    def submit(self, request: ConvertRequest) -> str:
        with self._idle:
            if self._closed:
                raise ServiceError("the local media service is closed", retryable=True, code="ServiceClosed")
            task_id = self.made(request)
            self._pending += 1
            self._executor.submit(self._run, task_id, request)
        return task_id

    def wait(self, timeout: float | None = None) -> bool:
        """True once every submitted task (and any task its notification submitted) is done and delivered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        """Waits for every task and its notification, then stops the workers."""
        self.wait()
        with self._idle:
            self._closed = True
        self._executor.shutdown(wait=True)

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, task_id: str, request: ConvertRequest) -> None:
        try:
            self._deliver(task_id, self._event(request, self._execute(task_id, request)))
        except Exception:  # a bug here must not leave wait() hanging; it is logged, not lost
            log.exception("local media task %s could not be completed", task_id)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _execute(self, task_id: str, request: ConvertRequest) -> dict[str, Any]:
        started = iso_ms()
        written: list[Path] = []
        targets = _targets(request)
        code = message = ""
        try:
            if len(request.sources) != 1:
                raise ServiceError("the local engine converts exactly one source per task",
                                   code="InvalidArgument")
            source = request.source
            src = self._locate(source.uri)
            clip = {"start": source.start_time, "duration": source.duration, "timeout": self.timeout}
            for target, image in zip(request.targets, (t["Image"] for t in targets)):
                for animation, done in zip(target.image.animations, image["Animations"]):
                    written.append(out := self._locate(animation.uri, output=True))
                    done.update(_extras(self.convert(src, out, animation, **clip)))
                for sprite, done in zip(target.image.sprites or [], image["Sprites"] or []):
                    written.append(out := self._locate(sprite.uri, output=True))
                    sheet = self.sheet(src, out, sprite, **clip)
                    done.update(Tiles=sheet.tiles, Width=sheet.width, Height=sheet.height, Size=sheet.bytes)
        except AutoanimError as exc:
            code, message = TASK_CODES.get(exc.code, "InternalError"), exc.message
        except Exception as exc:
            log.exception("local media task %s failed", task_id)
            code, message = "InternalError", f"{type(exc).__name__}: {exc}"
        if code:  # a failed task leaves no output, and reports only the URIs
            for out in written:
                out.unlink(missing_ok=True)
            targets = _targets(request)
        return {
            "ProjectName": request.project_name or self.project,
            "DatasetName": "",
            "RequestId": str(uuid.uuid4()).upper(),
            "StartTime": started,
            "EndTime": iso_ms(),
            "UserData": request.user_data or "",
            "TaskType": "MediaConvert",
            "TaskId": task_id,
            "Status": "Failed" if code else "Succeeded",
            "Code": code,
            "Message": message,
            "EventSourceId": "",
            "Sources": [{"URI": s.uri, "SubtitleSources": None} for s in request.sources],
            "Targets": targets,
        }

    def _locate(self, uri: str, *, output: bool = False) -> Path:
        """The file of ``uri`` in the local store: a source that exists, or an output whose folder does."""
        try:
            ref = ObjectRef.parse(uri, key_optional=True)
        except ValueError as exc:
            raise ServiceError(str(exc), code="InvalidArgument") from None
        path = self.store.path(ref.bucket, ref.key)  # a bad bucket or key: InvalidArgument
        if not (self.store.root / ref.bucket).is_dir():
            raise ServiceError(f"bucket {ref.bucket!r} of {uri} is not in the local store {self.store.root}",
                               code="ResourceNotFound")
        if output:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ServiceError(f"cannot write {uri}: {exc}", code="InvalidArgument") from exc
        elif not path.is_file():
            raise ServiceError(f"source {uri} does not exist ({path})", code="ResourceNotFound")
        return path

    def _event(self, request: ConvertRequest, content: dict[str, Any]) -> bytes:
        envelope = {
            "id": uuid.uuid4().hex.upper(),
            "source": "acs.imm",
            "type": "imm:Task:MediaConvert",
            "subject": f"acs:imm:local:{LOCAL_ACCOUNT}:{content['ProjectName']}/imm:Task:MediaConvert",
            "time": str(int(time.time() * 1000)),
            "content": json.dumps(content, ensure_ascii=False),
        }
        topic = request.notification.mns.topic_name if request.notification else "local"
        return mns_json_event(json.dumps(envelope, ensure_ascii=False), topic=topic)

    def _deliver(self, task_id: str, event: bytes) -> None:
        """Hand the result to the topic's subscriber, retried like MNS's BACKOFF_RETRY (3 more times, at
        fixed pauses: a plain exponential wait, no jitter)."""

        def failed(state: Any) -> None:
            log.error("delivering the result of %s failed (attempt %d)", task_id, state.attempt_number,
                      exc_info=state.outcome.exception())

        try:
            Retrying(stop=stop_after_attempt(DELIVERY_ATTEMPTS), after=failed, reraise=True,
                     wait=wait_exponential(multiplier=DELIVERY_BACKOFF))(self.notify, event)
        except Exception as exc:  # noqa: BLE001 - each failure was logged; the event is kept, not lost
            self.failed_deliveries.append(FailedDelivery(task_id, event, exc))


def _targets(request: ConvertRequest) -> list[dict[str, Any]]:
    """The result's Targets with only their URIs: what a failed task reports, and a done one fills in."""
    return [{
        "URI": "",
        "Subtitle": {"Extract": {"URI": ""}},
        "Image": {"Sprites": [{"URI": s.uri} for s in t.image.sprites] if t.image.sprites else None,
                  "Snapshots": None, "Animations": [{"URI": a.uri} for a in t.image.animations]},
    } for t in request.targets]


def _extras(result: Any) -> dict[str, Any]:
    """The engine's figures, under names IMM does not send (consumers treat them as optional)."""
    return {
        "Frames": result.frames,
        "Width": result.width,
        "Height": result.height,
        "Size": result.bytes,
        "Duration": result.duration,
        "SourceWidth": result.source_width,
        "SourceHeight": result.source_height,
        "Elapsed": round(result.elapsed, 3),
    }
