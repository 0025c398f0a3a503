"""What the IMM and FC adapters share (both on tea OpenAPI SDKs): the client, the retries, the errors.

The SDKs retry nothing themselves (``autoretry`` off): ``call`` does, within the invocation's time
budget. Every SDK failure leaves as a ``ServiceError`` (``NotFound`` for 404) with ``retryable`` set,
and ``ambiguous`` where the call may have taken effect.

On tenacity rather than stamina: stamina adds its jitter to the exponential instead of drawing the
whole pause at random (full jitter), stops on a wall-clock total rather than on a budget that must
still hold the pause plus one more call, and cannot take a sleep per call (only a process-wide testing
mode); tenacity's stop, wait, retry and sleep are plain callables, which is all this needs.
"""

from __future__ import annotations

import importlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from ..errors import AutoanimError, ConfigError, NotFound, ServiceError
from .credentials import Credentials

T = TypeVar("T")

def retryable_status(status: int | None, *, permissions: bool) -> bool:
    """HTTP statuses worth another try: throttling, timeouts and any 5xx. 401/403 only where a permission
    the role lacks is the operator's to fix (the event is kept: FC retries, then the dead-letter topic),
    not where the caller is an operator's command that should stop and say so (FC InvokeFunction)."""
    return bool(status) and (status >= 500 or status in (408, 429) or (permissions and status in (401, 403)))


