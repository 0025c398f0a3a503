"""Claims: exactly one IMM task per (object version, rule, attempt) and one recorded outcome, as
write-once JSON objects beside the outputs (only a lease is rewritten, by its holder); which exist is
the state ``service`` drives. The objects, the machine and the guarantee: docs/reliability.md §0.1."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

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


class Claim(_Record):
    """The claim: what is to be made, as the first delivery planned it, stored at its plan's claim key."""

    v: Literal[2] = 2
    created_at: float
    plan: PlannedTask

    @property
    def bucket(self) -> str:
        return self.plan.output_bucket

    @property
    def uri(self) -> str:
        return uri(self.bucket, self.plan.claim_key)

    def part(self, name: str, attempt: int | None = None) -> str:
        """The key of one of its records: ``done``, or ``task``, ``scale``... of an attempt."""
        return part_key(self.plan.claim_key, name if attempt is None else f"{step(attempt)}.{name}")


class Lease(_Record):
    """The right to submit one attempt, held until ``expires_at`` or released by its holder."""

    at: float
    expires_at: float
    released: bool = False
    clean: bool = False  # released after a failure that certainly made no task: no lookup owed
    task_id: str | None = None  # a released lease whose holder submitted but could not record it
    reason: dict[str, str] | None = None  # why this attempt: the previous attempt's failure


class TaskRecord(_Record):
    attempt: int
    task_id: str
    at: float
    how: Literal["submitted", "found", "adopted"]
    reason: dict[str, str] | None = None


class ScaleRecord(_Record):
    """A size retry: attempt ``after``'s output was ``bytes``, over ``cap``, so the next is scaled."""

    factor: float  # the bytes factor applied to the planned rule (``planner.scaled``), cumulative
    after: int
    bytes: int
    cap: int
    at: float

    def reason(self) -> dict[str, str]:
        return {"code": "OverCap", "message": f"attempt {self.after} made {self.bytes} bytes, over the cap "
                                              f"of {self.cap}: scaled by {self.factor:.3f}"}


class Outcome(_Record):
    status: str
    code: str = ""
    message: str = ""
    task_id: str = ""
    attempt: int = 0
    at: float


def part_key(claim_key: str, name: str) -> str:
    return f"{claim_key.removesuffix('.json')}.{name}.json"


def handled(claim_key: str, existing: set[str]) -> bool:
    """Whether a claim, among ``existing`` keys (a listing), already has a task or an outcome."""
    return any(part_key(claim_key, part) in existing for part in ("done", "a0.task", f"{step(PROBE)}.task"))


def factor_at(scales: dict[int, ScaleRecord], attempt: int) -> float | None:
    """The factor attempt ``attempt`` is made at: its own size retry's, else the latest before it
    (a transient failure's resubmit repeats the attempt it replaces)."""
    made = [n for n in scales if n <= attempt]
    return scales[max(made)].factor if made else None


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


class ClaimBusy(ServiceError):
    """Another live invocation holds the attempt: retry later (FC's or MNS's redelivery)."""

    code = "ClaimBusy"

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


