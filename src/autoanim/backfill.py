"""``autoanim backfill``: list, plan each video as ``on_upload`` would (``service.plan_video``), bill,
and with ``--submit`` hand each to ``on_upload`` (README "Backfill", docs/local.md). Sidecars are known
from the listing, so only tags are read per video; the claims folder is listed once per output bucket;
the checkpoint is the last key before which everything was handled (``--resume`` loses nothing)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import claims, handlers, log, objects, planner, service
from .errors import AutoanimError, ConfigError
from .fc_events import iso_ms, oss_event
from .planner import PlannedTask
from .ports import ObjectInfo

# OSS storage classes that must be restored before anything reads them (IA is readable, at a retrieval fee).
ARCHIVED = frozenset({"Archive", "ColdArchive", "DeepColdArchive"})
CHECKPOINT_EVERY = 2.0  # seconds between checkpoint writes (and at the end)


def task_id(video: ObjectInfo, tasks: Iterable[PlannedTask] = ()) -> str:
    """FC's async task id of one video's hand-over, of (bucket, key, ETag) and the planned clips: FC refuses
    a repeat (409), a re-upload or new rules make a new one. 73 characters (FC allows 128)."""
    identity = json.dumps([video.bucket, video.key, video.etag, sorted(t.idempotency_key for t in tasks)],
                          ensure_ascii=False, separators=(",", ":"))
    return "autoanim-" + hashlib.sha256(identity.encode()).hexdigest()


@dataclass(frozen=True)
class Listed:
    info: ObjectInfo
    sidecar: bool | None = None  # for a video: whether ``<key>.anim.json`` is in the listing


def with_sidecars(listing: Iterable[ObjectInfo]) -> Iterator[Listed]:
    """The listing in its own order, each video told whether its sidecar was listed (no probe): a video
    is held (with what follows it, to keep the order) until the listing passes its sidecar's key."""
    held: deque[ObjectInfo] = deque()
    sidecars: set[str] = set()

    def release(now: str | None) -> Iterator[Listed]:
        while held:
            head = held[0]
            video = objects.is_video_key(head.key)
            if video and now is not None and now < head.key + objects.SIDECAR_SUFFIX:
                return
            held.popleft()
            if objects.is_sidecar_key(head.key):
                sidecars.discard(head.key)
            yield Listed(head, (head.key + objects.SIDECAR_SUFFIX) in sidecars if video else None)

    for info in listing:
        if objects.is_sidecar_key(info.key):
            sidecars.add(info.key)
        yield from release(info.key)
        held.append(info)
    yield from release(None)


@dataclass
class Outcome:
    """What became of one listed object."""

    key: str
    kind: str  # "video" | "skipped" | "rejected" | "failed" | "held"
    reason: str = ""
    tasks: list[PlannedTask] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    handed: str = ""  # "accepted" | "duplicate" | "" (not handed over)
    video: bool = True  # a video (by extension, not ours), whatever its rules said


class HandOvers:
    """At most ``limit`` hand-overs (None: any), ``rate`` a second evenly spaced (0: any); thread-safe."""

    def __init__(self, limit: int | None, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._left = limit
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """False once the limit is spent; else True, when the next slot has come."""
        with self._lock:
            if self._left is not None:
                if self._left <= 0:
                    return False
                self._left -= 1
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)
        return True

    @property
    def spent(self) -> bool:
        return self._left is not None and self._left <= 0


# Hands one video (and the clips planned for it) over; returns "accepted" or "duplicate".
Submit = Callable[[ObjectInfo, list[PlannedTask]], str]


def fc_submitter(invoker: Any, region: str) -> Submit:
    """One asynchronous FC invocation of ``on_upload`` per video, with an OSS ObjectCreated event."""

    def submit(video: ObjectInfo, tasks: list[PlannedTask]) -> str:
        body = oss_event(video.bucket, video.key, size=video.size, etag=video.etag, region=region)
        return invoker.invoke_async(body, task_id(video, tasks)).status

    return submit


def in_process_submitter(app: service.App) -> Submit:
    """``on_upload``'s work here, on the event FC would deliver (``--via direct``, a local folder bucket)."""

    def submit(video: ObjectInfo, tasks: list[PlannedTask]) -> str:
        event = oss_event(video.bucket, video.key, size=video.size, etag=video.etag)
        handlers.upload(app, event)  # raises RetryLater: retryable
        return "accepted"

    return submit


