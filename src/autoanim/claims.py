"""Idempotency claims: one task per (bucket, key, ETag, normalised rule).

A claim is a small JSON object created with the store's atomic create
(OSS ``x-oss-forbid-overwrite``, the folder store's hard link). States:

    claimed ──submit ok──▶ submitted ──result──▶ done
       │  └─submit failed, retryable──▶ released (free to take over at once)
       └─submit failed, permanent──▶ rejected

A claim left in ``claimed`` (the invocation crashed between claim and submit)
is taken over once older than ``claim_timeout``; a takeover is itself an atomic
create of ``<claim>.take<N>``, so only one invocation wins it. See
docs/reliability.md for what this guarantees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import NotFound, ServiceError
from .planner import PlannedTask
from .ports import ObjectStore

State = Literal["claimed", "submitted", "released", "rejected", "done"]
MAX_CLAIM_BYTES = 256 * 1024


class ClaimRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    state: State
    attempt: int = 0
    claimed_at: float
    updated_at: float
    idempotency_key: str
    source: dict[str, str]
    rule: dict[str, Any]
    output_bucket: str
    output_key: str
    billed_frames: int
    request: dict[str, Any]
    task_id: str = ""
    task_ids: list[str] = []
    submitted_at: float | None = None
    resubmits: int = 0
    error: dict[str, Any] | None = None


class Claim(BaseModel):
    """A claim this invocation holds: where it lives and what it says."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    record: ClaimRecord

    @property
    def uri(self) -> str:
        return f"oss://{self.bucket}/{self.key}"


class ClaimBusy(ServiceError):
    """Another live invocation holds the claim: retry later (FC's async retry)."""

    code = "ClaimBusy"

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class Claims:
    def __init__(self, store: ObjectStore, *, timeout: float, clock: Callable[[], float] = time.time):
        self._store = store
        self._timeout = timeout
        self._clock = clock

    def acquire(self, task: PlannedTask) -> Claim | None:
        """The claim for ``task``, or None when the task was already submitted (a duplicate).

        Raises ``ClaimBusy`` (retryable) while another invocation holds a fresh claim.
        """
        now = self._clock()
        record = ClaimRecord(
            state="claimed", claimed_at=now, updated_at=now, idempotency_key=task.idempotency_key,
            source=task.source.model_dump(), rule=task.rule.model_dump(exclude_none=True),
            output_bucket=task.output_bucket, output_key=task.output_key, billed_frames=task.billed_frames,
            request=task.request.wire(),
        )
        bucket, key = task.output_bucket, task.claim_key
        if self._store.create(bucket, key, _dump(record)):
            return Claim(bucket=bucket, key=key, record=record)
        current = self.load(bucket, key)
        if current is None:
            raise ClaimBusy(f"claim oss://{bucket}/{key} exists but cannot be read yet")
        if current.state in ("submitted", "done", "rejected"):
            return None
        age = now - current.claimed_at
        if current.state == "claimed" and age < self._timeout:
            raise ClaimBusy(f"claim oss://{bucket}/{key} is held by another invocation since {age:.0f} s "
                            f"(taken over after {self._timeout:g} s)")
        attempt = current.attempt + 1
        if not self._store.create(bucket, f"{key}.take{attempt}", b"{}"):
            raise ClaimBusy(f"claim oss://{bucket}/{key} attempt {attempt} was taken by another invocation")
        taken = current.model_copy(update={"state": "claimed", "attempt": attempt, "claimed_at": now,
                                           "updated_at": now, "error": None})
        return self._save(Claim(bucket=bucket, key=key, record=taken))

    def load(self, bucket: str, key: str) -> ClaimRecord | None:
        try:
            raw = self._store.read(bucket, key, MAX_CLAIM_BYTES)
        except NotFound:
            return None
        try:
            return ClaimRecord.model_validate(json.loads(raw))
        except (ValueError, ValidationError):
            return None

    def update(self, claim: Claim, **changes: Any) -> Claim:
        record = claim.record.model_copy(update={**changes, "updated_at": self._clock()})
        return self._save(claim.model_copy(update={"record": record}))

    def submitted(self, claim: Claim, task_id: str) -> Claim:
        return self.update(claim, state="submitted", task_id=task_id, submitted_at=self._clock(),
                           task_ids=[*claim.record.task_ids, task_id])

    def _save(self, claim: Claim) -> Claim:
        self._store.put(claim.bucket, claim.key, _dump(claim.record), "application/json")
        return claim


def _dump(record: ClaimRecord) -> bytes:
    return json.dumps(record.model_dump(), ensure_ascii=False, separators=(",", ":")).encode()
