"""A deterministic world for the claim protocol: every port call can fail, every invocation can die.

The world runs the real handlers (``index.on_upload``, ``index.on_task_result``)
on the in-memory store and a simulated IMM, on a virtual clock. A ``Faults``
script names port calls (by their number in the run, or by name and
occurrence) and what happens at each:

- ``before``: a retryable error before the call's effect (throttling, a 503);
- ``after``: the effect happens, then a retryable error that says so (the
  answer lost: a read timeout, a reset, a 5xx after IMM made the task);
- ``crash_before`` / ``crash_after``: the invocation ends there (killed, out
  of memory, FC's timeout), before or after the effect.

FC redelivers a failed invocation as s.yaml configures it
(``maxAsyncRetryAttempts`` more times, 1, 2, 4... seconds apart) and ends an
invocation at its function's timeout; the MNS trigger invokes ``on_task_result``
asynchronously, so its failures are redelivered the same way. IMM makes each
task, finishes it some seconds later and publishes its result, once or twice,
late, or before the submit call has even returned.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

import index
from autoanim import log, planner
from autoanim.adapters.memory import MemoryObjectStore
from autoanim.claims import Claim, Outcome
from autoanim.config import Settings
from autoanim.convert_request import ConvertRequest
from autoanim.errors import AutoanimError, ServiceError
from autoanim.fc_events import mns_json_event, oss_event
from autoanim.objects import ObjectRef
from autoanim.planner import PROBE, TAG_ATTEMPT, TAG_CLAIM, TaskUserData
from autoanim.service import App

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "sim-bucket"
KINDS = ("before", "after", "crash_before", "crash_after")
CALL_SECONDS = 0.01  # virtual time each port call takes
TASK_SECONDS = 5.0  # how long IMM takes to make an animation
HORIZON = 6 * 3600.0  # nothing in a flow is still pending after this


def _deployed() -> dict[str, Any]:
    """What s.yaml configures: the functions' timeouts and FC's async retries."""
    spec = yaml.safe_load((ROOT / "s.yaml").read_text())
    template = spec["template"]["autoanim_function"]
    resources = spec["resources"]
    return {
        "retries": template["asyncInvokeConfig"]["maxAsyncRetryAttempts"],
        "upload_timeout": resources["on_upload"]["props"]["timeout"],
        "result_timeout": resources["on_task_result"]["props"]["timeout"],
    }


DEPLOYED = _deployed()


class Crash(BaseException):
    """The invocation ends here: nothing after this point of it runs (not an ``Exception``: no handler
    catches it, exactly as none survives a killed process)."""


@dataclass
class Faults:
    """The fault script: ``{call number or (call name, occurrence): kind}``, and the log of calls."""

    script: dict[Any, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)
    injected: list[tuple[int, str, str]] = field(default_factory=list)

    def call(self, world: World, name: str, effect: Callable[[], Any]) -> Any:
        number = len(self.calls)
        self.calls.append(name)
        occurrence = self.seen[name]
        self.seen[name] += 1
        kind = self.script.get(number) or self.script.get((name, occurrence))
        world.clock += CALL_SECONDS
        if kind:
            self.injected.append((number, name, kind))
        if kind == "before":
            raise ServiceError(f"injected: {name} failed before its effect", retryable=True, code="Injected")
        if kind == "crash_before":
            raise Crash(f"killed before {name}")
        result = effect()
        if kind == "after":
            raise ServiceError(f"injected: {name}'s answer lost after its effect", retryable=True,
                               code="Injected", ambiguous=True)
        if kind == "crash_after":
            raise Crash(f"killed after {name}")
        return result


class FaultyStore:
    """The ``ObjectStore`` port over the world's store, every call through the fault script."""

    def __init__(self, world: World):
        self._world = world

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in ("head", "get_tags", "put_tags", "read", "put", "create", "exists", "list"):
            raise AttributeError(name)
        method = getattr(self._world.store, name)
        if name == "list":  # a listing's effect is the pages it reads: read them within the call
            return lambda *args, **kwargs: iter(self._world.faults.call(
                self._world, "store.list", lambda: list(method(*args, **kwargs))))
        return lambda *args, **kwargs: self._world.faults.call(
            self._world, f"store.{name}", lambda: method(*args, **kwargs))