def judge(app: service.App, item: Listed, done: Callable[[PlannedTask], bool], submit: Submit | None,
          gate: HandOvers) -> Outcome:
    """Plan one listed object with on_upload's own planning; hand it over when asked and needed."""
    info, settings = item.info, app.settings
    if objects.is_ours(info.key, settings.output_prefix):
        return Outcome(info.key, "skipped", "autoanim's own output, manifest or claim", video=False)
    if objects.is_sidecar_key(info.key):
        video = objects.is_video_key(objects.video_of_sidecar(info.key))
        return Outcome(info.key, "skipped", "sidecar (planned with its video)" if video
                       else "sidecar of something that is not a video", video=False)
    if not objects.is_video_key(info.key):
        return Outcome(info.key, "skipped", "not a video (by extension)", video=False)
    if info.storage_class in ARCHIVED and not info.restored:
        return Outcome(info.key, "skipped", f"storage class {info.storage_class}: restore it first "
                       "(IMM cannot read an archived object)")
    try:
        tasks = service.plan_video(app, info, sidecar=item.sidecar)
        if isinstance(tasks, str):
            return Outcome(info.key, "skipped", tasks)
        finished = [done(task) for task in tasks]
    except AutoanimError as exc:
        return Outcome(info.key, "failed" if exc.retryable else "rejected", exc.message)
    outcome = Outcome(info.key, "video", tasks=tasks, done=finished)
    if submit is None or all(finished):
        return outcome
    if not gate.take():
        outcome.kind = "held"
        return outcome
    try:
        outcome.handed = submit(info, tasks)
    except AutoanimError as exc:
        if not exc.retryable:  # a missing function, a permission: every other video would fail alike
            raise
        outcome.kind, outcome.reason = "failed", exc.message
    return outcome


@dataclass
class Summary:
    source: str
    mode: str  # "dry-run" | "submit"
    via: str
    objects: int = 0
    videos: int = 0
    videos_with_clips: int = 0
    clips: int = 0
    clips_done: int = 0
    billed_frames_total: int = 0
    billed_frames_done: int = 0
    billed_frames: defaultdict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    skipped: Counter = field(default_factory=Counter)
    rejected: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    to_submit: int = 0
    invoked: int = 0
    duplicates: int = 0
    skipped_done: int = 0
    held: int = 0
    tasks: list[dict[str, Any]] = field(default_factory=list)
    resumed_after: str | None = None
    last_key: str | None = None
    complete: bool = False
    interrupted: bool = False
    claims_listed: int = 0
    seconds: float = 0.0

    def add(self, outcome: Outcome, keep_tasks: bool) -> None:
        self.objects += 1
        self.videos += outcome.video
        if outcome.kind == "skipped":
            self.skipped[outcome.reason] += 1
        elif outcome.kind in ("rejected", "failed"):
            problems = self.rejected if outcome.kind == "rejected" else self.failed
            problems.append({"key": outcome.key, "reason": outcome.reason})
        if not outcome.tasks:  # skipped, rejected, or failed before it was planned
            return
        self.videos_with_clips += 1
        self.clips += len(outcome.tasks)
        for task, finished in zip(outcome.tasks, outcome.done):
            origin, _, profile = task.rule.origin.partition("+profile:")
            if finished:
                self.clips_done += 1
                self.billed_frames_done += task.billed_frames
            else:
                self.billed_frames_total += task.billed_frames
                self.billed_frames[origin][profile or "(no profile)"] += task.billed_frames
            if keep_tasks:
                self.tasks.append({"source": task.source.uri, "etag": task.source.etag, "output": task.output_uri,
                                   "idempotency_key": task.idempotency_key, "origin": origin,
                                   "profile": profile or None, "billed_frames": task.billed_frames,
                                   "done": finished, "request": task.request.wire()})
        if all(outcome.done):
            self.skipped_done += 1
        else:
            self.to_submit += 1
        self.held += outcome.kind == "held"
        self.invoked += outcome.handed == "accepted"
        self.duplicates += outcome.handed == "duplicate"

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "tasks"}
        data["skipped"] = dict(sorted(self.skipped.items(), key=lambda kv: -kv[1]))
        data["skipped_objects"] = sum(self.skipped.values())
        data["seconds"] = round(self.seconds, 3)
        data["objects_per_second"] = round(self.objects / self.seconds, 1) if self.seconds else None
        data["tasks"] = self.tasks
        return data


