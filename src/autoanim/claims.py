"""Claims: exactly one IMM task per (object version, rule) and one recorded outcome, whatever fails.

A claim is a few small JSON objects beside the outputs, under
``<OUTPUT_PREFIX>.autoanim/claims/<idempotency key>``. Each is made with the
store's atomic create (OSS ``x-oss-forbid-overwrite``, the folder store's hard
link), so no two writers ever race on one object; only a lease is rewritten,
and only by its holder:

    <base>.json                  the claim: the typed plan, made by the first delivery
    <base>.a<N>.lease<M>.json    the right to submit attempt N (0 = the first submit,
                                 N = the N-th resubmit); lease M+1 follows a released
                                 or expired lease M
    <base>.a<N>.task.json        attempt N's task, once known: submitted, found by
                                 ListTasks, or adopted from its own result
    <base>.probe.*.json          the same for a ``start: auto`` clip's probe (before a0)
    <base>.pick.json             the start its probe picked (the animation's StartTime)
    <base>.a<N>.scale.json       a size retry: attempt N is the plan scaled by this factor, because
                                 attempt N-1's output was over the rule's byte cap (recorded before
                                 attempt N's lease, so every holder builds the same request)
    <base>.done.json             the outcome, after the manifest: the claim is final

The state is which of them exist; one machine, driven by ``service``:

    planned ──lease a0──▶ submitting(0) ──task──▶ running(0) ──result──▶ done
      └─start: auto─▶ lease probe ─▶ probing ──result: pick──▶ lease a0 ─▶ submitting(0) ...
                 ▲  released / expired lease: the next lease looks the task up first
                 └──┘
    running(N) ──retryable task failure, N < max──▶ submitting(N+1) ──task──▶ running(N+1)
    running(N) ──succeeded over the cap, size retries left──▶ scale(N+1) ──lease──▶ submitting(N+1) ...
    submitting(N) ──refused for good──▶ done (Failed)

Every task carries its claim and attempt in ``Tags`` and ``UserData``: a holder
that follows a lease which expired or was released after an ambiguous failure
(its holder may have submitted), or whose own submit failed ambiguously, asks
``MediaService.find_task`` before it submits, and a result adopts its task. A lease expires at its holder's
hard deadline (FC ends an invocation at its timeout), so one that a crash left
behind is taken over; one whose guarded call failed is released at once. See
docs/reliability.md for what this guarantees and the fault table that shows it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from . import log
from .errors import AutoanimError, NotFound, ServiceError
from .objects import uri
from .planner import PROBE, PlannedTask, step
from .rules import AutoStart

MAX_RECORD_BYTES = 256 * 1024
# A busy lease is polled this often (doubling) while the holder may still finish.
POLL_FIRST, POLL_MAX = 0.25, 2.0
# Without a known time budget (the command line), wait this long at most before ClaimBusy.
WAIT_WITHOUT_BUDGET = 5.0

Model = TypeVar("Model", bound=BaseModel)


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ClaimRecord(_Record):
    """The claim itself: what is to be made, exactly as planned by the first delivery."""

    v: Literal[2] = 2
    created_at: float
    plan: PlannedTask


class Lease(_Record):
    """The right to submit one attempt, held until ``expires_at`` or released by its holder."""

    at: float
    expires_at: float
    released: bool = False
    # Released after a failure that certainly made no task (IMM refused the call before acting, or
    # nothing was sent): the next holder need not look for one.
    clean: bool = False
    task_id: str | None = None  # a released lease whose holder submitted but could not record it
    reason: dict[str, str] | None = None  # why this attempt: the previous attempt's failure


class TaskRecord(_Record):
    attempt: int
    task_id: str
    at: float
    how: Literal["submitted", "found", "adopted"]
    reason: dict[str, str] | None = None


class ScaleRecord(_Record):
    """Why and by how much an attempt's plan is smaller than the claim's: a size retry."""

    factor: float  # the bytes factor applied to the planned rule (``planner.scaled``), cumulative
    after: int  # the attempt whose output was measured
    bytes: int  # its size
    cap: int
    at: float


class Outcome(_Record):
    status: str
    code: str = ""
    message: str = ""
    task_id: str = ""
    attempt: int = 0
    at: float


@dataclass(frozen=True)
class Claim:
    """A claim as this invocation sees it: where it lives and its plan."""

    bucket: str
    key: str
    record: ClaimRecord

    @property
    def plan(self) -> PlannedTask:
        return self.record.plan

    @property
    def uri(self) -> str:
        return uri(self.bucket, self.key)

    def part(self, name: str) -> str:
        return part_key(self.key, name)


def part_key(claim_key: str, name: str) -> str:
    """The key of one of a claim's records (``done``, ``a0.task``, ``a1.lease0``...)."""
    return f"{claim_key.removesuffix('.json')}.{name}.json"


