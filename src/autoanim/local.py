"""The offline workflow (a folder is the bucket, the engine does what IMM does): ``LocalApp``, a local
upload and its results, a watched folder. Used by the command line, the demo and the tests; never in FC.

``autoanim watch``: every new complete file under ``<root>/<bucket>/`` (closed by its writer, or
unchanged for ``settle`` s) is one FC OSS PutObject event; what is ignored: docs/local.md."""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from . import handlers, log, objects, rules
from .errors import AutoanimError, ConfigError, MediaError, RuleError, ServiceError
from .fc_events import oss_event
from .reports import UploadReport
from .service import App

if TYPE_CHECKING:
    from .adapters.local_media import LocalMediaService
    from .adapters.local_store import LocalObjectStore


@dataclass
class LocalApp(App):
    """The app of the local backend: a folder store, and a media service with a lifecycle."""

    store: LocalObjectStore
    media: LocalMediaService

    def settle(self) -> None:
        self.media.wait()

    def close(self) -> None:
        self.media.close()


class Converted(BaseModel):
    """One output of a local upload, as its manifest tells."""

    output: str  # the file, or its URI while it has no manifest yet
    status: str
    manifest: str | None = None
    code: str = ""
    message: str = ""
    bytes: int | None = None
    billed_frames: int | None = None


class LocalUpload(UploadReport):
    """The upload function's report on the local upload, and what came of each clip."""

    upload: str
    results: list[Converted]

    @property
    def exit_code(self) -> int:
        """0 done, 2 a refused rule, 3 media that cannot be converted, 4 another failure."""
        if self.rejected:
            return RuleError.exit_code
        codes = {r.code for r in self.results if r.status != "Succeeded"}
        return MediaError.exit_code if MediaError.code in codes else ServiceError.exit_code if codes else 0


def upload(app: LocalApp, src: Path, bucket: str, key: str, tags: dict[str, str]) -> LocalUpload:
    """Put a file in a local bucket as OSS would, run the upload function on its event, wait for results."""
    rules.check_tags(tags, "--tags")
    if not src.is_file():
        raise ConfigError(f"{src}: no such file")
    info = app.store.put_file(bucket, key, src, tags=tags)
    report = handlers.upload(app, oss_event(bucket, key, size=info.size, etag=info.etag))
    app.settle()
    return LocalUpload(upload=objects.uri(bucket, key), **dict(report), results=results(app, report))


def results(app: LocalApp, report: UploadReport) -> list[Converted]:
    """The manifests of the outputs an upload submitted (or found made by an earlier run)."""
    found = []
    for clip in report.submitted + report.duplicates:
        out = objects.ObjectRef.parse(clip.output)
        bucket, key, manifest_key = out.bucket, out.key, out.key + objects.MANIFEST_SUFFIX
        try:
            manifest = json.loads(app.store.read(bucket, manifest_key, 1 << 20))
        except AutoanimError:
            found.append(Converted(output=clip.output, status="no manifest yet"))
            continue
        found.append(Converted(output=str(app.store.path(bucket, key)), status=manifest["status"],
                               manifest=str(app.store.path(bucket, manifest_key)), code=manifest["code"],
                               message=manifest["message"], bytes=manifest["output"]["bytes"],
                               billed_frames=manifest["billed_frames_estimate"]))
    return found


def watch(app: LocalApp, *, grace: float, stop: threading.Event | None = None,
          ready: threading.Event | None = None) -> None:
    """Every new complete file under the local root is an upload event (until ``stop``); a video waits
    ``grace`` s for its sidecar (dropped files carry no ``anim=sidecar`` tag), so either order works."""
    from .events import parse_oss_event

    def upload(event: bytes) -> None:
        try:
            handlers.upload(app, event)
        except AutoanimError as exc:
            log.event("watch.error", 40, reason=exc.message, retryable=exc.retryable)

    def waits(bucket: str, key: str) -> bool:
        return objects.is_video_key(key) and not app.store.exists(bucket, key + objects.SIDECAR_SUFFIX)

    def on_event(event: bytes) -> None:
        if grace > 0 and any(waits(r.bucket, r.key) for _, r in parse_oss_event(event).records):
            timer = threading.Timer(grace, upload, args=(event,))
            timer.daemon = True
            timer.start()
        else:
            upload(event)

    watch_folder(app.store, on_event, stop=stop, ready=ready, ignore_prefixes=(app.settings.output_prefix,),
                 on_error=lambda exc: log.event("watch.error", 40, reason=str(exc)))


