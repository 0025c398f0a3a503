"""The adapters' retry policy, by its properties: bounded, capped, jittered, within the budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoanim.adapters import retry
from autoanim.errors import ServiceError


def assert_backoff(pauses: list[float], *, base: float, cap: float, floor: float = 0.0) -> None:
    """Every pause within [0, cap], under a ceiling that doubles from ``base`` up to the cap
    (so never decreasing), and at least the server's retry-after (``floor``) up to the cap."""
    for n, pause in enumerate(pauses):
        assert min(floor, cap) <= pause <= cap
        assert pause <= max(min(cap, base * 2**n), min(floor, cap))


class Clock:
    def __init__(self, budget: float | None):
        self.left = budget
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.left is not None:
            self.left -= seconds


@given(
    attempts=st.integers(1, 8), failures=st.integers(0, 10),
    base=st.floats(0.001, 2.0), cap=st.floats(0.001, 5.0),
    retry_after=st.none() | st.floats(0.0, 10.0),
    budget=st.none() | st.floats(0.0, 30.0), reserve=st.floats(0.0, 10.0),
)
def test_retries_are_bounded_capped_and_within_the_budget(attempts, failures, base, cap, retry_after, budget,
                                                          reserve):
    clock = Clock(budget)
    calls = []

    def send():
        calls.append(1)
        if len(calls) <= failures:
            raise OSError("reset")
        return "answer"

    try:
        answer = retry.call(
            send, lambda exc: (ServiceError("refused", retryable=True), retry_after),
            attempts=attempts, base_delay=base, max_delay=cap, sleep=clock.sleep,
            time_left=None if budget is None else (lambda: clock.left), reserve=reserve,
        )
    except ServiceError as error:
        assert isinstance(error.__cause__, OSError)  # the SDK's exception stays the cause
        assert len(calls) <= failures
        if len(calls) == attempts:
            assert error.message.endswith(f"(gave up after {attempts} attempt{'s' if attempts > 1 else ''})")
        else:
            assert f"(stopped after {len(calls)} attempts: " in error.message and budget is not None
    else:
        assert answer == "answer" and len(calls) == failures + 1
    assert len(calls) <= attempts and len(clock.sleeps) == len(calls) - 1
    assert_backoff(clock.sleeps, base=base, cap=cap, floor=retry_after or 0.0)
    if budget is not None:
        assert sum(clock.sleeps) + (reserve if clock.sleeps else 0) <= budget + 1e-9  # room kept for a call


@pytest.mark.parametrize("error", [
    ServiceError("bad request", retryable=False),
    ServiceError("may have been made", retryable=True, ambiguous=True),
])
def test_what_the_predicate_refuses_is_raised_at_once(error):
    clock = Clock(None)

    def send():
        raise OSError("reset")

    with pytest.raises(ServiceError) as caught:
        retry.call(send, lambda exc: (error, None), attempts=5, base_delay=0.1, max_delay=1.0,
                   retry_if=lambda e: e.retryable and not e.ambiguous, sleep=clock.sleep)
    assert caught.value is error and "attempt" not in error.message and clock.sleeps == []
