"""The two Function Compute handlers. Thin: decode the event, call the service, shape the answer.

FC calls ``on_upload(event, context)`` for the OSS trigger and
``on_task_result(event, context)`` for the MNS topic trigger; ``event`` is bytes.
The local backend and the command line call the same functions with ``app=``.
"""

from __future__ import annotations

from typing import Any

from autoanim import bootstrap, log, service
from autoanim.config import Settings
from autoanim.errors import EventError
from autoanim.events import parse_oss_event, parse_task_result


def _app(context: Any, app: service.App | None) -> service.App:
    log.setup()
    return app if app is not None else bootstrap.build(Settings.from_env(), context)


def on_upload(event: bytes, context: Any, app: service.App | None = None) -> dict[str, Any]:
    """OSS ObjectCreated events → one IMM task per (video, rule). Raises only retryable failures."""
    app = _app(context, app)
    try:
        batch = parse_oss_event(event)
    except EventError as exc:  # permanent: a retry would fail the same way
        log.event("event.rejected", 40, reason=exc.message)
        return {"rejected": [{"reason": exc.message}]}
    return service.handle_upload(app, batch).as_dict()


def on_task_result(event: bytes, context: Any, app: service.App | None = None) -> dict[str, Any]:
    """IMM task results from MNS → manifest beside the output, status, one log line."""
    app = _app(context, app)
    try:
        result = parse_task_result(event)
    except EventError as exc:
        return log.event("result.rejected", 40, reason=exc.message)
    return service.handle_result(app, result)
