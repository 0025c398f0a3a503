"""Exactly one task and a recorded outcome for every clip, whatever fails and wherever.

Every single fault point of each flow (every port call × before / after its
effect / the invocation dying before / after it) is run to the end with FC's
and MNS's redeliveries, then the promise is checked (``World.check``).
Hypothesis explores double faults and delivery orders. The five regressions
below are the cases that broke before the claim records were made write-once.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.functional.simulation import FLOWS, KINDS, World

# How each flow's notifications come: on time, twice, late (after the upload's retries), early
# (handled before the submit call returns).
DELIVERIES = {"on-time": {}, "twice": {"copies": 2}, "late": {"delay": 400.0}, "early": {"early": True}}


def calls_of(flow: str, **delivery) -> int:
    return len(World(FLOWS[flow], **delivery).run().faults.calls)


@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("delivery", sorted(DELIVERIES))
def test_without_faults(flow, delivery):
    world = World(FLOWS[flow], **DELIVERIES[delivery]).run()
    world.check()
    assert not world.dead


@pytest.mark.parametrize("flow", sorted(FLOWS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_single_fault_point(flow, kind):
    """Every port call of the flow, faulted one at a time; the flow still ends as promised."""
    count = calls_of(flow)
    assert count > 5
    for number in range(count + 2):  # (a fault may add calls: the retried path is covered as it goes)
        world = World(FLOWS[flow], {number: kind}).run()
        try:
            world.check()
        except AssertionError as exc:
            raise AssertionError(f"{flow}: {kind} at call {number} ({world.faults.injected}): {exc}") from exc


@pytest.mark.parametrize("flow", ["plain", "resubmit", "auto", "over-cap"])
@pytest.mark.parametrize("delivery", ["twice", "late", "early"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_single_fault_point_with_odd_deliveries(flow, delivery, kind):
    count = calls_of(flow, **DELIVERIES[delivery])
    for number in range(count):
        world = World(FLOWS[flow], {number: kind}, duplicate_uploads=True, **DELIVERIES[delivery]).run()
        try:
            world.check()
        except AssertionError as exc:
            raise AssertionError(f"{flow}/{delivery}: {kind} at call {number} ({world.faults.injected}): "
                                 f"{exc}") from exc


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=st.sampled_from(sorted(FLOWS)), delivery=st.sampled_from(sorted(DELIVERIES)),
       duplicate=st.booleans(),
       faults=st.dictionaries(st.integers(0, 60), st.sampled_from(KINDS), min_size=2, max_size=2))
def test_double_faults(flow, delivery, duplicate, faults):
    world = World(FLOWS[flow], faults, duplicate_uploads=duplicate, **DELIVERIES[delivery]).run()
    world.check()


# --- the regressions (each failed before the claim records were made write-once) ----------------


def test_a_resubmit_throttled_once_is_resubmitted_and_recorded():
    """The resubmit's CreateMediaConvertTask throttled once: its marker stayed, every redelivery was
    a 'duplicate', the claim stayed submitted forever and no manifest was written."""
    world = World(FLOWS["resubmit"], {("media.submit", 1): "before"}).run()
    world.check()
    assert [name for _, name, _ in world.faults.injected] == ["media.submit"]


def test_a_crash_after_imm_accepted_the_resubmit_is_recovered():
    """IMM made the resubmit's task, then the invocation died before recording it: the redelivered
    failure was a 'duplicate' and the new task's success 'stale'; no manifest."""
    world = World(FLOWS["resubmit"], {("media.submit", 1): "crash_after"}).run()
    world.check()
    assert len(world.imm.tasks) == 2


def test_a_takeover_whose_record_failed_once_is_not_stuck():
    """A holder died before submitting; the takeover's record was made but its put answered 503: every
    later delivery was ClaimBusy until FC gave up, and nothing was submitted."""
    world = World(FLOWS["plain"], {("media.submit", 0): "crash_before", ("store.create", 2): "after"}).run()
    world.check()
    assert not world.dead


@pytest.mark.parametrize("flow", ["plain", "resubmit"])
def test_an_answer_lost_after_imm_accepted_makes_no_second_task(flow):
    """A read timeout or reset after IMM made the task: a second task was billed."""
    world = World(FLOWS[flow], {("media.submit", 0): "after"}).run()
    world.check()
    assert len(world.imm.tasks) == FLOWS[flow].attempts


# The fifth, a versioned output bucket, is refused by the OSS adapter:
# tests/wire/test_oss_wire.py::test_a_versioned_bucket_is_refused_for_claims.


def test_without_size_retries_an_output_over_its_cap_is_recorded_as_not_met():
    """AUTOANIM_TARGET_RETRIES=0: one task; the manifest says the cap was not met (never silently over)."""
    import json

    from tests.functional.simulation import BUCKET

    world = World(FLOWS["over-cap"])
    world.settings = world.settings.model_copy(update={"target_retries": 0})
    world.run()
    assert len(world.imm.tasks) == 1 and not world.dead and not world.unexpected
    (claim,) = world.claims().values()
    manifest = json.loads(world.store.objects[(BUCKET, claim.plan.manifest_key)])
    assert manifest["status"] == "Succeeded" and manifest["met"] is False
    assert manifest["output"]["bytes"] > manifest["cap"] == 1_000_000
