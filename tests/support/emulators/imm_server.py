"""A loopback IMM (API 2020-09-30) for the real ``alibabacloud-imm20200930`` client.

Decodes the RPC wire format (``POST /``, the action in ``x-acs-action`` or the
``Action`` query parameter, every parameter in the query string, structs and
arrays as JSON), checks that an ACS3-HMAC-SHA256 ``Authorization`` header is
there (the signature itself is not verified) and answers
CreateMediaConvertTask, GetTask and ListTasks (``TagSelector``, ``TaskTypes``,
``StartTimeRange``, pages of ``MaxResults`` with ``NextToken``) with IMM's JSON
shapes. Errors use IMM's
JSON error body, so the SDK raises what it raises against the cloud.

Faults, for tests and the load benchmark: a QPS limit (token bucket),
random throttling / 500s / slow answers from a seeded ``random.Random``, and
``fail_next(...)`` for an exact script of faults. A slow answer with
``timeout_applies`` makes the task first and answers too late (what a read
timeout after IMM accepted looks like); ``"error_after"`` makes the task and
answers 500 (a 5xx after the effect).
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import LoopbackServer, read_body, send

JSON_PARAMS = {"Sources", "Targets", "TargetGroups", "Notification", "Tags", "CredentialConfig", "TaskTypes",
               "StartTimeRange", "EndTimeRange"}
FAULTS = ("throttle", "error", "timeout", "error_after")
_CREDENTIAL = re.compile(r"^ACS3-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=[^,]+,\s*Signature=\w+$")


class ImmError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ImmEmulator(LoopbackServer):
    """Records ``requests`` (decoded, in order) and ``tasks`` (task id → request + status)."""

    def __init__(
        self,
        *,
        qps_limit: float | None = None,
        burst: float | None = None,
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        timeout_seconds: float = 1.5,
        timeout_applies: bool = False,
        throttle_status: int = 429,
        retry_after_ms: int | None = None,
        seed: int = 0,
        on_task: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        super().__init__()
        self.qps_limit = qps_limit
        self.burst = burst if burst is not None else max(1.0, qps_limit or 1.0)
        self.throttle_rate = throttle_rate
        self.error_rate = error_rate
        self.timeout_rate = timeout_rate
        self.timeout_seconds = timeout_seconds
        self.timeout_applies = timeout_applies  # a slow answer still creates the task (as a real timeout may)
        self.throttle_status = throttle_status
        self.retry_after_ms = (
            retry_after_ms  # sent as x-acs-retry-after: the SDK then raises ThrottlingException
        )
        self.random = random.Random(seed)
        self.on_task = on_task
        self.requests: list[dict[str, Any]] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.stats: Counter[str] = Counter()
        self.missing_projects: set[str] = set()  # answered as IMM answers for a project that does not exist
        self._script: deque[str] = deque()
        self._tokens = self.burst
        self._refilled = time.monotonic()

    def reset_counters(self) -> None:
        """Forget the counters and refill the QPS bucket (tasks and requests stay): a fresh measurement."""
        with self.lock:
            self.stats.clear()
            self._tokens, self._refilled = self.burst, time.monotonic()

    def fail_next(self, *faults: str) -> None:
        """The next requests meet these faults, in order: ``"throttle"``, ``"error"``, ``"timeout"``."""
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; use {FAULTS}")
        with self.lock:
            self._script.extend(faults)

    def clear_faults(self) -> None:
        """Forget the faults ``fail_next`` scripted and did not use yet."""
        with self.lock:
            self._script.clear()

    def set_status(self, task_id: str, status: str, code: str = "", message: str = "") -> None:
        """Finish (or fail) a recorded task, as IMM would later."""
        with self.lock:
            task = self.tasks[task_id]
            task.update(Status=status, Code=code, Message=message, EndTime=_now())

    @property
    def created(self) -> list[dict[str, Any]]:
        """The decoded parameters of every CreateMediaConvertTask that created a task."""
        with self.lock:
            return [task["Request"] for task in self.tasks.values()]

    # -- HTTP ----------------------------------------------------------------------

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        read_body(http)
        url = urlsplit(http.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        action = http.headers.get("x-acs-action") or params.get("Action", "")
        request_id = str(uuid.uuid4()).upper()
        fault = self._fault()
        if fault == "timeout" and not self.timeout_applies:
            self.stopping.wait(self.timeout_seconds)
            return self._error(http, request_id, ImmError(503, "ServiceUnavailable", "The request timed out."))
        if fault == "throttle":
            headers = {"x-acs-retry-after": str(self.retry_after_ms)} if self.retry_after_ms else {}
            error = ImmError(
                self.throttle_status, "Throttling.User", "Request was denied due to user flow control."
            )
            return self._error(http, request_id, error, headers)
        if fault == "error":
            return self._error(
                http, request_id, ImmError(500, "InternalError", "An internal error occurred.")
            )
        try:
            record = self._decode(http, action, params, url.path)
            with self.lock:
                self.requests.append(record)
            task_id = None
            if action == "CreateMediaConvertTask":
                body = self._create(record)
                task_id = body["TaskId"]
            elif action == "GetTask":
                body = self._get_task(record["params"])
            elif action == "ListTasks":
                body = self._list_tasks(record["params"])
            else:
                raise ImmError(404, "InvalidAction.NotFound", f"Specified api is not found: {action!r}.")
        except ImmError as error:
            return self._error(http, request_id, error)
        if task_id and self.on_task is not None:
            self.on_task(task_id, self.tasks[task_id]["Request"])
        if fault == "error_after":  # done, but the answer says otherwise
            return self._error(http, request_id, ImmError(500, "InternalError", "An internal error occurred."))
        if fault == "timeout":  # done; the answer comes after the client has given up
            self.stopping.wait(self.timeout_seconds)
        body["RequestId"] = request_id
        self._send_json(http, 200, body)

    def _fault(self) -> str | None:
        with self.lock:
            self.stats["requests"] += 1
            fault = self._script.popleft() if self._script else None
            if fault is None and self.qps_limit and not self._take_token():
                fault = "throttle"
            if fault is None:
                draw = self.random.random()
                for name, rate in (
                    ("throttle", self.throttle_rate),
                    ("error", self.error_rate),
                    ("timeout", self.timeout_rate),
                ):
                    if draw < rate:
                        fault = name
                        break
                    draw -= rate
            if fault:
                self.stats[fault] += 1
            return fault

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * (self.qps_limit or 0))
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _decode(
        self, http: BaseHTTPRequestHandler, action: str, params: dict[str, str], path: str
    ) -> dict[str, Any]:
        if http.command != "POST" or path != "/":
            raise ImmError(400, "InvalidParameter", f"RPC calls are POST /, not {http.command} {path}.")
        match = _CREDENTIAL.match(http.headers.get("Authorization", ""))
        if not match:
            raise ImmError(
                400, "IncompleteSignature", "The request signature does not conform to Aliyun standards."
            )
        decoded: dict[str, Any] = {}
        for name, value in params.items():
            if name in JSON_PARAMS:
                try:
                    decoded[name] = json.loads(value)
                except ValueError:
                    raise ImmError(400, "InvalidArgument", f"{name} is not valid JSON.") from None
            else:
                decoded[name] = value
        return {
            "action": action,
            "params": decoded,
            "access_key_id": match.group(1),
            "security_token": http.headers.get("x-acs-security-token"),
            "headers": {name.lower(): value for name, value in http.headers.items()},
        }

    def _create(self, record: dict[str, Any]) -> dict[str, Any]:
        params = record["params"]
        if not params.get("ProjectName"):
            raise ImmError(400, "MissingProjectName", "ProjectName is mandatory for this action.")
        if params["ProjectName"] in self.missing_projects:  # IMM's answer: 400, not 404 (error-code docs)
            raise ImmError(400, "ResourceNotFound", "The specified resource project is not found.")
        sources = params.get("Sources")
        if (
            not isinstance(sources, list)
            or not sources
            or not all(isinstance(s, dict) and s.get("URI") for s in sources)
        ):
            raise ImmError(400, "InvalidArgument", "Sources must be a non-empty list of objects with a URI.")
        targets = params.get("Targets") or []
        animations = [a for t in targets for a in ((t.get("Image") or {}).get("Animations") or [])]
        sprites = [a for t in targets for a in ((t.get("Image") or {}).get("Sprites") or [])]
        if not animations and not sprites:
            raise ImmError(400, "InvalidArgument", "Targets[].Image needs Animations or Sprites.")
        for index, animation in enumerate(animations):
            if animation.get("Format") not in ("gif", "webp") or not animation.get("URI"):
                raise ImmError(
                    400, "InvalidArgument", f"Animations[{index}] needs Format gif|webp and a URI."
                )
        for index, sprite in enumerate(sprites):
            if sprite.get("Format") not in ("jpg", "png") or not sprite.get("URI"):
                raise ImmError(400, "InvalidArgument", f"Sprites[{index}] needs Format jpg|png and a URI.")
        task_id = f"MediaConvert-{uuid.uuid4()}"
        event_id = f"{uuid.uuid4().hex[:3].upper()}-{uuid.uuid4().hex[:27]}"
        with self.lock:
            self.tasks[task_id] = {
                "Request": params,
                "ProjectName": params["ProjectName"],
                "TaskType": "MediaConvert",
                "Status": "Running",
                "Code": "",
                "Message": "",
                "StartTime": _now(),
                "EndTime": "",
                "UserData": params.get("UserData", ""),
                "Tags": params.get("Tags") or {},
                "EventId": event_id,
            }
            self.stats["created"] += 1
        return {"TaskId": task_id, "EventId": event_id}

    def _get_task(self, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("ProjectName", "TaskId", "TaskType"):
            if not params.get(name):
                raise ImmError(400, "MissingParameter", f"{name} is mandatory for this action.")
        with self.lock:
            task = self.tasks.get(params["TaskId"])
            if (
                task is None
                or task["ProjectName"] != params["ProjectName"]
                or task["TaskType"] != params["TaskType"]
            ):
                raise ImmError(404, "ResourceNotFound", f"The task {params['TaskId']} does not exist.")
            body = {name: value for name, value in task.items() if name != "Request"}
        body["TaskId"] = params["TaskId"]
        return body

    def _list_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        """ListTasks: filter by project, TaskTypes, TagSelector ``key=value`` and StartTimeRange; paginate."""
        if not params.get("ProjectName"):
            raise ImmError(400, "MissingProjectName", "ProjectName is mandatory for this action.")
        selector = params.get("TagSelector") or ""
        tag_key, eq, tag_value = selector.partition("=")
        if selector and not eq:
            raise ImmError(400, "InvalidArgument", f"TagSelector {selector!r} is not key=value.")
        types = params.get("TaskTypes") or []
        since = (params.get("StartTimeRange") or {}).get("Start") or ""
        try:
            limit = int(params.get("MaxResults") or 100)
        except ValueError:
            raise ImmError(400, "InvalidArgument", "MaxResults must be an integer.") from None
        if not 0 < limit <= 100:
            raise ImmError(400, "InvalidArgument", "MaxResults must be in (0, 100].")
        with self.lock:
            matches = [
                {"TaskId": task_id, **{k: v for k, v in task.items() if k not in ("Request", "ProjectName")}}
                for task_id, task in self.tasks.items()
                if task["ProjectName"] == params["ProjectName"]
                and (not types or task["TaskType"] in types)
                and (not selector or task["Tags"].get(tag_key) == tag_value)
                and task["StartTime"] >= since
            ]
        matches.sort(key=lambda t: (t["StartTime"], t["TaskId"]))
        start = int(params.get("NextToken") or 0)
        page = matches[start : start + limit]
        token = str(start + limit) if start + limit < len(matches) else ""
        return {"ProjectName": params["ProjectName"], "NextToken": token, "Tasks": page}

    def _error(
        self,
        http: BaseHTTPRequestHandler,
        request_id: str,
        error: ImmError,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {
            "RequestId": request_id,
            "HostId": "{}:{}".format(*http.server.server_address[:2]),
            "Code": error.code,
            "Message": error.message,
        }
        self._send_json(http, error.status, body, headers)

    @staticmethod
    def _send_json(
        http: BaseHTTPRequestHandler, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        send(
            http,
            status,
            payload,
            {
                "Content-Type": "application/json;charset=utf-8",
                "x-acs-request-id": body.get("RequestId", ""),
                **(headers or {}),
            },
        )