def call(
    send: Callable[[], T],
    translate: Callable[[Exception], tuple[AutoanimError, float | None]],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    retry_if: Callable[[AutoanimError], bool] = lambda error: error.retryable,
    time_left: Callable[[], float] | None = None,
    reserve: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``send()`` until it answers, at most ``attempts`` times; a failure leaves as ``translate`` makes it.

    A failure is tried again when ``retry_if`` holds for its translation. The pause is drawn at random
    below ``base_delay * 2**(n - 1)`` capped at ``max_delay`` (full jitter), raised to the server's
    retry-after (never over the cap). A retry is made only when its pause plus ``reserve`` (one more
    call: the read timeout) fits in ``time_left()``; otherwise, or after the last attempt, the last
    error is raised at once with a note saying why.
    """
    retry_after: float | None = None
    why: list[str] = []

    def attempt() -> T:
        nonlocal retry_after
        try:
            return send()
        except Exception as exc:  # every SDK failure is translated where it is caught
            error, retry_after = translate(exc)
            raise error from exc

    jitter = wait_random_exponential(multiplier=base_delay, max=max_delay)

    def wait(state: RetryCallState) -> float:
        return min(max_delay, max(jitter(state), retry_after or 0.0))

    def stop(state: RetryCallState) -> bool:  # tenacity draws the pause first: state.upcoming_sleep
        n = state.attempt_number
        if n >= attempts:
            why.append(f"gave up after {n} attempt{'s' if n > 1 else ''}")
        elif time_left is not None and (left := time_left()) < state.upcoming_sleep + reserve:
            why.append(f"stopped after {n} attempts: {left:.1f} s of budget left")
        return bool(why)

    def give_up(state: RetryCallState) -> T:
        error: AutoanimError = state.outcome.exception()  # type: ignore[union-attr,assignment]
        error.message = f"{error.message} ({why[0]})"  # made by this call's translate: ours to amend
        error.args = (error.message,)
        raise error

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, AutoanimError) and retry_if(exc)),
        wait=wait, stop=stop, sleep=sleep, retry_error_callback=give_up,
    )
    return retrying(attempt)


def split_endpoint(endpoint: str) -> tuple[str | None, str]:
    """``"http://127.0.0.1:9100"`` → ``("http", "127.0.0.1:9100")``; no scheme → (None, endpoint) = HTTPS."""
    scheme, sep, rest = endpoint.partition("://")
    return (scheme.lower(), rest.rstrip("/")) if sep else (None, endpoint.rstrip("/"))


def short(text: Any, limit: int = 300) -> str:
    """One line, query strings cut out (they carry the request), bounded."""
    text = re.sub(r"\?[^\s'\"]*", "?...", " ".join(str(text).split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def worth_retrying(error: AutoanimError) -> bool:
    """Retryable, and not an operator's mistake (that waits for the operator)."""
    return error.retryable and not isinstance(error, ConfigError)


@dataclass(kw_only=True, eq=False)
class OpenApiAdapter:
    """An adapter on a tea OpenAPI SDK: one SDK client per thread, built on first use; each call retried."""

    name: ClassVar[str]  # "IMM", "FC": how messages name the service
    sdk: ClassVar[str]  # the module of its ``Client``
    needs: ClassVar[str]  # where a region or an endpoint is set
    permissions: ClassVar[bool] = True  # the function's role: 401/403 and credentials retryable (above)

    region: str | None
    endpoint: str | None
    credentials: Credentials | None
    attempts: int
    base_delay: float
    max_delay: float
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    time_left: Callable[[], float] | None = field(default=None, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.region and not self.endpoint:
            raise ConfigError(f"{self.name} needs a region {self.needs}")
        if self.attempts < 1:
            raise ConfigError(f"{self.name} attempts must be at least 1, not {self.attempts}")

    def _sdk(self) -> tuple[Any, Any]:
        """The SDK client and runtime options with the SDK's own retry off (``_call`` retries)."""
        built = getattr(self._local, "client", None)
        if built is None:
            from alibabacloud_credentials.client import Client as CredClient
            from alibabacloud_tea_openapi import utils_models
            from darabonba.runtime import RuntimeOptions

            protocol, endpoint = split_endpoint(self.endpoint) if self.endpoint else (None, None)
            # The given credentials, else the default chain: a Config without them does not fall back to it.
            signing = asdict(self.credentials) if self.credentials else {"credential": CredClient()}
            config = utils_models.Config(region_id=self.region, protocol=protocol, endpoint=endpoint,
                                         connect_timeout=int(self.connect_timeout * 1000),
                                         read_timeout=int(self.read_timeout * 1000), **signing)
            client = importlib.import_module(self.sdk).Client(config)
            built = self._local.client = (client, RuntimeOptions(autoretry=False))
        return built

    def _call(self, where: str, send: Callable[[Any, Any], T],
              retry_if: Callable[[AutoanimError], bool] = worth_retrying) -> T:
        """``send(client, runtime)`` through ``call``; ``where`` names the call in its errors."""
        client, runtime = self._sdk()
        return call(lambda: send(client, runtime), lambda exc: self._translate(where, exc),
                    attempts=self.attempts, base_delay=self.base_delay, max_delay=self.max_delay,
                    retry_if=retry_if, time_left=self.time_left, reserve=self.read_timeout, sleep=self.sleep)

    def _translate(self, where: str, exc: BaseException) -> tuple[AutoanimError, float | None]:
        """An SDK exception as a ``ServiceError`` (``NotFound`` for 404) and the server's retry-after (s)."""
        from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
        from darabonba.exceptions import RetryError, UnretryableException

        if isinstance(exc, AlibabaCloudException):
            status = exc.status_code
            data = exc.data if isinstance(exc.data, dict) else {}
            # tea-openapi reads Code/code (and writes "None" when there is none); FC's pages say errorCode.
            code = data.get("Code") or data.get("code") or data.get("errorCode") or exc.code
            code = code if code and code != "None" else "Unknown"
            said = data.get("Message") or data.get("message") or data.get("errorMessage") or exc.message
            throttling = isinstance(exc, ThrottlingException)  # the SDK's: a retry-after header came with it
            throttled = throttling or status == 429 or code.startswith("Throttling")
            after = exc.retry_after / 1000 if throttling and exc.retry_after else None
            kind = NotFound if status == 404 else ServiceError
            http = f" (HTTP {status})" if status else ""
            return kind(
                f"{where} failed: {code}{http}: {short(said)}", code=code, status=status,
                retryable=throttled or retryable_status(status, permissions=self.permissions),
                request_id=exc.request_id if exc.request_id not in (None, "None") else None,
                ambiguous=not throttled and (status or 0) >= 500,  # a 5xx may come after the effect
            ), after
        inner = exc.inner_exception if isinstance(exc, UnretryableException) else exc
        # Refused, reset or timed out (after a read timeout the call may still have taken effect), or an
        # error page that is not the SDK's JSON (a gateway's): worth another try, and ambiguous.
        ambiguous = retryable = isinstance(inner, (RetryError, OSError, ValueError))
        if ambiguous:
            code = "BadResponse" if isinstance(inner, ValueError) else "ConnectionError"
        elif type(inner).__name__ == "CredentialException":
            # The role's credentials could not be fetched (metadata service, STS): FC's retry may succeed,
            # and a permanent misconfiguration still ends in the on-failure destination, not lost.
            code, retryable = "CredentialsUnavailable", self.permissions
        else:
            code = type(inner).__name__
        detail = getattr(inner, "message", None) or str(inner)
        return ServiceError(f"{where} failed: {code}: {short(detail)}", retryable=retryable, code=code,
                            ambiguous=ambiguous), None