def watch_folder(store: LocalObjectStore, handle: Callable[[bytes], None], *, settle: float = 0.5,
                 on_error: Callable[[Exception], None], stop: threading.Event | None = None,
                 ignore_prefixes: tuple[str, ...] = (), ready: threading.Event | None = None) -> None:
    """Blocks until ``stop`` is set, calling ``handle(event_bytes)`` on this thread, one file at a time;
    a failure goes to ``on_error`` and the watch goes on. ``ready`` is set once the folder is watched."""
    from watchdog.observers import Observer

    # watchdog 7 warns when a new folder's watch is registered twice (its own race; harmless).
    warnings.filterwarnings("ignore", "Callback with id", RuntimeWarning, "watchdog.observers.inotify")
    stop = stop or threading.Event()
    tracker = _Tracker(store, settle, ignore_prefixes)
    store.root.mkdir(parents=True, exist_ok=True)
    observer = Observer()
    observer.schedule(tracker, str(store.root), recursive=True)
    observer.start()
    if ready is not None:
        ready.set()
    try:
        while not stop.wait(max(0.01, min(0.1, settle / 4))):
            for bucket, key in tracker.ready(time.monotonic()):
                try:
                    info = store.head(bucket, key)
                    handle(oss_event(bucket, key, size=info.size, etag=info.etag))
                except Exception as exc:  # noqa: BLE001 - reported; the watch goes on
                    on_error(exc)
    finally:
        observer.stop()
        observer.join()


@dataclass
class _Candidate:
    obj: tuple[str, str]  # (bucket, key)
    closed: bool
    signature: tuple[int, int] | None = None  # (size, mtime_ns)
    since: float = 0.0


class _Tracker:
    """Collects watchdog events (on the observer's thread) and says which files are complete."""

    def __init__(self, store: LocalObjectStore, settle: float, ignore_prefixes: tuple[str, ...]):
        self._store = store
        self._settle = settle
        self._ignore_prefixes = ignore_prefixes
        self._lock = threading.Lock()
        self._candidates: dict[str, _Candidate] = {}
        self._handled: dict[str, tuple[int, int]] = {}  # the signature each path was handled at

    def dispatch(self, event: Any) -> None:
        """watchdog's handler interface (duck-typed, so watchdog is imported only by ``watch``)."""
        kind = event.event_type
        path = os.fsdecode(event.dest_path if kind == "moved" else event.src_path)
        if event.is_directory:
            if kind in ("created", "moved"):  # files may land before the new folder is watched
                for folder, _, names in os.walk(path):
                    for name in names:
                        self._note(os.path.join(folder, name), closed=False)
        elif kind in ("created", "modified", "moved", "closed"):
            self._note(path, closed=kind == "closed")

    def _note(self, path: str, *, closed: bool) -> None:
        try:
            bucket, key = self._store.key_for(path)
        except (ValueError, ServiceError):
            return  # outside a bucket folder, the .autoanim tree, or a name the store refuses
        if key.startswith(self._ignore_prefixes) or any(part.startswith(".") for part in key.split("/")):
            return
        with self._lock:
            candidate = self._candidates.setdefault(path, _Candidate((bucket, key), closed))
            candidate.closed = closed  # written again after a close: wait for the next close or settle

    def ready(self, now: float) -> list[tuple[str, str]]:
        """The complete files not handled yet, oldest event first; each is marked handled."""
        found = []
        with self._lock:
            for path, candidate in list(self._candidates.items()):
                try:
                    stat = os.stat(path)
                except OSError:
                    del self._candidates[path]  # removed or renamed away before it settled
                    continue
                signature = (stat.st_size, stat.st_mtime_ns)
                if self._handled.get(path) == signature:
                    del self._candidates[path]
                elif candidate.closed or (signature == candidate.signature
                                          and now - candidate.since >= self._settle):
                    del self._candidates[path]
                    self._handled[path] = signature
                    found.append(candidate.obj)
                elif signature != candidate.signature:
                    candidate.signature, candidate.since = signature, now
        return found
