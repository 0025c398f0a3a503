"""What the handlers answer (``model_dump()``), the log observes (``log.report``) and the command line
renders: typed reports of every entry and result."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _Report(BaseModel):
    model_config = ConfigDict(frozen=True)


class Clip(_Report):
    """One clip of a video that was submitted now, or found already submitted (a duplicate)."""

    source: str
    output: str
    idempotency_key: str
    task_id: str | None = None
    how: str | None = None  # submitted | found (ListTasks) | adopted
    billed_frames: int | None = None


class Skipped(_Report):
    bucket: str
    key: str
    event_name: str
    reason: str


class Problem(_Report):
    """An entry or a clip refused for good (``rejected``) or to be retried (``retry``)."""

    reason: str
    code: str = ""
    index: int | None = None
    bucket: str | None = None
    key: str | None = None
    source: str | None = None
    output: str | None = None


class UploadReport(_Report):
    model_config = ConfigDict(frozen=False)

    submitted: list[Clip] = []
    duplicates: list[Clip] = []
    skipped: list[Skipped] = []
    rejected: list[Problem] = []
    retry: list[Problem] = []


# submitted: a start: auto probe ended and its animation was submitted
ResultEvent = Literal["recorded", "resubmitted", "submitted", "duplicate", "stale", "unknown", "running", "rejected"]


class ResultReport(_Report):
    """What ``on_task_result`` did with one notification."""

    event: ResultEvent
    task_id: str = ""
    status: str = ""
    code: str | None = None
    message: str | None = None
    reason: str | None = None
    source: str | None = None
    output: str | None = None
    bytes: int | None = None
    billed_frames: int | None = None
    new_task_id: str | None = None
    attempt: int | None = None
    current_task: str | None = None