@dataclass
class Checkpoint:
    """The last key before which everything was handled, in a small JSON file (written atomically)."""

    path: Path
    source: str
    via: str
    function: str

    @classmethod
    def of(cls, path: str | None, bucket: str, *, source: str, via: str, function: str) -> Checkpoint:
        """At ``path``, else ``./.autoanim-backfill/<bucket>-<hash of source, via, function>.json``."""
        digest = hashlib.sha256(json.dumps([source, via, function]).encode()).hexdigest()[:16]
        return cls(Path(path or f".autoanim-backfill/{bucket}-{digest}.json"), source=source, via=via,
                   function=function)

    def load(self) -> str:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--resume: no checkpoint at {self.path}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--resume: checkpoint {self.path} is unreadable ({exc})") from exc
        mine = {"source": self.source, "via": self.via, "function": self.function}
        theirs = {k: data.get(k) for k in mine}
        if theirs != mine:
            raise ConfigError(f"--resume: checkpoint {self.path} is for {theirs}, not {mine}")
        return data.get("last_key") or ""

    def save(self, last_key: str | None, complete: bool) -> None:
        body = {"v": 1, "source": self.source, "via": self.via, "function": self.function,
                "last_key": last_key, "complete": complete, "updated_at": iso_ms()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temp, self.path)


def run(app: service.App, bucket: str, prefix: str, *, source: str, via: str, submit: Submit | None = None,
        workers: int = 16, rate: float = 0.0, limit: int | None = None, start_after: str = "",
        checkpoint: Checkpoint | None = None, keep_tasks: bool = True,
        progress: Callable[[Summary], None] | None = None, stop: threading.Event | None = None) -> Summary:
    """List, plan and (with ``submit``) hand over every video under ``prefix``, in listing order, at most
    ``4 * workers`` objects in flight; a permanent hand-over failure is raised after the checkpoint."""
    summary = Summary(source=source, mode="submit" if submit else "dry-run", via=via,
                      resumed_after=start_after or None)
    gate, lock = HandOvers(limit, rate), threading.Lock()
    known: dict[str, set[str]] = {}  # the claims folder of each output bucket, listed once

    def done(task: PlannedTask) -> bool:  # whether a clip's claim is final
        with lock:
            if task.output_bucket not in known:
                folder = app.settings.output_prefix + planner.CLAIMS_FOLDER
                known[task.output_bucket] = {o.key for o in app.store.list(task.output_bucket, folder)}
        return claims.handled(task.claim_key, known[task.output_bucket])

    started = time.monotonic()
    frontier = True  # every object so far was handled: the checkpoint may move
    saved_at = started

    def take(future: Future) -> None:
        nonlocal frontier, saved_at
        outcome = future.result()
        summary.add(outcome, keep_tasks)
        if outcome.kind == "failed":  # said as it happens (stderr); the summary lists them all
            log.event("backfill.failed", 30, key=outcome.key, reason=outcome.reason)
        if frontier and outcome.kind not in ("failed", "held"):  # nothing left to do: the checkpoint moves
            summary.last_key = outcome.key
        else:
            frontier = False
        if progress is not None:
            progress(summary)
        if checkpoint is not None and time.monotonic() - saved_at >= CHECKPOINT_EVERY:
            checkpoint.save(summary.last_key or start_after or None, complete=False)
            saved_at = time.monotonic()

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill")
    pending: deque[Future] = deque()
    finished = False
    try:
        for item in with_sidecars(app.store.list(bucket, prefix, start_after)):
            pending.append(pool.submit(judge, app, item, done, submit, gate))
            while pending and (len(pending) >= 4 * workers or pending[0].done()):
                take(pending.popleft())
            if gate.spent or (stop is not None and stop.is_set()):
                break
        else:
            finished = True
        while pending:
            take(pending.popleft())
    except KeyboardInterrupt:  # Ctrl-C: nothing new starts, what is in flight finishes and is counted
        summary.interrupted = True
        for future in pending:
            future.cancel()
        while pending:
            future = pending.popleft()
            if future.cancelled():
                frontier = False  # not judged: the checkpoint stays before it
                continue
            take(future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        summary.seconds = time.monotonic() - started
        summary.claims_listed = sum(map(len, known.values()))
        summary.complete = finished and frontier and not pending
        if checkpoint is not None:
            checkpoint.save(summary.last_key or start_after or None, complete=summary.complete)
    return summary
