"""Asynchronous InvokeFunction on Function Compute 3.0 (``alibabacloud-fc20230330``, API 2023-03-30).

What ``autoanim backfill --submit`` uses to hand one video to the deployed
``on_upload``. Checked in the SDK 4.8.3 source (``client.invoke_function_with_options``):
``POST /2023-03-30/functions/{name}/invocations`` (ROA, the name percent-encoded),
``qualifier`` in the query, the headers ``x-fc-invocation-type`` (``Async``) and
``x-fc-async-task-id`` taken from ``InvokeFunctionHeaders``, the body sent as
given (``application/octet-stream``), ACS3-HMAC-SHA256 signed like IMM's calls.
The FC 2.0 SDK (``aliyun-fc2``, module ``fc2``) speaks the 2016-08-15 API, whose
path names a service (``/services/{svc}/functions/{fn}/invocations``); functions
deployed by the ``fc3`` component have no service, so it is not used here.

FC refuses a repeated async task id with HTTP 409 when the function's
``asyncInvokeConfig.asyncTask`` is on (FC's "task deduplication" page): that is
reported as ``duplicate``, not as an error. Throttling (429), 5xx and transport
failures are retried (``retry.call``) with capped exponential backoff and full
jitter (at least the server's retry-after); everything else leaves as a ``ServiceError`` with
``retryable`` set, like the IMM adapter's. The SDK is imported on first use; it
is the ``backfill`` extra (the functions themselves never invoke FC).
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, NotFound, ServiceError
from . import retry
from .credentials import Credentials

# A task id: a letter or '_' first, then letters, digits, '_' and '-', at most 128 (SDK docstring).
TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class Invocation:
    """FC's answer to one async invocation: ``accepted`` (202) or ``duplicate`` (409, already queued)."""

    task_id: str
    status: Literal["accepted", "duplicate"]
    request_id: str | None = None
    attempts: int = 1


class FcInvoker:
    """Async InvokeFunction of one function; thread-safe (one SDK client per thread, built on first use)."""

    def __init__(
        self,
        *,
        function: str,
        region: str | None,
        endpoint: str | None,
        credentials: Credentials | None,
        qualifier: str | None = None,
        attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not function:
            raise ConfigError("FC needs a function name (--function)")
        if not region and not endpoint:
            raise ConfigError("FC needs a region (--region, FC_REGION or IMM_REGION) or an endpoint (FC_ENDPOINT)")
        if attempts < 1:
            raise ConfigError(f"FC attempts must be at least 1, not {attempts}")
        self.function = function
        self.region = region
        self.endpoint = endpoint
        self.qualifier = qualifier
        self._credentials = credentials
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._sleep = sleep
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"FcInvoker(function={self.function!r}, region={self.region!r}, endpoint={self.endpoint!r})"

    def invoke_async(self, body: bytes, task_id: str) -> Invocation:
        """Queue one asynchronous invocation named ``task_id``; FC's queue runs it (and retries it)."""
        if not TASK_ID.match(task_id):
            raise ValueError(f"not a valid FC async task id: {task_id!r}")
        from alibabacloud_fc20230330 import models

        tries = 0
        lost: list[bool] = []  # per retried failure: may FC have queued it although the answer was lost?

        def send() -> Any:
            nonlocal tries
            tries += 1
            client, runtime = self._sdk()
            request = models.InvokeFunctionRequest(body=io.BytesIO(body), qualifier=self.qualifier)
            headers = models.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id=task_id)
            return client.invoke_function_with_options(self.function, request, headers, runtime)

        def retryable(error: ServiceError) -> bool:
            if error.retryable:
                lost.append(error.status != 429)  # a 429 was surely not queued
            return error.retryable

        try:
            response = retry.call(send, lambda exc: translate(self.function, exc), attempts=self.attempts,
                                  base_delay=self.base_delay, max_delay=self.max_delay, retry_if=retryable,
                                  sleep=self._sleep)
        except ServiceError as error:
            if error.status != 409:
                raise
            # Refused as a repeat: queued before, by an earlier run or by our own lost attempt.
            return Invocation(task_id, "accepted" if any(lost) else "duplicate", error.request_id, tries)
        _close(response.body)
        return Invocation(task_id, "accepted", (response.headers or {}).get("x-fc-request-id"), tries)

    # -- internals ---------------------------------------------------------------

    def _sdk(self) -> tuple[Any, Any]:
        built = getattr(self._local, "client", None)
        if built is None:
            from alibabacloud_fc20230330.client import Client
            from alibabacloud_tea_openapi import utils_models
            from darabonba.runtime import RuntimeOptions

            config = utils_models.Config(region_id=self.region, connect_timeout=int(self.connect_timeout * 1000),
                                         read_timeout=int(self.read_timeout * 1000))
            if self.endpoint:
                scheme, sep, rest = self.endpoint.partition("://")
                config.protocol, config.endpoint = (scheme.lower(), rest.rstrip("/")) if sep else (None, scheme)
            if self._credentials is not None:
                config.access_key_id = self._credentials.access_key_id
                config.access_key_secret = self._credentials.access_key_secret
                config.security_token = self._credentials.security_token
            else:  # a Config without credentials does not fall back to the default chain by itself
                from alibabacloud_credentials.client import Client as CredClient

                config.credential = CredClient()
            built = self._local.client = (Client(config), RuntimeOptions(autoretry=False))
        return built