def handled(claim_key: str, existing: set[str]) -> bool:
    """Whether a claim, among ``existing`` keys (a listing), already has a task or an outcome."""
    return any(part_key(claim_key, part) in existing for part in ("done", "a0.task", f"{step(PROBE)}.task"))


@dataclass(frozen=True)
class Held:
    """A lease this invocation holds on one attempt of a claim."""

    claim: Claim
    attempt: int
    index: int
    lease: Lease
    # A holder before this one may have submitted (its lease expired, or it was released after an
    # ambiguous failure): the task must be looked up before a submit.
    must_look_up: bool

    @property
    def key(self) -> str:
        return self.claim.part(f"{step(self.attempt)}.lease{self.index}")


class ClaimBusy(ServiceError):
    """Another live invocation holds the attempt: retry later (FC's or MNS's redelivery)."""

    code = "ClaimBusy"

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class Claims:
    """The claim records on one store; ``clock``/``sleep`` and the time budget come from the app."""

    def __init__(self, store: Any, *, lease_seconds: float, time_left: Callable[[], float] | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self._store = store
        self._lease_seconds = lease_seconds
        self._time_left = time_left
        self._clock = clock
        self._sleep = sleep

    # --- reading and making the parts ---------------------------------------------------------

    def open(self, task: PlannedTask) -> tuple[Claim, bool]:
        """The claim for ``task`` and whether this call made it (else: as the first delivery made it,
        whose plan wins)."""
        bucket, key = task.output_bucket, task.claim_key
        record = ClaimRecord(created_at=self._clock(), plan=task)
        if self._store.create(bucket, key, _dump(record)):
            return Claim(bucket, key, record), True
        stored = self._read(bucket, key, ClaimRecord)
        if stored is None:
            raise ServiceError(f"claim {uri(bucket, key)} exists but cannot be read", retryable=True,
                               code="ClaimUnreadable")
        return Claim(bucket, key, stored), False

    def load(self, bucket: str, key: str) -> Claim | None:
        record = self._read(bucket, key, ClaimRecord)
        return Claim(bucket, key, record) if record is not None else None

    def outcome(self, claim: Claim) -> Outcome | None:
        return self._read(claim.bucket, claim.part("done"), Outcome)

    def task(self, claim: Claim, attempt: int) -> TaskRecord | None:
        return self._read(claim.bucket, claim.part(f"{step(attempt)}.task"), TaskRecord)

    def tasks(self, claim: Claim, upto: int) -> list[TaskRecord]:
        """The recorded tasks of the probe (if any) and attempts 0..upto (a missing one is skipped)."""
        steps = range(claim.plan.first_attempt, upto + 1)
        return [t for t in (self.task(claim, n) for n in steps) if t is not None]

    def pick(self, claim: Claim) -> AutoStart | None:
        """The start the probe picked for a ``start: auto`` clip."""
        return self._read(claim.bucket, claim.part("pick"), AutoStart)

    def record_pick(self, claim: Claim, pick: AutoStart) -> AutoStart:
        """The start for the animation's attempts; the first pick made wins (all of them score the
        same sheet the same way, so they agree anyway)."""
        return self._create_once(claim, "pick", pick)

    def scale(self, claim: Claim, attempt: int) -> ScaleRecord | None:
        """The size retry that made attempt ``attempt``, if it is one."""
        return self._read(claim.bucket, claim.part(f"{step(attempt)}.scale"), ScaleRecord)

    def scales(self, claim: Claim, upto: int) -> dict[int, ScaleRecord]:
        """The size retries among attempts 1..upto, by attempt (a claim without a cap has none)."""
        if claim.plan.rule.max_bytes is None:
            return {}
        found = {n: self.scale(claim, n) for n in range(1, upto + 1)}
        return {n: record for n, record in found.items() if record is not None}

    def scale_of(self, claim: Claim, attempt: int) -> ScaleRecord | None:
        """The scale attempt ``attempt`` is made at: its own size retry's, else the latest before it
        (a transient failure's resubmit repeats the attempt it replaces)."""
        found = self.scales(claim, attempt)
        return found[max(found)] if found else None

    def record_scale(self, claim: Claim, attempt: int, record: ScaleRecord) -> ScaleRecord:
        """Attempt ``attempt``'s scale; the first record made wins and is returned."""
        return self._create_once(claim, f"{step(attempt)}.scale", record)

    def record_task(self, claim: Claim, attempt: int, task_id: str, how: str,
                    reason: dict[str, str] | None = None) -> TaskRecord:
        """Attempt ``attempt``'s task; the first record made wins and is returned."""
        record = TaskRecord(attempt=attempt, task_id=task_id, at=self._clock(), how=how, reason=reason)
        return self._create_once(claim, f"{step(attempt)}.task", record)

    def finish(self, claim: Claim, outcome: Outcome) -> Outcome:
        """The outcome; the first one made wins and is returned."""
        return self._create_once(claim, "done", outcome)

    # --- leases ---------------------------------------------------------------------------------

    def lease(self, claim: Claim, attempt: int, reason: dict[str, str] | None = None) -> Held | TaskRecord:
        """The right to submit ``attempt``, or its task when a holder got that far.

        A live holder is waited for while this invocation's budget allows (it usually
        finishes in milliseconds); then ``ClaimBusy`` is raised and the delivery retried.
        """
        index = 0
        must_look_up = False  # lease 0: nobody held the attempt before
        waited_until = self._clock() + self._wait_budget()
        delay = POLL_FIRST
        while True:
            now = self._clock()
            lease = Lease(at=now, expires_at=now + self._lease_seconds, reason=reason)
            key = claim.part(f"{step(attempt)}.lease{index}")
            if self._store.create(claim.bucket, key, _dump(lease)):
                return Held(claim, attempt, index, lease, must_look_up)
            current = self._read(claim.bucket, key, Lease)
            if current is not None and current.task_id:  # its holder submitted: that task is the attempt's
                return self.record_task(claim, attempt, current.task_id, "found", current.reason)
            if current is not None and (current.released or now >= current.expires_at):
                # A clean release vouches for everything before it: its holder looked up if it had to.
                must_look_up = not (current.released and current.clean)
                index += 1
                continue
            recorded = self.task(claim, attempt)
            if recorded is not None:
                return recorded
            if now + delay > waited_until:
                raise ClaimBusy(f"attempt {attempt} of claim {claim.uri} is held by another invocation "
                                f"(lease {index}, expires in {_left(current, now)})")
            self._sleep(delay)
            delay = min(POLL_MAX, delay * 2)

    def release(self, held: Held, *, clean: bool = False, task_id: str | None = None,
                error: AutoanimError | None = None) -> None:
        """Give the lease up (its guarded call failed); best effort: an unreleased lease expires.

        ``clean``: the failure certainly made no task; ``task_id``: the task it made, unrecorded.
        """
        lease = held.lease.model_copy(update={"released": True, "clean": clean, "task_id": task_id})
        try:
            self._store.put(held.claim.bucket, held.key, _dump(lease), "application/json")
        except AutoanimError as exc:
            log.event("claim.release_failed", logging.WARNING, claim=held.claim.uri, attempt=held.attempt,
                      reason=exc.message, expires_at=held.lease.expires_at,
                      after=error.message if error else None)

    # --- internals ------------------------------------------------------------------------------

    def _wait_budget(self) -> float:
        if self._time_left is None:
            return WAIT_WITHOUT_BUDGET
        return max(0.0, self._time_left())

    def _create_once(self, claim: Claim, part: str, record: Model) -> Model:
        key = claim.part(part)
        if self._store.create(claim.bucket, key, _dump(record)):
            return record
        stored = self._read(claim.bucket, key, type(record))
        if stored is None:
            raise ServiceError(f"{uri(claim.bucket, key)} exists but cannot be read", retryable=True,
                               code="ClaimUnreadable")
        return stored

    def _read(self, bucket: str, key: str, model: type[Model]) -> Model | None:
        try:
            raw = self._store.read(bucket, key, MAX_RECORD_BYTES)
        except NotFound:
            return None
        try:
            return model.model_validate(json.loads(raw))
        except (ValueError, ValidationError):
            return None


def _left(lease: Lease | None, now: float) -> str:
    return f"{lease.expires_at - now:.0f} s" if lease is not None else "unknown (unreadable)"


def _dump(record: BaseModel) -> bytes:
    return json.dumps(record.model_dump(mode="json", by_alias=True, exclude_none=True), ensure_ascii=False,
                      separators=(",", ":")).encode()
