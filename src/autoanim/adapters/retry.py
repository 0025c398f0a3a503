"""The cloud adapters' retries (IMM, FC), on tenacity.

tenacity rather than stamina: stamina adds its jitter to the exponential instead of
drawing the whole pause at random (full jitter), stops on a wall-clock total rather
than on a budget that must still hold the pause plus one more call, and cannot take
a sleep per call (only a process-wide testing mode); tenacity's stop, wait, retry
and sleep are plain callables, which is all this needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_random_exponential

from ..errors import AutoanimError, ServiceError

T = TypeVar("T")

# HTTP statuses worth another try: throttling, timeouts and any 5xx. 401/403 only where a permission
# the role lacks is the operator's to fix (the event is kept: FC retries, then the dead-letter topic),
# not where the caller is an operator's command that should stop and say so (FC InvokeFunction).
_TRY_AGAIN = {408, 429}


def retryable_status(status: int | None, *, permissions: bool) -> bool:
    return bool(status) and (status >= 500 or status in _TRY_AGAIN or (permissions and status in (401, 403)))


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

    A failure is tried again when ``retry_if`` holds for its translation. The pause is
    drawn at random below ``base_delay * 2**(n - 1)`` capped at ``max_delay`` (full
    jitter), raised to the server's retry-after (never over the cap). A retry is made
    only when its pause plus ``reserve`` (one more call: the read timeout) fits in
    ``time_left()``; otherwise, or after the last attempt, the last error is raised at
    once with a note saying why.
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
        error: ServiceError = state.outcome.exception()  # type: ignore[union-attr,assignment]
        raise type(error)(f"{error.message} ({why[0]})", retryable=error.retryable, code=error.code,
                          status=error.status, request_id=error.request_id,
                          ambiguous=error.ambiguous) from error.__cause__

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, AutoanimError) and retry_if(exc)),
        wait=wait, stop=stop, sleep=sleep, retry_error_callback=give_up,
    )
    return retrying(attempt)

