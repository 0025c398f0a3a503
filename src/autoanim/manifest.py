"""The manifest beside every output: what was asked, what happened, what it cost (written by
``on_task_result``, or ``on_upload`` for a clip IMM refused for good; read by the command line)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SourceRef(_Model):
    uri: str
    etag: str


class OutputInfo(_Model):
    uri: str
    bytes: int | None = None
    frames: int | None = None
    width: int | None = None
    height: int | None = None


class Attempt(_Model):
    """One IMM task of the clip: the first submit, or a resubmit after a transient failure."""

    attempt: int  # -1 for a start: auto clip's probe
    step: str = "animation"  # or probe
    task_id: str
    how: str  # submitted | found (ListTasks, after an ambiguous answer) | adopted (from its result)
    reason: dict[str, str] | None = None  # why it was resubmitted: the previous task's failure
    billed_frames_estimate: int
    unit: str = "output frames"
    scale: float | None = None  # a size retry: the bytes factor its plan was scaled by


class Timings(_Model):
    claimed_at: str
    task_start: str | None = None
    task_end: str | None = None
    recorded_at: str


class Manifest(_Model):
    status: str  # Succeeded | Failed
    code: str = ""
    message: str = ""
    task_id: str = ""
    task_ids: list[str] = []
    attempts: list[Attempt] = []
    source: SourceRef
    rule: dict[str, Any]
    output: OutputInfo
    billed_frames_estimate: int  # every attempt's frames: IMM bills each task it ran
    cap: int | None = None  # the rule's byte cap (its target's, or anim-max-bytes)
    met: bool | None = None  # whether the output is within it
    given_up: list[str] = []  # what the plan gave up to meet it: "fps 15 → 10", "size 480x270 → 360x203"
    timings: Timings
    request: dict[str, Any]

    def dump(self) -> bytes:
        return self.model_dump_json(indent=2).encode()