class FaultyMedia:
    """The ``MediaService`` port over the simulated IMM, every call through the fault script."""

    def __init__(self, world: World):
        self._world = world

    def submit(self, request: ConvertRequest) -> str:
        return self._world.faults.call(self._world, "media.submit", lambda: self._world.imm.submit(request))

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        return self._world.faults.call(self._world, "media.find_task",
                                       lambda: self._world.imm.find_task(tags, since=since))


@dataclass
class SimTask:
    task_id: str
    request: ConvertRequest
    created_at: float


class SimImm:
    """IMM as the protocol sees it: tasks with tags, ListTasks, results published to MNS."""

    def __init__(self, world: World, *, fail_first: bool, copies: int, delay: float, early: bool,
                 fail_probe: bool = False, bytes_per_pixel_frame: float | None = None):
        self._world = world
        self.fail_probe = fail_probe
        # Outputs of this many bytes per output pixel-frame (else a few bytes): a scaled attempt is smaller.
        self.bytes_per_pixel_frame = bytes_per_pixel_frame
        self.tasks: dict[str, SimTask] = {}
        self.fail_first = fail_first  # attempt 0 fails with a transient code, later attempts succeed
        self.copies, self.delay, self.early = copies, delay, early

    def submit(self, request: ConvertRequest) -> str:
        world = self._world
        task_id = f"MediaConvert-{len(self.tasks) + 1:04d}"
        self.tasks[task_id] = SimTask(task_id, request, world.clock)
        data = TaskUserData.parse(request.user_data or "")
        failed = self.fail_first and data is not None and data.attempt == 0
        sprites = request.targets[0].image.sprites
        failed = failed or bool(sprites and self.fail_probe)
        if sprites and not failed:  # a start: auto probe: IMM writes the sprite sheet
            out = ObjectRef.parse(sprites[0].uri)
            world.store.put(out.bucket, out.key, probe_sheet(sprites[0]))
        elif not failed:  # IMM writes the output of a successful task
            out = ObjectRef.parse(request.animation.uri)
            world.store.put(out.bucket, out.key, self.output(request))
        status, code = ("Failed", "InternalError") if failed else ("Succeeded", "")
        event = result_event(request, task_id, status, code)
        for copy in range(self.copies):
            world.schedule(world.clock + self.delay + copy * 30.0, "result", event)
        if self.early:  # the notification is handled before this call returns
            world.invoke("result", event, attempt=0)
        return task_id

    def output(self, request: ConvertRequest) -> bytes:
        body = b"GIF89a animation"
        if self.bytes_per_pixel_frame is None:
            return body
        a = request.animation
        size = int(self.bytes_per_pixel_frame * a.number * a.width * a.height)
        return body + bytes(max(0, size - len(body)))

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        for task in self.tasks.values():
            if tags and tags.items() <= (task.request.tags or {}).items():
                return task.task_id
        return None


MOVING_TILES = range(40, 50)  # where the probe's sheet shows motion: tiles 40-49


def probe_sheet(sprite: Any) -> bytes:
    """A sheet whose tiles are still but for ``MOVING_TILES`` (noise that changes every tile)."""
    import numpy as np

    from autoanim import activity

    rng = np.random.RandomState(7)
    still = np.full((int(sprite.scale_height), int(sprite.scale_width), 3), 90, np.uint8)
    tiles = [rng.randint(0, 255, still.shape).astype(np.uint8) if k in MOVING_TILES else still
             for k in range(sprite.number)]
    return activity.make_sheet(tiles, columns=sprite.tile_width, margin=sprite.margin, pad=sprite.pad)


