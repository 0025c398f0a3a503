"""Load and fault benchmark: a burst of OSS upload events through ``on_upload`` on the real SDKs.

    .venv/bin/python bench/load.py [--events 2000] [--qps 50] [--burst 50] [--workers 48] [--seed 1]

What runs: ``index.on_upload(event, context)`` per delivery, each invocation
building its ``App`` through ``bootstrap`` (``AUTOANIM_BACKEND=imm``: the real
``alibabacloud-imm20200930`` and ``alibabacloud-oss-v2`` clients, time budget
from ``context.function.timeout`` = 60 s), against a loopback ``ImmEmulator``
(token bucket of --qps holding --burst tokens, by default one second's worth;
--burst 1 makes the floor strict; plus random throttling, 5xx and slow
answers) and ``OssEmulator``. Both emulators run in a child process so that
they do not share the GIL with the "functions" (``--emulators thread`` runs
them in this process instead, for comparison; the same pipe drives both).

FC is simulated: --workers concurrent invocations (instances) draw deliveries
from a queue; when ``on_upload`` raises a retryable error the same event is
delivered again later (FC's async retry: --attempts at most, exponential
backoff from --redeliver-delay); an event that fails every attempt is "lost".

Workload (seeded): --events deliveries, of which 10% duplicate an earlier
delivery (some at once, so two copies are in flight together), 5% are keys
under the output prefix, 2% malformed events; the rest are distinct videos
(default profile, clip tags, gif+webp, sidecars, hostile or ``anim=off`` tags;
keys with spaces, ``+``, ``%`` and non-ASCII).

Checks (exit 1 when one fails): every expected (object, output) has exactly
one IMM task, nothing else has any, 0 events lost, 0 loops, and the wall time
is at most --max-ratio times the QPS floor (tasks / QPS). Stops by itself:
bounded deliveries and a hard --deadline.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # the package, and tests/support (the emulators)

BUCKET = "bench-bucket"
PREFIX = "animated/"
VIDEO = b"\x00\x00\x00\x18ftypmp42 bench video"
HOSTILE_TAGS = [{"anim-fps": "1000"}, {"anim-name": "../../etc"}, {"anim-width": "100000"}, {"anim-fps": "nan"},
                {"anim-frames": "inf"}, {"anim-zoom": "2"}, {"anim-profile": "nope"}, {"anim-start": "-5"}]
CLIP_TAGS = {"anim-start": "2", "anim-duration": "4", "anim-fps": "10", "anim-width": "320", "anim-name": "clip"}
SIDECAR = json.dumps({"animations": [{"name": "intro", "duration": 2, "fps": 10},
                                     {"name": "sticker", "profile": "sticker"}]}).encode()


# --- the emulators, in their own process ----------------------------------------------------


def serve(conn: Any, imm_options: dict[str, Any]) -> None:
    """Run both emulators until told to stop; commands and answers go through ``conn`` (a Pipe end)."""
    from tests.support.emulators import serve_over_pipe
    from tests.support.emulators.imm_server import ImmEmulator
    from tests.support.emulators.oss_server import OssEmulator

    imm, oss = ImmEmulator(**imm_options), OssEmulator()

    def reset(_: Any) -> float:
        imm.reset_counters()
        return time.process_time()

    def report(_: Any) -> dict[str, Any]:
        with imm.lock:
            created = [task["Request"] for task in imm.tasks.values()]
            started = [task["StartTime"] for task in imm.tasks.values()]
            stats = dict(imm.stats)
        return {"imm": stats, "created": created, "started": started, "oss_requests": oss.stats["requests"],
                "cpu": time.process_time()}

    serve_over_pipe(conn, [imm, oss], oss, BUCKET, {"reset": reset, "report": report})


# --- the workload -------------------------------------------------------------------------------


@dataclass
class Upload:
    """One distinct object (or malformed event) and what it must lead to."""

    kind: str
    key: str
    event: bytes
    expected: int  # tasks (outputs) expected for this object
    tags: dict[str, str] | None = None
    sidecar: bytes | None = None


def oss_event(key: str, name: str = "ObjectCreated:PutObject") -> bytes:
    from autoanim.fc_events import oss_event as event

    return event(BUCKET, key, size=len(VIDEO), etag=uuid.uuid4().hex.upper(), event_name=name, region="cn-hangzhou")


def workload(n: int, rng: random.Random) -> tuple[list[Upload], list[int]]:
    """Distinct uploads and the delivery order (indexes into uploads; duplicates repeat one)."""
    n_dup, n_prefix, n_bad = round(n * 0.10), round(n * 0.05), round(n * 0.02)
    uploads: list[Upload] = []
    for i in range(n_bad):
        good = json.loads(oss_event(f"videos/bad-{i}.mp4"))
        broken = [b"{not json", b"", b"\xff\xfe\x00", json.dumps({"events": "none"}).encode(),
                  json.dumps({"Records": good["events"]}).encode(), oss_event("/absolute/bad.mp4"),
                  json.dumps({"events": [{"eventName": "ObjectCreated:PutObject"}]}).encode(),
                  oss_event("videos/" + "k" * 1100 + ".mp4")][i % 8]
        uploads.append(Upload("malformed", f"malformed-{i}", broken, 0))
    for i in range(n_prefix):
        key = f"{PREFIX}videos/{i:05d}" + (".webp" if i % 2 else ".mp4")
        uploads.append(Upload("output-prefix", key, oss_event(key), 0, tags=None))
    for i in range(n - n_dup - n_prefix - n_bad):
        name = f"videos/{i:05d}.mp4" if i % 4 else f"videos/My Clip +{i} 100% Überfahrt 日本.mov"
        draw = rng.random()
        if draw < 0.05:
            uploads.append(Upload("hostile", name, oss_event(name), 0, tags=HOSTILE_TAGS[i % len(HOSTILE_TAGS)]))
        elif draw < 0.08:
            uploads.append(Upload("off", name, oss_event(name), 0, tags={"anim": "off"}))
        elif draw < 0.13:
            uploads.append(Upload("gif+webp", name, oss_event(name), 2, tags={**CLIP_TAGS, "anim-format": "gif+webp"}))
        elif draw < 0.28:
            uploads.append(Upload("clip-tags", name, oss_event(name, "ObjectCreated:CompleteMultipartUpload"), 1,
                                  tags=CLIP_TAGS))
        elif draw < 0.31:
            uploads.append(Upload("sidecar", name, oss_event(name), 2, tags={"anim": "sidecar"}, sidecar=SIDECAR))
        else:
            uploads.append(Upload("default", name, oss_event(name), 1))
    order = list(range(len(uploads)))
    rng.shuffle(order)
    for _ in range(n_dup):  # a second delivery of the same event: half at once (in flight together), half later
        original = rng.randrange(len(order))
        at = original + 1 if rng.random() < 0.5 else rng.randrange(original + 1, len(order) + 1)
        order.insert(at, order[original])
    return uploads, order


# --- FC, simulated ---------------------------------------------------------------------------


@dataclass(order=True)
class Delivery:
    due: float
    seq: int
    upload: int = field(compare=False)
    attempt: int = field(compare=False, default=1)


@dataclass
class Tally:
    invocations: int = 0
    redeliveries: int = 0
    lost: list[str] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    retry_codes: Counter = field(default_factory=Counter)
    handled_at: Counter = field(default_factory=Counter)  # delivery number (attempt) that finally succeeded
    latencies: list[float] = field(default_factory=list)


def make_invoke(settings: Any, backoff: tuple[float, float] | None = None):
    import index
    from autoanim import bootstrap

    def build(context: Any) -> Any:
        app = bootstrap.build(settings, context)
        if backoff:  # an experiment on the adapter's backoff (its public attributes), not the shipped setting
            app.media.base_delay, app.media.max_delay = backoff
        return app

    def invoke(event: bytes) -> dict[str, Any]:
        context = SimpleNamespace(
            request_id=str(uuid.uuid4()), region="cn-hangzhou", account_id="1",
            credentials=SimpleNamespace(access_key_id="LTAI5tBenchKeyId", access_key_secret="bench-secret-xyz",
                                        security_token="bench-token-xyz"),
            function=SimpleNamespace(name="on_upload", handler="index.on_upload", memory=512, timeout=60))
        return index.on_upload(event, context, app=build(context))

    return invoke


def run_fc(uploads: list[Upload], order: list[int], invoke: Any, args: argparse.Namespace) -> tuple[Tally, float]:
    from autoanim.errors import AutoanimError

    tally = Tally()
    lock = threading.Lock()
    queue = [Delivery(0.0, seq, index) for seq, index in enumerate(order)]
    heapq.heapify(queue)
    seq = len(queue)

    def deliver(item: Delivery) -> tuple[Delivery, BaseException | None]:
        started = time.monotonic()
        try:
            report = invoke(uploads[item.upload].event)
        except BaseException as exc:  # noqa: BLE001 - every failure is classified by the caller
            return item, exc
        finally:
            with lock:
                tally.latencies.append(time.monotonic() - started)
        with lock:
            for name, entries in report.items():
                tally.outcomes[name] += len(entries)
        return item, None

    start = time.monotonic()
    running: set = set()
    with ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="fc") as pool:
        while queue or running:
            now = time.monotonic() - start
            if now > args.deadline:
                tally.lost += [uploads[d.upload].key for d in queue] + ["(in flight at the deadline)"] * len(running)
                break
            while queue and queue[0].due <= now and len(running) < args.workers:
                item = heapq.heappop(queue)
                tally.invocations += 1
                running.add(pool.submit(deliver, item))
            timeout = max(0.0, min(queue[0].due - now, 0.05)) if queue and len(running) < args.workers else 0.05
            done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
            for future in done:
                running.discard(future)
                item, error = future.result()
                if error is None:
                    tally.handled_at[item.attempt] += 1
                    continue
                key = uploads[item.upload].key
                if not (isinstance(error, AutoanimError) and error.retryable):
                    tally.crashed.append(f"{key}: {type(error).__name__}: {error}")
                    continue
                tally.retry_codes[getattr(error, "code", "?")] += 1
                report = getattr(error, "report", None)
                for entry in (report.retry if report is not None else []):
                    tally.retry_codes["entry:" + str(entry.code)] += 1
                if item.attempt >= args.attempts:
                    tally.lost.append(key)
                    continue
                delay = min(args.redeliver_delay * 2 ** (item.attempt - 1), 8.0) * (0.5 + random.random())
                tally.redeliveries += 1
                heapq.heappush(queue, Delivery(time.monotonic() - start + delay, seq, item.upload, item.attempt + 1))
                seq += 1
        wall = time.monotonic() - start
        if running:
            pool.shutdown(wait=False, cancel_futures=True)
    return tally, wall


# --- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="deliveries in the burst (default 2000)")
    parser.add_argument("--qps", type=float, default=50.0, help="IMM QPS limit (token bucket refill rate)")
    parser.add_argument("--burst", type=float, default=None,
                        help="token bucket size of the QPS limit (default: --qps, one second's worth; "
                             "1: no request may come early, the strict floor)")
    parser.add_argument("--workers", type=int, default=48, help="concurrent FC invocations (default 48)")
    parser.add_argument("--emulators", choices=("process", "thread"), default="process",
                        help="run the emulators in a child process (default) or in this one, sharing its GIL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--attempts", type=int, default=8, help="deliveries per event at most (FC async retry)")
    parser.add_argument("--redeliver-delay", type=float, default=0.5, help="first redelivery delay, seconds")
    parser.add_argument("--throttle", type=float, default=0.05, help="random IMM throttling rate")
    parser.add_argument("--errors", type=float, default=0.02, help="random IMM 500 rate")
    parser.add_argument("--timeouts", type=float, default=0.002, help="random IMM slow-answer rate")
    parser.add_argument("--timeout-seconds", type=float, default=11.0,
                        help="how long a slow answer takes (over the adapter's 10 s read timeout)")
    parser.add_argument("--timeouts-apply", action="store_true",
                        help="a timed-out CreateMediaConvertTask still creates its task (the at-least-once window)")
    parser.add_argument("--imm-attempts", type=int, default=None,
                        help="AUTOANIM_IMM_ATTEMPTS: IMM calls per invocation (default: the setting's, 8)")
    parser.add_argument("--backoff", type=float, nargs=2, metavar=("BASE", "CAP"), default=None,
                        help="experiment: the IMM adapter's backoff base and cap in seconds (shipped: 0.05 1)")
    parser.add_argument("--deadline", type=float, default=300.0, help="hard stop, seconds")
    parser.add_argument("--max-ratio", type=float, default=1.2, help="wall / QPS floor target")
    parser.add_argument("--log", default=os.devnull, help="where the functions' JSON log lines go")
    args = parser.parse_args(argv)
    args.burst = args.qps if args.burst is None else args.burst

    from autoanim import log
    from autoanim.config import Settings

    rng = random.Random(args.seed)
    uploads, order = workload(args.events, rng)
    parent, child = multiprocessing.Pipe()
    imm_options = {"qps_limit": args.qps, "burst": args.burst, "throttle_rate": args.throttle, "error_rate": args.errors,
                   "timeout_rate": args.timeouts, "timeout_seconds": args.timeout_seconds,
                   "timeout_applies": args.timeouts_apply, "seed": args.seed}
    if args.emulators == "process":
        server: Any = multiprocessing.get_context("spawn").Process(target=serve, args=(child, imm_options), daemon=True)
    else:
        server = threading.Thread(target=serve, args=(child, imm_options), name="emulators", daemon=True)
    server.start()
    try:
        imm_endpoint, oss_endpoint = parent.recv()
        seeds = [(u.key, VIDEO, u.tags) for u in uploads if u.kind != "malformed"]
        seeds += [(u.key + ".anim.json", u.sidecar, None) for u in uploads if u.sidecar]
        parent.send(("seed", seeds))
        parent.recv()
        settings = Settings.from_env({
            "AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "bench-project", "IMM_REGION": "cn-hangzhou",
            "IMM_ENDPOINT": imm_endpoint, "OSS_ENDPOINT": oss_endpoint, "IMM_NOTIFY_TOPIC": "bench-topic",
            "OUTPUT_PREFIX": PREFIX, "AUTOANIM_IMM_ATTEMPTS": str(args.imm_attempts or "")})
        log.setup()
        log_file = open(args.log, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        for handler in log._logger.handlers:
            handler.setStream(log_file)
        invoke = make_invoke(settings, tuple(args.backoff) if args.backoff else None)
        invoke(oss_event("warm-up/not-a-video.txt"))  # imports the SDKs once, as a warm instance would have
        parent.send(("reset", None))
        server_cpu = parent.recv()
        cpu = time.process_time()
        tally, wall = run_fc(uploads, order, invoke, args)
        cpu = time.process_time() - cpu
        parent.send(("report", None))
        report = parent.recv()
        report["cpu"] = (cpu, report["cpu"] - server_cpu if args.emulators == "process" else None)
        log_file.close()
        parent.send(("stop", None))
        parent.recv()
    finally:
        server.join(timeout=5)
        if server.is_alive() and args.emulators == "process":
            server.terminate()
    return summarise(args, uploads, order, tally, wall, report)


def summarise(args: argparse.Namespace, uploads: list[Upload], order: list[int], tally: Tally, wall: float,
              report: dict[str, Any]) -> int:
    per_output: Counter = Counter()
    per_object: dict[str, set] = {}
    for params in report["created"]:
        source = params["Sources"][0]["URI"].removeprefix(f"oss://{BUCKET}/")
        for target in params["Targets"]:
            for animation in target["Image"]["Animations"]:
                per_output[(source, animation["URI"])] += 1
                per_object.setdefault(source, set()).add(animation["URI"])
    by_key = {u.key: u for u in uploads}
    expected = {u.key: u.expected for u in uploads if u.expected}
    tasks = len(report["created"])
    wrong_count = sorted(k for k, v in per_output.items() if v != 1)
    missing = sorted(k for k, n in expected.items() if len(per_object.get(k, ())) != n)
    unexpected = sorted(k for k in per_object if k not in expected)
    loops = sum(n for (source, _), n in per_output.items() if source.startswith(PREFIX))
    refused = sum(n for (source, _), n in per_output.items() if by_key.get(source) and not by_key[source].expected)
    floor = sum(expected.values()) / args.qps
    ratio = wall / floor if floor else float("inf")
    imm = report["imm"]
    latencies = sorted(tally.latencies)
    times = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in report["started"])
    progress = " / ".join(f"{times[min(len(times) - 1, len(times) * p // 100)] - times[0]:.1f}" for p in (50, 90, 99))
    kinds = Counter(uploads[i].kind for i in order)
    functions_cpu, emulators_cpu = report["cpu"]

    rows = [
        ("deliveries (events, incl. duplicates)", f"{len(order)}  ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})"),
        ("duplicate deliveries", str(len(order) - len(uploads))),
        ("FC invocations / redeliveries", f"{tally.invocations} / {tally.redeliveries}"),
        ("tasks expected / created", f"{sum(expected.values())} / {tasks}"),
        ("(object, output) with a count other than 1", str(len(wrong_count) + len(missing))),
        ("tasks for objects that expect none", str(len(unexpected))),
        ("tasks for malformed/rejected/off", str(refused)),
        ("loops (tasks whose source is under the prefix)", str(loops)),
        ("events lost (every delivery failed)", str(len(tally.lost))),
        ("non-retryable exceptions out of on_upload", str(len(tally.crashed))),
        ("wall time", f"{wall:.1f} s"),
        ("QPS floor (tasks / QPS)", f"{floor:.1f} s at {args.qps:g} QPS"),
        ("wall / floor", f"{ratio:.2f}x (target <= {args.max_ratio:g}x)"),
        ("CPU s during the run: functions / emulators",
         f"{functions_cpu:.1f} / {emulators_cpu:.1f}" if emulators_cpu is not None
         else f"{functions_cpu:.1f} (both, one process)"),
        ("IMM requests sent", str(imm.get("requests", 0))),
        ("  throttled (QPS limit + injected)", str(imm.get("throttle", 0))),
        ("  5xx injected", str(imm.get("error", 0))),
        ("  slow answers (timeouts)", f"{imm.get('timeout', 0)} (timeout_applies={args.timeouts_apply})"),
        ("  accepted (tasks created)", str(imm.get("created", 0))),
        ("OSS requests", str(report["oss_requests"])),
        ("events handled at delivery 1 / 2 / 3 / 4 / later",
         " / ".join(str(tally.handled_at[n]) for n in (1, 2, 3, 4))
         + f" / {sum(v for n, v in tally.handled_at.items() if n > 4)}"),
        ("on_upload outcomes", ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))),
        ("retry causes (invocation / entry codes)", ", ".join(f"{k} {v}" for k, v in sorted(tally.retry_codes.items()))),
        ("tasks created by (first task + s): 50% / 90% / 99% / all",
         f"{progress} / {times[-1] - times[0]:.1f} s" if times else "-"),
        ("invocation latency p50 / p95 / max",
         f"{_pct(latencies, 50):.2f} / {_pct(latencies, 95):.2f} / {latencies[-1] if latencies else 0:.2f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"bench/load.py --events {args.events} --qps {args.qps:g} --burst {args.burst:g} --workers {args.workers} "
          f"--seed {args.seed} --emulators {args.emulators} --imm-attempts {args.imm_attempts or 'default'}"
          f"{' --backoff {:g} {:g}'.format(*args.backoff) if args.backoff else ''}; {os.cpu_count()} CPUs")
    print(f"| {'measure'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    failures = []
    if wrong_count or missing or unexpected or refused:
        failures.append(f"exactly-once: {len(wrong_count)} outputs with !=1 task {wrong_count[:3]}, "
                        f"{len(missing)} objects short {missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")
    if tally.lost:
        failures.append(f"{len(tally.lost)} events lost: {tally.lost[:3]}")
    if tally.crashed:
        failures.append(f"{len(tally.crashed)} non-retryable exceptions: {tally.crashed[:3]}")
    if loops:
        failures.append(f"{loops} loops")
    if ratio > args.max_ratio:
        failures.append(f"wall {ratio:.2f}x the QPS floor, over {args.max_ratio:g}x")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    correct = not (wrong_count or missing or unexpected or refused or tally.lost or tally.crashed or loops)
    verdict = "exactly-once, 0 lost, 0 loops" if correct else "INVARIANT FAILED"
    print(f"{verdict}; wall {ratio:.2f}x the QPS floor ({'OK' if ratio <= args.max_ratio else 'over'} "
          f"the {args.max_ratio:g}x target)")
    return 1 if failures else 0


def _pct(values: list[float], pct: int) -> float:
    return values[min(len(values) - 1, len(values) * pct // 100)] if values else 0.0


if __name__ == "__main__":
    sys.exit(main())
