"""The fault table of docs/reliability.md, from the claim protocol's simulation.

    .venv/bin/python bench/faults.py

Runs every single fault point of every flow of ``tests/functional/simulation.py``
(each port call × before its effect / after it with the answer lost / the
invocation dying before / after it), lets FC redeliver as s.yaml configures,
checks the promise, and prints one Markdown row per (port call, fault kind):
how many fault points, how many ended as promised, the IMM tasks made, the
redeliveries they cost and how many events reached the dead-letter topic.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.functional.simulation import FLOWS, KINDS, World


def main() -> int:
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failures = []
    for name, flow in sorted(FLOWS.items()):
        calls = World(flow).run().faults.calls
        for number, call in enumerate(calls):
            for kind in KINDS:
                world = World(flow, {number: kind}).run()
                row = rows[(call, kind)]
                row["points"] += 1
                try:
                    world.check()
                    row["kept"] += 1
                except AssertionError as exc:
                    failures.append(f"{name}: {kind} at call {number} ({call}): {exc}")
                row["tasks"] += len(world.imm.tasks)
                row["expected"] += flow.clips * (flow.attempts + (1 if flow.auto else 0))  # a probe is a task too
                row["redeliveries"] += sum(world.invocations.values()) - len(flow.events) - len(world.imm.tasks)
                row["dead"] += len(world.dead)
    print("| port call | fault | fault points | promise kept | IMM tasks made / needed | extra deliveries | "
          "dead-lettered |")
    print("|---|---|---|---|---|---|---|")
    for (call, kind), row in sorted(rows.items()):
        print(f"| `{call}` | {kind} | {row['points']} | {row['kept']} | {row['tasks']} / {row['expected']} | "
              f"{row['redeliveries']} | {row['dead']} |")
    total = sum(r["points"] for r in rows.values())
    kept = sum(r["kept"] for r in rows.values())
    print(f"\n{kept} of {total} single fault points kept the promise ({len(FLOWS)} flows: {', '.join(sorted(FLOWS))})")
    for failure in failures:
        print("FAILED", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