def result_event(request: ConvertRequest, task_id: str, status: str, code: str) -> bytes:
    image = request.targets[0].image
    outputs = {"Sprites": [{"URI": s.uri} for s in image.sprites]} if image.sprites else \
        {"Animations": [{"URI": request.animation.uri}]}
    content = {"ProjectName": request.project_name, "TaskId": task_id, "TaskType": "MediaConvert",
               "Status": status, "Code": code, "Message": "injected" if code else "",
               "UserData": request.user_data, "StartTime": "", "EndTime": "", "Targets": [{"Image": outputs}]}
    envelope = {"id": task_id, "source": "acs.imm", "type": "imm:Task:MediaConvert", "subject": "sim",
                "time": "0", "content": json.dumps(content)}
    return mns_json_event(json.dumps(envelope), topic="sim-topic")


@dataclass(frozen=True)
class Flow:
    """One upload scenario: what is in the bucket, which events arrive, and what must come of it."""

    name: str
    objects: dict[str, tuple[bytes, dict[str, str]]]
    events: tuple[str, ...]  # keys whose ObjectCreated events are delivered, in order (repeats allowed)
    clips: int  # claims (object version, rule) that must end done
    attempts: int = 1  # tasks each clip must end with (a failed first task is resubmitted once)
    fail_first: bool = False
    rejected: tuple[str, ...] = ()  # keys whose rules are refused: nothing may be submitted for them
    auto: bool = False  # start: auto: a probe task first, then the animation from the start it picks
    probe_fails: bool = False  # the probe task fails: the animation starts at 0, and says why
    # IMM's outputs take this many bytes per pixel-frame: the first is over the rule's cap, the
    # size retry's (scaled down by the ratio measured) is under it
    bytes_per_pixel_frame: float | None = None


SIDECAR = json.dumps({"animations": [{"name": "intro", "duration": 2, "fps": 5},
                                     {"name": "loop", "start": 3, "duration": 1, "fps": 5}]}).encode()
VIDEO = b"\x00\x00\x00\x18ftypmp42 sim video"
FLOWS = {
    "plain": Flow("plain", {"videos/a.mp4": (VIDEO, {"anim-duration": "2", "anim-fps": "5"})},
                  ("videos/a.mp4",), clips=1),
    "gif+webp": Flow("gif+webp", {"videos/b.mp4": (VIDEO, {"anim-format": "gif+webp", "anim-duration": "2"})},
                     ("videos/b.mp4",), clips=2),
    "sidecar": Flow("sidecar", {"videos/c.mp4": (VIDEO, {}), "videos/c.mp4.anim.json": (SIDECAR, {})},
                    ("videos/c.mp4", "videos/c.mp4.anim.json"), clips=2),
    "resubmit": Flow("resubmit", {"videos/d.mp4": (VIDEO, {"anim-duration": "2"})}, ("videos/d.mp4",),
                     clips=1, attempts=2, fail_first=True),
    "auto": Flow("auto", {"videos/g.mp4": (VIDEO, {"anim-start": "auto", "anim-duration": "2"})},
                 ("videos/g.mp4",), clips=1, auto=True),
    "auto-probe-fails": Flow("auto-probe-fails", {"videos/h.mp4": (VIDEO, {"anim-start": "auto"})},
                             ("videos/h.mp4",), clips=1, auto=True, probe_fails=True),
    "over-cap": Flow("over-cap", {"videos/i.mp4": (VIDEO, {"anim-target": "email"})}, ("videos/i.mp4",),
                     clips=1, attempts=2, bytes_per_pixel_frame=1.0),  # the size model says 0.73 for GIF
    "rejected": Flow("rejected", {"videos/e.mp4": (VIDEO, {"anim-fps": "1000"}),
                                  "videos/f.mp4": (VIDEO, {"anim-duration": "1"})},
                     ("videos/e.mp4", "videos/f.mp4"), clips=1, rejected=("videos/e.mp4",)),
}


