"""A loopback Function Compute 3.0 for the real ``alibabacloud-fc20230330`` client: InvokeFunction only.

Decodes what the SDK sends: ``POST /2023-03-30/functions/<percent-encoded name>/invocations``
(``?qualifier=`` optional), the ``x-fc-invocation-type`` and ``x-fc-async-task-id``
headers and the body, checks that an ACS3-HMAC-SHA256 ``Authorization`` header is
there (the signature itself is not verified) and records each invocation. An
async invocation is answered ``202`` with ``x-fc-request-id``; with
``async_task=True`` (the function's ``asyncInvokeConfig.asyncTask``) a task id
seen before is refused with ``409``, as FC's task deduplication does. Errors use a
JSON body (``Code``, ``Message``, ``RequestId``).

Faults: ``fail_next(429, 503, ...)`` scripts answers; ``lose_answers(n)`` queues
the next n invocations but answers them 503 (a reply lost after FC took the
call); ``qps_limit`` answers 429 over a token bucket. The 409 error code is a
stand-in (FC's page names only the status); clients decide on the status. ``on_invoke(record)`` runs after an accepted invocation
(a test can run the real handler there, as FC's queue would).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import LoopbackServer, read_body, send

_PATH = re.compile(r"^/2023-03-30/functions/([^/]+)/invocations$")
_CREDENTIAL = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=[^,]+,\s*Signature=\w+$")


class FcError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FcEmulator(LoopbackServer):
    """Records ``invocations`` (accepted, decoded) and ``requests`` (every one, decoded)."""

    def __init__(
        self,
        *,
        functions: tuple[str, ...] = ("autoanim-on-upload",),
        async_task: bool = True,
        qps_limit: float | None = None,
        on_invoke: Callable[[dict[str, Any]], None] | None = None,
    ):
        super().__init__()
        self.functions = set(functions)
        self.async_task = async_task
        self.qps_limit = qps_limit
        self.on_invoke = on_invoke
        self.requests: list[dict[str, Any]] = []
        self.invocations: list[dict[str, Any]] = []
        self.task_ids: set[str] = set()
        self.stats: Counter[str] = Counter()
        self._script: deque[int] = deque()
        self._lost = 0
        self._running = 0
        self._tokens = qps_limit or 0.0
        self._refilled = time.monotonic()

    def fail_next(self, *statuses: int) -> None:
        """The next requests are answered with these HTTP statuses (FC JSON errors), in order."""
        with self.lock:
            self._script.extend(statuses)

    def lose_answers(self, count: int) -> None:
        """The next ``count`` accepted invocations are queued, but answered 503."""
        with self.lock:
            self._lost += count

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        body = read_body(http)
        url = urlsplit(http.path)
        request_id = str(uuid.uuid4())
        auth = _CREDENTIAL.match(http.headers.get("Authorization", ""))
        match = _PATH.match(url.path)
        record = {
            "method": http.command,
            "path": url.path,
            "function": unquote(match.group(1)) if match else None,
            "query": dict(parse_qsl(url.query, keep_blank_values=True)),
            "invocation_type": http.headers.get("x-fc-invocation-type"),
            "task_id": http.headers.get("x-fc-async-task-id"),
            "content_type": http.headers.get("Content-Type"),
            "body": body,
            "access_key_id": auth.group(1).split("/")[0] if auth else None,
            "security_token": http.headers.get("x-acs-security-token"),
            "headers": {name.lower(): value for name, value in http.headers.items()},
        }
        with self.lock:
            self.requests.append(record)
            self.stats["requests"] += 1
            scripted = self._script.popleft() if self._script else None
        try:
            if scripted is not None:
                raise FcError(scripted, "Throttled" if scripted == 429 else "ServiceUnavailable", "Injected fault.")
            if not auth:
                raise FcError(403, "AccessDenied", "The request has no ACS3-HMAC-SHA256 Authorization header.")
            if http.command != "POST" or not match:
                raise FcError(400, "PathNotSupported", f"{http.command} {url.path!r} is not supported")
            if record["function"] not in self.functions:
                raise FcError(404, "FunctionNotFound", f"function '{record['function']}' does not exist")
            if not self._take_token():
                raise FcError(429, "TooManyRequests", "Reached the limit of requests per second.")
            accepted = self._accept(record)
        except FcError as error:
            with self.lock:
                self.stats[f"status_{error.status}"] += 1
            payload = json.dumps({"Code": error.code, "Message": error.message, "RequestId": request_id}).encode()
            return send(http, error.status, payload, {"Content-Type": "application/json", "x-fc-request-id": request_id})
        with self.lock:
            lost, self._lost = self._lost > 0, max(0, self._lost - 1)
            self.stats["status_503" if lost else f"status_{accepted}"] += 1
            if self.on_invoke is not None:  # counted before the answer: wait_idle cannot miss it
                self._running += 1
        if lost:
            payload = json.dumps({"Code": "ServiceUnavailable", "Message": "Injected lost answer.",
                                  "RequestId": request_id}).encode()
            send(http, 503, payload, {"Content-Type": "application/json", "x-fc-request-id": request_id})
        else:
            headers = {"x-fc-request-id": request_id}
            if record["task_id"]:
                headers["x-fc-async-task-id"] = record["task_id"]
            send(http, accepted, b"", headers)
        if self.on_invoke is not None:  # after the answer: FC's queue runs the function later
            try:
                self.on_invoke(record)
            finally:
                with self.lock:
                    self._running -= 1

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no ``on_invoke`` is running (the "queue" has drained); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self._running:
                    return True
            time.sleep(0.01)
        return False

    def _accept(self, record: dict[str, Any]) -> int:
        kind = (record["invocation_type"] or "Sync").lower()
        if kind != "async":
            raise FcError(400, "InvalidArgument", "only asynchronous invocations are emulated")
        with self.lock:
            task_id = record["task_id"]
            if task_id and self.async_task and task_id in self.task_ids:
                raise FcError(409, "AsyncTaskAlreadyExists", f"async task '{task_id}' already exists")
            if task_id:
                self.task_ids.add(task_id)
            self.invocations.append(record)
        return 202

    def _take_token(self) -> bool:
        if not self.qps_limit:
            return True
        with self.lock:
            now = time.monotonic()
            self._tokens = min(self.qps_limit, self._tokens + (now - self._refilled) * self.qps_limit)
            self._refilled = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True
