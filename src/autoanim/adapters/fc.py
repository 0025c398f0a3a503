"""Asynchronous InvokeFunction on Function Compute 3.0 (``alibabacloud-fc20230330``, API 2023-03-30).

What ``autoanim backfill --submit`` uses to hand one video to the deployed ``on_upload``. Checked in
the SDK 4.8.3 source (``client.invoke_function_with_options``): ``POST
/2023-03-30/functions/{name}/invocations`` (ROA, the name percent-encoded), ``qualifier`` in the query,
the headers ``x-fc-invocation-type`` (``Async``) and ``x-fc-async-task-id`` from
``InvokeFunctionHeaders``, the body as given (``application/octet-stream``), signed ACS3-HMAC-SHA256
like IMM's calls. The FC 2.0 SDK (``aliyun-fc2``) speaks the 2016-08-15 API, whose path names a service
(``/services/{svc}/functions/{fn}/invocations``); functions deployed by ``fc3`` have none.

FC refuses a repeated async task id with HTTP 409 when the function's ``asyncInvokeConfig.asyncTask``
is on (FC's "task deduplication" page): reported as ``duplicate``, not as an error. Calls, retries and
errors: ``retry.OpenApiAdapter``. The SDK, imported on first use, is the ``backfill`` extra.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, ServiceError
from .retry import OpenApiAdapter

# A task id: a letter or '_' first, then letters, digits, '_' and '-', at most 128 (SDK docstring).
TASK_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class Invocation:
    """FC's answer to one async invocation: ``accepted`` (202) or ``duplicate`` (409, already queued)."""

    task_id: str
    status: Literal["accepted", "duplicate"]


@dataclass(kw_only=True, eq=False)
class FcInvoker(OpenApiAdapter):
    """Async InvokeFunction of one function; thread-safe (one SDK client per thread)."""

    name = "FC"
    sdk = "alibabacloud_fc20230330.client"
    needs = "(--region, FC_REGION or IMM_REGION) or an endpoint (FC_ENDPOINT)"
    permissions = False  # an operator's command: a permission it lacks stops it

    function: str
    qualifier: str | None = None
    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        if not self.function:
            raise ConfigError("FC needs a function name (--function)")
        super().__post_init__()

    def invoke_async(self, body: bytes, task_id: str) -> Invocation:
        """Queue one asynchronous invocation named ``task_id``; FC's queue runs it (and retries it)."""
        if not TASK_ID.match(task_id):
            raise ValueError(f"not a valid FC async task id: {task_id!r}")
        from alibabacloud_fc20230330 import models

        lost: list[bool] = []  # per retried failure: may FC have queued it although the answer was lost?

        def send(client: Any, runtime: Any) -> Any:
            request = models.InvokeFunctionRequest(body=io.BytesIO(body), qualifier=self.qualifier)
            headers = models.InvokeFunctionHeaders(x_fc_invocation_type="Async", x_fc_async_task_id=task_id)
            return client.invoke_function_with_options(self.function, request, headers, runtime)

        def retryable(error: ServiceError) -> bool:
            if error.retryable:
                lost.append(error.ambiguous)  # a 5xx or a broken connection; not a throttle, nor a 408
            return error.retryable

        try:
            response = self._call(f"FC InvokeFunction {self.function}", send, retry_if=retryable)
        except ServiceError as error:
            if error.status != 409:
                raise
            # Refused as a repeat: queued before, by an earlier run or by our own lost attempt.
            return Invocation(task_id, "accepted" if any(lost) else "duplicate")
        with contextlib.suppress(Exception):  # drain the (empty) 202 body so the connection can be reused
            response.body.read()
            response.body.close()
        return Invocation(task_id, "accepted")