@dataclass
class Claims:
    """The claim records on one store; ``clock``/``sleep`` and the time budget come from the app."""

    store: Any
    lease_seconds: float
    time_left: Callable[[], float] | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def open(self, task: PlannedTask) -> tuple[Claim, bool]:
        """The claim for ``task`` and whether this call made it (else the first delivery's plan wins)."""
        return self._create(task.output_bucket, task.claim_key, Claim(created_at=self.clock(), plan=task))

    def load(self, bucket: str, key: str) -> Claim | None:
        return self._read(bucket, key, Claim)

    def outcome(self, claim: Claim) -> Outcome | None:
        return self._read(claim.bucket, claim.part("done"), Outcome)

    def task(self, claim: Claim, attempt: int) -> TaskRecord | None:
        return self._read(claim.bucket, claim.part("task", attempt), TaskRecord)

    def tasks(self, claim: Claim, upto: int) -> list[TaskRecord]:
        """The recorded tasks of the probe (if any) and attempts 0..upto (a missing one is skipped)."""
        return [task for n in range(claim.plan.first_attempt, upto + 1) if (task := self.task(claim, n))]

    def pick(self, claim: Claim) -> AutoStart | None:
        """The start the probe picked for a ``start: auto`` clip."""
        return self._read(claim.bucket, claim.part("pick"), AutoStart)

    def scale(self, claim: Claim, attempt: int) -> ScaleRecord | None:
        """The size retry that made attempt ``attempt``, if it is one."""
        return self._read(claim.bucket, claim.part("scale", attempt), ScaleRecord)

    def scales(self, claim: Claim, upto: int) -> dict[int, ScaleRecord]:
        """The size retries among attempts 1..upto, by attempt (a claim without a cap has none)."""
        if claim.plan.rule.max_bytes is None:
            return {}
        return {n: scale for n in range(1, upto + 1) if (scale := self.scale(claim, n)) is not None}

    # Write-once parts: the first record made wins and is returned (every holder then builds the same
    # request: the probe's pick and a size retry's scale are recorded before the next lease).
    def record_pick(self, claim: Claim, pick: AutoStart) -> AutoStart:
        return self._create(claim.bucket, claim.part("pick"), pick)[0]

    def record_scale(self, claim: Claim, attempt: int, record: ScaleRecord) -> ScaleRecord:
        return self._create(claim.bucket, claim.part("scale", attempt), record)[0]

    def record_task(self, claim: Claim, attempt: int, task_id: str, how: str,
                    reason: dict[str, str] | None = None) -> TaskRecord:
        record = TaskRecord(attempt=attempt, task_id=task_id, at=self.clock(), how=how, reason=reason)
        return self._create(claim.bucket, claim.part("task", attempt), record)[0]

    def finish(self, claim: Claim, outcome: Outcome) -> Outcome:
        return self._create(claim.bucket, claim.part("done"), outcome)[0]

    def lease(self, claim: Claim, attempt: int, reason: dict[str, str] | None = None) -> Held | TaskRecord:
        """The right to submit ``attempt``, or its task when a holder got that far. A live holder is waited
        for while the budget allows (it usually finishes in ms); then ``ClaimBusy`` is raised (retried)."""
        index, delay = 0, POLL_FIRST
        must_look_up = False  # lease 0: nobody held the attempt before
        budget = WAIT_WITHOUT_BUDGET if self.time_left is None else max(0.0, self.time_left())
        waited_until = self.clock() + budget
        while True:
            now = self.clock()
            lease = Lease(at=now, expires_at=now + self.lease_seconds, reason=reason)
            key = claim.part(f"lease{index}", attempt)
            if self.store.create(claim.bucket, key, _dump(lease)):
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
                left = f"{current.expires_at - now:.0f} s" if current is not None else "unknown (unreadable)"
                raise ClaimBusy(f"attempt {attempt} of claim {claim.uri} is held by another invocation "
                                f"(lease {index}, expires in {left})")
            self.sleep(delay)
            delay = min(POLL_MAX, delay * 2)

    def release(self, held: Held, *, clean: bool = False, task_id: str | None = None,
                error: AutoanimError | None = None) -> None:
        """Give the lease up after its call failed (best effort: an unreleased lease expires)."""
        lease = held.lease.model_copy(update={"released": True, "clean": clean, "task_id": task_id})
        key = held.claim.part(f"lease{held.index}", held.attempt)
        try:
            self.store.put(held.claim.bucket, key, _dump(lease), "application/json")
        except AutoanimError as exc:
            log.event("claim.release_failed", logging.WARNING, claim=held.claim.uri, attempt=held.attempt,
                      reason=exc.message, expires_at=held.lease.expires_at,
                      after=error.message if error else None)

    def _create(self, bucket: str, key: str, record: Model) -> tuple[Model, bool]:
        """``record`` made now (True), or the one made before, as stored (False)."""
        if self.store.create(bucket, key, _dump(record)):
            return record, True
        stored = self._read(bucket, key, type(record))
        if stored is None:
            raise ServiceError(f"{uri(bucket, key)} exists but cannot be read", retryable=True,
                               code="ClaimUnreadable")
        return stored, False

    def _read(self, bucket: str, key: str, model: type[Model]) -> Model | None:
        try:
            return model.model_validate_json(self.store.read(bucket, key, MAX_RECORD_BYTES))
        except (NotFound, ValueError):  # ValueError: pydantic's ValidationError (not JSON, or not the record)
            return None


def _dump(record: BaseModel) -> bytes:
    return record.model_dump_json(by_alias=True, exclude_none=True).encode()
