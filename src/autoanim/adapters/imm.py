"""MediaService on IMM (``alibabacloud-imm20200930``): CreateMediaConvertTask and ListTasks.

The SDK retries nothing by default, so this adapter does (``retry.call``): a
bounded number of attempts with capped exponential backoff and full jitter on
throttling, 5xx and transport failures, never sleeping past the invocation's
time budget (a retry is made only when its pause plus one more call, up to the
read timeout, fits in ``time_left()``; otherwise the last error is raised at
once). Every SDK failure leaves as a ``ServiceError`` (``NotFound`` for 404)
with ``retryable`` set; FC's async retry takes over from there.

CreateMediaConvertTask has no client token: a read timeout, a reset or a 5xx
may come after IMM made the task. Those failures are raised at once, marked
``ambiguous``, and never retried here; the service looks the task up by its
tags (``find_task``, ListTasks with ``TagSelector``) before it submits again.
Throttling is IMM refusing the call before doing anything, so it is retried.
IMM answering that the project does not exist (``ResourceNotFound``, HTTP 400)
is the operator's mistake: a retryable ``ConfigError``, so the event is kept.
The SDK is imported on first use.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from ..convert_request import ConvertRequest
from ..errors import ConfigError, NotFound, ServiceError
from ..fc_events import iso_ms
from ..ports import FIND_SLACK
from . import retry
from .credentials import Credentials

FIND_PAGES = 10  # of 100 tasks each: a claim has at most a handful


def split_endpoint(endpoint: str) -> tuple[str | None, str]:
    """``"http://127.0.0.1:9100"`` → ``("http", "127.0.0.1:9100")``; no scheme → (None, endpoint) = HTTPS."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return None, endpoint.rstrip("/")
    return scheme.lower(), rest.rstrip("/")


class ImmMediaService:
    """``MediaService`` on the real IMM SDK; one SDK client per instance, built on first use."""

    def __init__(
        self,
        *,
        project: str,
        region: str | None,
        endpoint: str | None,
        credentials: Credentials | None,
        attempts: int = 8,
        time_left: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ):
        if not region and not endpoint:
            raise ConfigError("IMM needs a region (IMM_REGION or FC_REGION) or an endpoint (IMM_ENDPOINT)")
        if attempts < 1:
            raise ConfigError(f"IMM attempts must be at least 1, not {attempts}")
        self.project = project
        self.region = region
        self.endpoint = endpoint
        self._credentials = credentials
        self.attempts = attempts
        self._time_left = time_left
        self._sleep = sleep
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client: Any = None

    def __repr__(self) -> str:
        return (
            f"ImmMediaService(project={self.project!r}, region={self.region!r}, endpoint={self.endpoint!r})"
        )

    def submit(self, request: ConvertRequest) -> str:
        from alibabacloud_imm20200930 import models

        sdk_request = models.CreateMediaConvertTaskRequest().from_map(request.wire())
        response = self._call(
            "CreateMediaConvertTask",
            lambda client, rt: client.create_media_convert_task_with_options(sdk_request, rt),
            idempotent=False,
        )
        return response.body.task_id

    def find_task(self, tags: dict[str, str], *, since: float) -> str | None:
        """ListTasks of MediaConvert tasks started since ``since`` whose tags hold all of ``tags``.

        ``TagSelector`` takes one ``key=value`` (the docs' example is ``test=val1``): the
        first tag is sent, the others are checked on the answer. The earliest match wins.
        """
        from alibabacloud_imm20200930 import models

        if not tags:
            return None
        key, value = next(iter(tags.items()))
        found: list[tuple[str, str]] = []
        token = None
        for _ in range(FIND_PAGES):
            sdk_request = models.ListTasksRequest(
                project_name=self.project, task_types=["MediaConvert"], tag_selector=f"{key}={value}",
                start_time_range=models.TimeRange(start=iso_ms(since - FIND_SLACK)),
                max_results=100, next_token=token, sort="StartTime", order="asc",
            )
            body = self._call(
                "ListTasks", lambda client, rt, request=sdk_request: client.list_tasks_with_options(request, rt)
            ).body
            for task in body.tasks or []:
                if all((task.tags or {}).get(k) == v for k, v in tags.items()) and task.task_id:
                    found.append((task.start_time or "", task.task_id))
            token = body.next_token
            if not token:
                break
        return min(found)[1] if found else None

    # -- internals ---------------------------------------------------------------

    def _sdk(self) -> tuple[Any, Any]:
        """The SDK client and runtime options, built once per instance."""
        if self._client is None:
            from alibabacloud_imm20200930.client import Client
            from alibabacloud_tea_openapi import utils_models
            from darabonba.runtime import RuntimeOptions

            config = utils_models.Config(
                region_id=self.region,
                connect_timeout=int(self.connect_timeout * 1000),
                read_timeout=int(self.read_timeout * 1000),
            )
            if self.endpoint:
                config.protocol, config.endpoint = split_endpoint(self.endpoint)
            if self._credentials is not None:
                config.access_key_id = self._credentials.access_key_id
                config.access_key_secret = self._credentials.access_key_secret
                config.security_token = self._credentials.security_token
            else:
                # A Config without credentials does not fall back to the default chain by itself.
                from alibabacloud_credentials.client import Client as CredClient

                config.credential = CredClient()
            self._client = (Client(config), RuntimeOptions(autoretry=False))
        return self._client

    def _call(self, action: str, send: Callable[[Any, Any], Any], *, idempotent: bool = True) -> Any:
        client, runtime = self._sdk()
        return retry.call(
            lambda: send(client, runtime), lambda exc: translate(action, exc),
            attempts=self.attempts, base_delay=self.base_delay, max_delay=self.max_delay,
            # An operator's mistake waits for the operator; an ambiguous create is looked up, not resent.
            retry_if=lambda e: e.retryable and not isinstance(e, ConfigError) and (idempotent or not e.ambiguous),
            time_left=self._time_left, reserve=self.read_timeout, sleep=self._sleep,
        )


