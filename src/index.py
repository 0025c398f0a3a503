"""The two Function Compute handlers (``event`` is bytes): the invocation's app, the work, a JSON answer
(tests pass ``app=`` to run them on other adapters)."""

from __future__ import annotations

from typing import Any

from autoanim import bootstrap, handlers, log
from autoanim.config import Settings
from autoanim.service import App


def _app(context: Any, app: App | None) -> App:
    log.setup()
    return app if app is not None else bootstrap.build(Settings.from_env(), context)


def on_upload(event: bytes, context: Any, app: App | None = None) -> dict[str, Any]:
    """OSS ObjectCreated events → one IMM task per (video, rule). Raises only retryable failures."""
    return handlers.upload(_app(context, app), event).model_dump(mode="json", exclude_none=True)


def on_task_result(event: bytes, context: Any, app: App | None = None) -> dict[str, Any]:
    """IMM task results from MNS → manifest beside the output, status, one log line."""
    return handlers.result(_app(context, app), event).model_dump(mode="json", exclude_none=True)