class World:
    def __init__(self, flow: Flow, script: dict[Any, str] | None = None, *, copies: int = 1,
                 delay: float = TASK_SECONDS, early: bool = False, duplicate_uploads: bool = False):
        self.flow = flow
        self.faults = Faults(dict(script or {}))
        self.clock = 1_764_000_000.0
        self.store = MemoryObjectStore()
        self.imm = SimImm(self, fail_first=flow.fail_first, copies=copies, delay=delay, early=early,
                          fail_probe=flow.probe_fails, bytes_per_pixel_frame=flow.bytes_per_pixel_frame)
        self.settings = Settings(backend="imm", imm_project="sim-project", imm_notify_topic="sim-topic",
                                 max_resubmits=2)
        self.queue: list[tuple[float, int, str, bytes, int]] = []
        self.dead: list[tuple[str, bytes, str]] = []  # events FC gave up on (the dead-letter topic)
        self.unexpected: list[BaseException] = []
        self.invocations = Counter()
        self._seq = 0
        self._deadlines: list[float] = []
        for key, (data, tags) in flow.objects.items():
            self.store.add(BUCKET, key, data, tags)
        for key in flow.events + (flow.events if duplicate_uploads else ()):
            info = self.store.head(BUCKET, key)
            self.schedule(self.clock, "upload", oss_event(BUCKET, key, size=info.size, etag=info.etag))

    # --- FC ----------------------------------------------------------------------------------

    def schedule(self, at: float, kind: str, event: bytes, attempt: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self.queue, (at, self._seq, kind, event, attempt))

    def run(self) -> World:
        log.setup()  # (the handlers' own setup keeps the level chosen here)
        logging.getLogger("autoanim").setLevel(logging.CRITICAL)
        try:
            while self.queue:
                at, _, kind, event, attempt = heapq.heappop(self.queue)
                if at > self.clock + HORIZON:
                    raise AssertionError(f"{self.flow.name}: an event still pending after {HORIZON:g} s")
                self.clock = max(self.clock, at)
                self.invoke(kind, event, attempt)
        finally:
            logging.getLogger("autoanim").setLevel(logging.INFO)
        return self

    def invoke(self, kind: str, event: bytes, attempt: int) -> None:
        """One invocation of a handler; a failure is redelivered as FC's async retry would."""
        timeout = DEPLOYED["upload_timeout" if kind == "upload" else "result_timeout"]
        deadline = self.clock + timeout
        self._deadlines.append(deadline)
        self.invocations[kind] += 1
        app = App(settings=self.settings, store=FaultyStore(self), media=FaultyMedia(self),
                  clock=lambda: self.clock, sleep=self._sleep,
                  time_left=lambda: deadline - 5.0 - self.clock, kill_margin=5.0)
        handler = index.on_upload if kind == "upload" else index.on_task_result
        context = SimpleNamespace(request_id=f"sim-{self._seq}", credentials=None,
                                  function=SimpleNamespace(timeout=timeout))
        try:
            handler(event, context, app=app)
        except (Crash, AutoanimError) as exc:
            self._retry(kind, event, attempt, exc)
        except Exception as exc:  # noqa: BLE001 - a bug: FC would retry it, but the simulation reports it
            self.unexpected.append(exc)
            self._retry(kind, event, attempt, exc)
        finally:
            self._deadlines.pop()

    def _retry(self, kind: str, event: bytes, attempt: int, exc: BaseException) -> None:
        if attempt < DEPLOYED["retries"]:
            self.schedule(self.clock + 2.0 ** attempt, kind, event, attempt + 1)
        else:
            self.dead.append((kind, event, f"{type(exc).__name__}: {exc}"))

    def _sleep(self, seconds: float) -> None:
        self.clock += seconds
        if self.clock >= self._deadlines[-1]:
            raise Crash("FC ended the invocation at its timeout")

    # --- what came of it --------------------------------------------------------------------

    def claims(self) -> dict[str, Claim]:
        prefix = self.settings.output_prefix + planner.CLAIMS_FOLDER
        found = {}
        for (bucket, key), raw in self.store.objects.items():
            name = key[len(prefix):] if key.startswith(prefix) else ""
            if name.endswith(".json") and "." not in name[:-5]:
                found[key] = Claim.model_validate_json(raw)
        return found

    def check(self) -> None:
        """The promise: one task per (object version, rule, attempt), a manifest with the final outcome,
        every claim final, nothing for a refused rule, no bug on the way."""
        flow = self.flow
        assert not self.unexpected, f"unexpected exceptions: {self.unexpected!r}"
        claims = self.claims()
        assert len(claims) == flow.clips, f"{len(claims)} claims, expected {flow.clips}"
        by_attempt: dict[tuple[str, int], list[str]] = defaultdict(list)
        for task in self.imm.tasks.values():
            tags = task.request.tags or {}
            attempt = PROBE if tags[TAG_ATTEMPT] == "probe" else int(tags[TAG_ATTEMPT])
            by_attempt[(tags[TAG_CLAIM], attempt)].append(task.task_id)
            assert not any(task.request.source.uri.endswith(key) for key in flow.rejected), "refused rule submitted"
        for key, claim in claims.items():
            plan = claim.plan
            attempts = {n: ids for (idem, n), ids in by_attempt.items() if idem == plan.idempotency_key}
            steps = ([PROBE] if flow.auto else []) + list(range(flow.attempts))
            assert sorted(attempts) == steps, f"{key}: attempts {sorted(attempts)}"
            for n, ids in attempts.items():
                assert len(ids) == 1, f"{key}: attempt {n} has {len(ids)} tasks {ids}"
            done = self.store.objects.get((BUCKET, key.removesuffix(".json") + ".done.json"))
            assert done is not None, f"{key}: no outcome (the claim is not final)"
            outcome = Outcome.model_validate_json(done)
            manifest = json.loads(self.store.objects[(BUCKET, plan.manifest_key)])
            assert manifest["status"] == outcome.status == "Succeeded", f"{key}: {manifest['status']}"
            final = attempts[flow.attempts - 1][0]
            assert manifest["task_id"] == outcome.task_id == final, f"{key}: manifest names {manifest['task_id']}"
            assert manifest["task_ids"] == [attempts[n][0] for n in steps]
            # Every attempt's billed frames: what each task was asked to make.
            billed = {a["attempt"]: a["billed_frames_estimate"] for a in manifest["attempts"]}
            for n in steps:
                if n != PROBE:
                    assert billed[n] == self.imm.tasks[attempts[n][0]].request.animation.number, f"{key}: attempt {n}"
            assert manifest["billed_frames_estimate"] == sum(billed.values())
            if flow.bytes_per_pixel_frame is not None:  # the size retry: over the cap once, then under it
                cap = plan.rule.max_bytes
                first, second = (self.imm.tasks[attempts[n][0]].request.animation for n in (0, 1))
                assert second.number * second.width * second.height < first.number * first.width * first.height
                assert manifest["attempts"][1]["reason"]["code"] == "OverCap", manifest["attempts"][1]
                assert manifest["cap"] == cap and manifest["met"] is True and manifest["output"]["bytes"] <= cap
                assert manifest["given_up"], f"{key}: nothing said given up"
                assert manifest["request"]["Targets"][0]["Image"]["Animations"][0]["Width"] == second.width
            if flow.auto:  # the animation starts where the sheet moves, as the probe picked
                pick = manifest["rule"]["auto"]
                start = self.imm.tasks[final].request.source.start_time
                interval = plan.probe.sprite.interval
                moving = (0.0, 1e-9) if flow.probe_fails else (MOVING_TILES.start * interval, MOVING_TILES.stop * interval)
                assert start == pick["start"] and moving[0] <= start < moving[1], f"{key}: started at {start} ({pick})"
        for key in flow.rejected:
            assert (BUCKET, f"{self.settings.output_prefix}{key}.rejected.json") in self.store.objects
