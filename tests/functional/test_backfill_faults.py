"""``autoanim backfill --submit`` under faults at every port call it makes: the store's listing and
reads, and FC's InvokeFunction, each failing before its effect, after it (the answer lost), or the
command dying there. The operator then runs it again with ``--resume``, as the docs say; in the end
every video with clips has been handed to FC, and FC (which refuses a repeated task id) holds each
hand-over once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from autoanim import backfill
from autoanim.adapters.fc import Invocation
from autoanim.adapters.memory import MemoryObjectStore, RecordingMediaService
from autoanim.errors import AutoanimError
from autoanim.service import App
from tests.functional.simulation import KINDS, Crash, Faults, FaultyStore
from tests.functional.test_backfill_memory import seed


class FakeFc:
    """FC's async queue as the backfill sees it: a task id is queued once, a repeat is refused (409)."""

    def __init__(self, world):
        self.world, self.queued = world, {}

    def invoke_async(self, body: bytes, task_id: str) -> Invocation:
        def effect() -> Invocation:
            status = "duplicate" if task_id in self.queued else "accepted"
            self.queued.setdefault(task_id, body)
            return Invocation(task_id=task_id, status=status)

        return self.world.faults.call(self.world, "fc.invoke", effect)


def backfill_until_complete(settings, script, tmp_path) -> tuple[dict[str, bytes], int]:
    world = SimpleNamespace(faults=Faults(dict(script)), store=MemoryObjectStore(), clock=0.0)
    seed(world.store)
    fc = FakeFc(world)
    app = App(settings=settings, store=FaultyStore(world), media=RecordingMediaService())  # hands over only
    checkpoint = backfill.Checkpoint(tmp_path / "c.json", source="oss://bkt/videos/", via="fc", function="f")
    for runs in range(1, 6):  # the operator: again, with --resume, until it says complete
        try:
            summary = backfill.run(app, "bkt", "videos/", source="oss://bkt/videos/", via="fc",
                                   submit=backfill.fc_submitter(fc, "cn-hangzhou"), workers=1,
                                   start_after=checkpoint.load() if checkpoint.path.exists() else "",
                                   checkpoint=checkpoint)
        except (Crash, AutoanimError):  # the command died, or stopped with an error (exit 4)
            continue
        if summary.complete and not summary.failed:
            return fc.queued, runs
    raise AssertionError(f"backfill never completed ({world.faults.injected})")


@pytest.mark.parametrize("kind", KINDS)
def test_every_port_call_of_a_backfill_faulted(settings, tmp_path, kind):
    expected, _ = backfill_until_complete(settings, {}, tmp_path / "clean")
    world_calls = _count_calls(settings, tmp_path / "count")
    assert {"store.list", "store.get_tags", "fc.invoke"} <= set(world_calls), world_calls
    for number in range(len(world_calls)):
        queued, runs = backfill_until_complete(settings, {number: kind}, tmp_path / f"{kind}-{number}")
        assert queued.keys() == expected.keys(), f"{kind} at call {number} ({world_calls[number]})"
        assert runs <= 2


def _count_calls(settings, tmp_path) -> list[str]:
    world = SimpleNamespace(faults=Faults(), store=MemoryObjectStore(), clock=0.0)
    seed(world.store)
    app = App(settings=settings, store=FaultyStore(world), media=RecordingMediaService())
    backfill.run(app, "bkt", "videos/", source="oss://bkt/videos/", via="fc",
                 submit=backfill.fc_submitter(FakeFc(world), "cn-hangzhou"), workers=1)
    return world.faults.calls
