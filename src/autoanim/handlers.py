"""The two functions' work on an ``App`` (for ``index`` and the local backend's result delivery): decode
the event, call the service, answer with a report."""

from __future__ import annotations

from . import log, service
from .errors import EventError
from .events import parse_oss_event, parse_task_result
from .reports import Problem, ResultReport, UploadReport


def upload(app: service.App, event: bytes) -> UploadReport:
    """OSS ObjectCreated events → one IMM task per (video, rule). Raises only retryable failures."""
    try:
        batch = parse_oss_event(event)
    except EventError as exc:  # permanent: a retry would fail the same way
        log.event("event.rejected", 40, reason=exc.message)
        return UploadReport(rejected=[Problem(reason=exc.message, code=exc.code)])
    return service.handle_upload(app, batch)


def result(app: service.App, event: bytes) -> ResultReport:
    """IMM task results from MNS → manifest beside the output, status, one log line."""
    try:
        task = parse_task_result(event)
    except EventError as exc:
        log.event("result.rejected", 40, reason=exc.message)
        return ResultReport(event="rejected", reason=exc.message)
    return service.handle_result(app, task)