def _close(body: Any) -> None:
    """Drain and close the (empty) 202 body so the connection can be reused."""
    if body is not None:
        with contextlib.suppress(Exception):  # the answer is in; a body that will not drain changes nothing
            body.read()
            body.close()


def translate(function: str, exc: BaseException) -> tuple[ServiceError, float | None]:
    """An FC SDK exception as a ``ServiceError`` (and the server's retry-after in seconds, if any)."""
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
    from darabonba.exceptions import RetryError, UnretryableException

    where = f"FC InvokeFunction {function}"
    if isinstance(exc, AlibabaCloudException):
        status = exc.status_code
        data = exc.data if isinstance(exc.data, dict) else {}
        # tea-openapi reads Code/code; FC's error pages also show errorCode/errorMessage.
        code = data.get("Code") or data.get("code") or data.get("errorCode") or (exc.code if exc.code != "None" else "")
        said = data.get("Message") or data.get("message") or data.get("errorMessage") or ""
        request_id = exc.request_id if exc.request_id not in (None, "None") else None
        throttled = isinstance(exc, ThrottlingException) or status == 429
        retryable = throttled or retry.retryable_status(status, permissions=False)
        retry_after = exc.retry_after / 1000 if isinstance(exc, ThrottlingException) and exc.retry_after else None
        kind = NotFound if status == 404 else ServiceError
        message = f"{where} failed: {code or 'Unknown'} (HTTP {status}){': ' + _short(said) if said else ''}"
        return kind(message, retryable=retryable, code=code or "Unknown", status=status,
                    request_id=request_id), retry_after
    inner = exc.inner_exception if isinstance(exc, UnretryableException) else exc
    if isinstance(inner, (RetryError, OSError)):
        code, retryable = "ConnectionError", True  # refused, reset or timed out (it may have been queued)
    elif isinstance(inner, ValueError):
        code, retryable = "BadResponse", True  # an error page that is not FC's JSON (a gateway)
    elif type(inner).__name__ == "CredentialException":
        code, retryable = "CredentialsUnavailable", False  # the operator's credentials: nothing to wait for
    else:
        code, retryable = type(inner).__name__, False
    detail = getattr(inner, "message", None) or str(inner)
    return ServiceError(f"{where} failed: {code}: {_short(detail)}", retryable=retryable, code=code), None


def _short(text: Any, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
