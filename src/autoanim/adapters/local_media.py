"""``MediaService`` on the local engine: what IMM does, offline (see ``docs/local.md``).

``submit`` returns a task id at once; the conversion runs on a bounded thread
pool (the engine isolates each job in its own worker process). When a task
ends, the result is published exactly as IMM would publish it to MNS (the
envelope of ``reference/alibaba-cloud.md`` section 2), wrapped as an FC MNS
topic trigger event in the JSON format, and handed to ``notify`` (the
composition root passes ``on_task_result``). A failed task leaves no output.
``Image.Sprites`` targets (the ``start: auto`` probe) are sprite sheets made by
``autoanim.engine.probe``, reported under ``Targets[].Image.Sprites[]``.

Task codes (IMM's own codes for these cases are unconfirmed; consumers should
treat any ``Failed`` status as final unless the code says otherwise):
- ``InvalidMedia``: the engine cannot read the source (``MediaError``); permanent.
- ``ResourceNotFound``: the source object or an output bucket does not exist; permanent.
- ``InvalidArgument``: a URI outside the local store or a request the engine cannot run; permanent.
- ``InternalError``: anything else (an engine bug, a crash); worth retrying.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, stop_after_attempt, wait_exponential

from ..convert_request import Animation, ConvertRequest
from ..errors import AutoanimError, MediaError, NotFound, ServiceError
from ..fc_events import LOCAL_ACCOUNT, iso_ms, mns_json_event
from ..objects import ObjectRef
from ..ports import FIND_SLACK
from .local_store import LocalObjectStore

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)


# Result deliveries to the subscriber (on_task_result): 1 + 3 retries, 0.5 s, 1 s, 2 s apart.
DELIVERY_ATTEMPTS = 4
DELIVERY_BACKOFF = 0.5

@dataclass(frozen=True)
class TaskInfo:
    """What the local media service knows of a task (as IMM's GetTask / ListTasks tell)."""

    task_id: str
    status: str  # Running | Succeeded | Failed
    code: str = ""
    message: str = ""
    user_data: str = ""
    start_time: str = ""
    end_time: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FailedDelivery:
    """A task result that ``notify`` did not accept; the event is kept so it can be delivered again."""

    task_id: str
    event: bytes
    error: BaseException


class _TaskFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class LocalMediaService:
    def __init__(
        self,
        store: LocalObjectStore,
        *,
        notify: Callable[[bytes], None],
        workers: int = 2,
        project: str = "local",
        region: str = "local",
        convert: Callable[..., Any] | None = None,
        quality: int | None = None,
        timeout: float | None = None,
        sheet: Callable[..., Any] | None = None,
    ):
        self._store = store
        self._notify = notify
        self._project = project
        self._region = region
        self._convert = convert
        self._sheet = sheet  # Image.Sprites targets (the start: auto probe); default: autoanim.engine.probe
        self._quality = quality
        self._timeout = timeout  # seconds per conversion; the engine kills its worker past it
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autoanim-local-media")
        self._tasks: dict[str, TaskInfo] = {}
        self._failed: list[FailedDelivery] = []
        self._pending = 0
        self._closed = False
        self._idle = threading.Condition()

    # --- the MediaService port ---------------------------------------------------------

    def submit(self, request: ConvertRequest) -> str:
        task_id = f"MediaConvert-{uuid.uuid4()}"
        with self._idle:
            if self._closed:
                raise ServiceError("the local media service is closed", retryable=True, code="ServiceClosed")
            self._pending += 1
            self._tasks[task_id] = TaskInfo(
                task_id=task_id, status="Running", user_data=request.user_data or "", start_time=iso_ms(),
                tags=dict(request.tags or {}), created_at=time.time(),
            )
            self._executor.submit(self._run, task_id, request)
        return task_id

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        """The earliest task of this process with all ``tags`` (tasks live as long as the process)."""
        with self._idle:
            for info in self._tasks.values():
                if tags and info.created_at >= since - FIND_SLACK and tags.items() <= info.tags.items():
                    return info.task_id
        return None

    # --- beyond the port ---------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskInfo:
        with self._idle:
            try:
                return self._tasks[task_id]
            except KeyError:
                raise NotFound(
                    f"no local media task {task_id!r}", code="ResourceNotFound", status=404
                ) from None

    def wait(self, timeout: float | None = None) -> bool:
        """True once every submitted task (and any task its notification submitted) is done and delivered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def failed_deliveries(self) -> list[FailedDelivery]:
        with self._idle:
            return list(self._failed)

    def close(self) -> None:
        """Waits for every task and its notification, then stops the workers."""
        self.wait()
        with self._idle:
            self._closed = True
        self._executor.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- a task ------------------------------------------------------------------------

    def _run(self, task_id: str, request: ConvertRequest) -> None:
        try:
            content = self._execute(task_id, request)
            event = self._event(request, content)
            with self._idle:
                self._tasks[task_id] = replace(
                    self._tasks[task_id],
                    status=content["Status"],
                    code=content["Code"],
                    message=content["Message"],
                    end_time=content["EndTime"],
                    extra={"Targets": content["Targets"]},
                )
            self._deliver(task_id, event)
        except Exception:  # a bug here must not leave wait() hanging; it is logged, not lost
            log.exception("local media task %s could not be completed", task_id)
            with self._idle:
                self._tasks[task_id] = replace(self._tasks[task_id], status="Failed", code="InternalError")
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _execute(self, task_id: str, request: ConvertRequest) -> dict[str, Any]:
        started = iso_ms()
        written: list[Path] = []
        targets: list[dict[str, Any]] = []
        status, code, message = "Succeeded", "", ""
        try:
            if len(request.sources) != 1:
                raise _TaskFailed("InvalidArgument", "the local engine converts exactly one source per task")
            source = request.source
            src = self._source_path(source.uri)
            for target in request.targets:
                done = []
                for animation in target.image.animations:
                    out = self._output_path(animation.uri)
                    result = self._engine(src, out, animation, source.start_time, source.duration)
                    written.append(out)
                    done.append({"URI": animation.uri, **_extras(result)})
                sheets = []
                for sprite in target.image.sprites or []:
                    out = self._output_path(sprite.uri)
                    sheet = self._sprite_sheet(src, out, sprite, source.start_time, source.duration)
                    written.append(out)
                    sheets.append({"URI": sprite.uri, "Tiles": sheet.tiles, "Width": sheet.width,
                                   "Height": sheet.height, "Size": sheet.bytes})
                targets.append(_target(done, sheets or None))
        except _TaskFailed as exc:
            status, code, message = "Failed", exc.code, exc.message
        except MediaError as exc:
            status, code, message = "Failed", "InvalidMedia", exc.message
        except AutoanimError as exc:
            # The store refusing a URI's bucket or key is the request's fault; anything else (an engine
            # timeout or crash) is IMM's InternalError, which the result function may resubmit.
            code = "InvalidArgument" if exc.code in ("InvalidObjectName", "InvalidBucketName") else "InternalError"
            status, message = "Failed", exc.message
        except Exception as exc:
            log.exception("local media task %s failed", task_id)
            status, code, message = "Failed", "InternalError", f"{type(exc).__name__}: {exc}"
        if status == "Failed":
            for out in written:
                out.unlink(missing_ok=True)
            targets = [_target([{"URI": a.uri} for a in t.image.animations],
                               [{"URI": s.uri} for s in t.image.sprites] if t.image.sprites else None)
                       for t in request.targets]
        return {
            "ProjectName": request.project_name or self._project,
            "DatasetName": "",
            "RequestId": str(uuid.uuid4()).upper(),
            "StartTime": started,
            "EndTime": iso_ms(),
            "UserData": request.user_data or "",
            "TaskType": "MediaConvert",
            "TaskId": task_id,
            "Status": status,
            "Code": code,
            "Message": message,
            "EventSourceId": "",
            "Sources": [{"URI": s.uri, "SubtitleSources": None} for s in request.sources],
            "Targets": targets,
        }

    def _engine(
        self, src: Path, out: Path, animation: Animation, start: float | None, duration: float | None
    ) -> Any:
        convert = self._convert
        if convert is None:
            from ..engine import convert
        return convert(src, out, animation, start=start, duration=duration, quality=self._quality,
                       timeout=self._timeout)

    def _sprite_sheet(self, src: Path, out: Path, sprite: Any, start: float | None, duration: float | None) -> Any:
        sheet = self._sheet
        if sheet is None:
            from ..engine.probe import sprite_sheet as sheet
        return sheet(src, out, sprite, start=start, duration=duration, timeout=self._timeout)

    def _locate(self, uri: str) -> Path:
        try:
            bucket, key = dict(ObjectRef.parse(uri, key_optional=True)).values()
        except ValueError as exc:
            raise _TaskFailed("InvalidArgument", str(exc)) from None
        path = self._store.path(bucket, key)  # a bad bucket or key: ServiceError → InvalidArgument
        if not (self._store.root / bucket).is_dir():
            raise _TaskFailed(
                "ResourceNotFound", f"bucket {bucket!r} of {uri} is not in the local store {self._store.root}"
            )
        return path

    def _source_path(self, uri: str) -> Path:
        path = self._locate(uri)
        if not path.is_file():
            raise _TaskFailed("ResourceNotFound", f"source {uri} does not exist ({path})")
        return path

    def _output_path(self, uri: str) -> Path:
        path = self._locate(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _TaskFailed("InvalidArgument", f"cannot write {uri}: {exc}") from exc
        return path

    def _event(self, request: ConvertRequest, content: dict[str, Any]) -> bytes:
        project = content["ProjectName"]
        envelope = {
            "id": uuid.uuid4().hex.upper(),
            "source": "acs.imm",
            "type": "imm:Task:MediaConvert",
            "subject": f"acs:imm:{self._region}:{LOCAL_ACCOUNT}:{project}/imm:Task:MediaConvert",
            "time": str(int(time.time() * 1000)),
            "content": json.dumps(content, ensure_ascii=False),
        }
        topic = request.notification.mns.topic_name if request.notification else "local"
        return mns_json_event(json.dumps(envelope, ensure_ascii=False), topic=topic)

    def _deliver(self, task_id: str, event: bytes) -> None:
        """Hand the result to the topic's subscriber, retried like MNS's BACKOFF_RETRY (3 more times).

        On tenacity, the adapters' one retry library (``autoanim.adapters.retry`` says why); MNS's
        pauses are fixed, so a plain exponential wait, no jitter.
        """

        def failed(state: Any) -> None:
            log.error("delivering the result of %s failed (attempt %d)", task_id, state.attempt_number,
                      exc_info=state.outcome.exception())

        try:
            retrying = Retrying(stop=stop_after_attempt(DELIVERY_ATTEMPTS), after=failed, reraise=True,
                                wait=wait_exponential(multiplier=DELIVERY_BACKOFF))
            retrying(self._notify, event)
        except Exception as exc:  # noqa: BLE001 - each failure was logged; the event is kept, not lost
            with self._idle:
                self._failed.append(FailedDelivery(task_id, event, exc))


def _target(animations: list[dict[str, Any]], sprites: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "URI": "",
        "Subtitle": {"Extract": {"URI": ""}},
        "Image": {"Sprites": sprites, "Snapshots": None, "Animations": animations},
    }


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
