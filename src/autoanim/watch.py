"""``autoanim watch``: every new complete file under ``<root>/<bucket>/`` is one FC OSS PutObject event.

Complete: closed by its writer (inotify close-write), or unchanged for ``settle`` seconds. What is
ignored and why: docs/local.md, "autoanim watch".
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .adapters.local_store import LocalObjectStore
from .errors import ServiceError
from .fc_events import oss_event

Signature = tuple[int, int]  # (size, mtime_ns)


def watch(store: LocalObjectStore, handle: Callable[[bytes], None], *, on_error: Callable[[Exception], None],
          stop: threading.Event | None = None, settle: float = 0.5, ignore_prefixes: tuple[str, ...] = (),
          ready: threading.Event | None = None) -> None:
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
    closed: bool
    signature: Signature | None = None
    since: float = 0.0


class _Tracker:
    """Collects watchdog events (on the observer's thread) and says which files are complete."""

    def __init__(self, store: LocalObjectStore, settle: float, ignore_prefixes: tuple[str, ...]):
        self._store = store
        self._settle = settle
        self._ignore_prefixes = tuple(ignore_prefixes)
        self._lock = threading.Lock()
        self._candidates: dict[str, _Candidate] = {}
        self._handled: dict[str, Signature] = {}

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
        if self._object(path) is None:
            return
        with self._lock:
            candidate = self._candidates.setdefault(path, _Candidate(closed=closed))
            candidate.closed = closed  # written again after a close: wait for the next close or settle

    def _object(self, path: str) -> tuple[str, str] | None:
        try:
            bucket, key = self._store.key_for(path)
        except (ValueError, ServiceError):
            return None  # outside a bucket folder, the .autoanim tree, or a name the store refuses
        if key.startswith(self._ignore_prefixes) or any(part.startswith(".") for part in key.split("/")):
            return None
        return bucket, key

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
                    found.append(self._object(path))
                elif signature != candidate.signature:
                    candidate.signature, candidate.since = signature, now
        return [obj for obj in found if obj is not None]