def translate(action: str, exc: BaseException) -> tuple[ServiceError | ConfigError, float | None]:
    """An SDK exception as a ``ServiceError`` (and the server's retry-after in seconds, if any)."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
    from darabonba.exceptions import RetryError, UnretryableException

    if isinstance(exc, AlibabaCloudException):
        status = exc.status_code
        code = exc.code or "Unknown"
        request_id = exc.request_id if exc.request_id not in (None, "None") else None
        throttled = isinstance(exc, ThrottlingException) or code.startswith("Throttling")
        retryable = throttled or retry.retryable_status(status, permissions=True)
        kind = NotFound if status == 404 else ServiceError
        retry_after = (
            exc.retry_after / 1000 if isinstance(exc, ThrottlingException) and exc.retry_after else None
        )
        said = exc.data.get("Message") if isinstance(exc.data, dict) else None
        http = f" (HTTP {status})" if status else ""
        message = f"IMM {action} failed: {code}{http}: {_short(said or exc.message)}"
        if code == "ResourceNotFound" and "project" in str(said or exc.message).lower():
            return ConfigError(f"{message}: check IMM_PROJECT and IMM_REGION (the project must exist in the "
                               "bucket's region)", retryable=True, code="ProjectNotFound"), None
        ambiguous = not throttled and (status or 0) >= 500  # a 5xx may come after the effect
        return kind(
            message, retryable=retryable, code=code, status=status, request_id=request_id, ambiguous=ambiguous
        ), retry_after
    inner = exc.inner_exception if isinstance(exc, UnretryableException) else exc
    ambiguous = False
    if isinstance(inner, (RetryError, OSError)):
        # refused, reset or timed out; after a read timeout the call may still have taken effect
        code, retryable, ambiguous = "ConnectionError", True, True
    elif isinstance(inner, ValueError):
        code, retryable, ambiguous = "BadResponse", True, True  # an error page that is not IMM's JSON
    elif type(inner).__name__ == "CredentialException":
        # The role's credentials could not be fetched (metadata service, STS): FC's retry may succeed,
        # and a permanent misconfiguration still ends in the on-failure destination, not lost.
        code, retryable = "CredentialsUnavailable", True
    else:
        code, retryable = type(inner).__name__, False
    detail = getattr(inner, "message", None) or str(inner)
    return ServiceError(
        f"IMM {action} failed: {code}: {_short(detail)}", retryable=retryable, code=code, ambiguous=ambiguous
    ), None


def _short(text: Any, limit: int = 300) -> str:
    """One line, query strings cut out (they carry the request), bounded."""
    text = re.sub(r"\?[^\s'\"]*", "?...", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."
