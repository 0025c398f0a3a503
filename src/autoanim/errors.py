"""One error tree: every failure the core can see is an ``AutoanimError``.

``retryable``: trying the same thing again later may succeed (FC's async retry takes over when a handler
raises one); ``exit_code``: what the command line returns. Vendor exceptions are translated where caught.
"""

from __future__ import annotations

from typing import Any


class AutoanimError(Exception):
    """Base of every error autoanim raises on purpose."""

    retryable: bool = False
    ambiguous: bool = False  # see ServiceError
    exit_code: int = 4
    code: str = "Error"

    def __init__(self, message: str, *, retryable: bool | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.retryable = self.retryable if retryable is None else retryable
        self.code = self.code if code is None else code

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class ConfigError(AutoanimError):
    """The operator's configuration is wrong (environment, profiles, the buckets or the IMM project); found
    while an event is handled, it is raised retryable, so the event is kept until the operator fixes it."""

    exit_code, code = 2, "InvalidConfiguration"


class EventError(AutoanimError):
    """A platform event (OSS, MNS, IMM result) could not be understood."""

    exit_code, code = 2, "InvalidEvent"


class RuleError(AutoanimError):
    """A user's rule is invalid: names the source, the field, the value and the limit."""

    exit_code, code = 2, "InvalidRule"

    def __init__(self, source: str, field: str, value: Any, limit: str):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 80 else repr(value[:77] + "...")
        super().__init__(f"{source}: {field}={shown} is not allowed: {limit}")
        self.source = source
        self.field = field
        self.value = value
        self.limit = limit


class MediaError(AutoanimError):
    """The media itself cannot be converted: no video stream, empty, corrupt."""

    exit_code, code = 3, "InvalidMedia"


class ServiceError(AutoanimError):
    """A remote or local service failed. ``ambiguous``: the call may have taken effect although it failed
    (a read timeout, a reset, a 5xx), so what it was to create must be looked up before it is sent again."""

    code = "ServiceError"

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None,
                 status: int | None = None, request_id: str | None = None, ambiguous: bool = False):
        super().__init__(message, retryable=retryable, code=code)
        self.status = status
        self.request_id = request_id
        self.ambiguous = ambiguous


class NotFound(ServiceError):
    code = "NotFound"


class TooLarge(ServiceError):
    code = "TooLarge"
