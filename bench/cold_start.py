"""Cold start and warm per-event cost of on_upload, against loopback IMM and OSS emulators.

Side by side in one run (medians of --runs fresh processes each):
  baseline   python -c pass
  sdk-only   a fresh process that only imports alibabacloud_imm20200930.client
  on_upload  a fresh process that imports index and handles one tagged PutObject
             event end to end (real SDKs, HTTP to 127.0.0.1)
and the warm cost: one process handling --warm events, median per event.

    .venv/bin/python bench/cold_start.py [--runs 7] [--warm 200] [--python .venv310/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.support.emulators.imm_server import ImmEmulator
from tests.support.emulators.oss_server import OssEmulator

TAGS = {"anim-format": "webp", "anim-start": "5", "anim-duration": "25", "anim-fps": "15", "anim-interval": "1",
        "anim-width": "0.5", "anim-height": "0.5", "anim-scale": "fit"}
EVENT = json.loads((ROOT / "events" / "oss-put-tagged.json").read_text())

HANDLE_ONE = r"""
import json, sys, time, types
t0 = time.perf_counter()
import index
t1 = time.perf_counter()
ctx = types.SimpleNamespace(request_id="r", credentials=None, function=types.SimpleNamespace(timeout=60))
report = index.on_upload(sys.argv[1].encode(), ctx)
t2 = time.perf_counter()
assert len(report["submitted"]) == 1, report
print(json.dumps({"import": t1 - t0, "handle": t2 - t1}))
"""

WARM = r"""
import json, sys, time, types
import index
ctx = types.SimpleNamespace(request_id="r", credentials=None, function=types.SimpleNamespace(timeout=60))
events = json.loads(sys.stdin.read())
times = []
for event in events:
    t = time.perf_counter()
    report = index.on_upload(json.dumps(event).encode(), ctx)
    times.append(time.perf_counter() - t)
    assert len(report["submitted"]) == 1, report
print(json.dumps(times))
"""


def event_for(key: str) -> dict:
    event = json.loads(json.dumps(EVENT))
    event["events"][0]["oss"]["object"]["key"] = key
    return event


def env(imm: ImmEmulator, oss: OssEmulator) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMM_", "OSS_", "AUTOANIM_", "ALIBABA_CLOUD"))}
    return {**base, "PYTHONPATH": f"{ROOT / 'src'}", "AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "test-project",
            "IMM_NOTIFY_TOPIC": "test-mns-topic", "IMM_REGION": "cn-hangzhou", "IMM_ENDPOINT": imm.endpoint,
            "OSS_ENDPOINT": oss.endpoint, "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tBench",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret", "ALIBABA_CLOUD_SECURITY_TOKEN": "bench-token"}


def timed(cmd: list[str], environ: dict[str, str], stdin: str | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, env=environ, capture_output=True, text=True, check=True, cwd=ROOT, input=stdin)
    return time.perf_counter() - t, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--python", default=sys.executable, help="interpreter to measure (e.g. .venv310/bin/python)")
    args = parser.parse_args()
    py = args.python
    version = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, check=True).stdout.strip()

    with ImmEmulator() as imm, OssEmulator() as oss:
        environ = env(imm, oss)
        rows: dict[str, list[float]] = {"baseline": [], "sdk-only": [], "on_upload": [], "import": [], "handle": []}
        for run in range(args.runs):  # interleaved so machine noise hits all rows alike
            rows["baseline"].append(timed([py, "-c", "pass"], environ)[0])
            rows["sdk-only"].append(timed([py, "-c", "import alibabacloud_imm20200930.client"], environ)[0])
            key = f"video-demo/cold-{run}.mov"
            oss.put_object("test-bucket", key, b"video", tags=TAGS)
            wall, out = timed([py, "-c", HANDLE_ONE, json.dumps(event_for(key))], environ)
            inner = json.loads(out)
            rows["on_upload"].append(wall)
            rows["import"].append(inner["import"])
            rows["handle"].append(inner["handle"])

        keys = [f"video-demo/warm-{i}.mov" for i in range(args.warm)]
        for key in keys:
            oss.put_object("test-bucket", key, b"video", tags=TAGS)
        _, out = timed([py, "-c", WARM], environ, stdin=json.dumps([event_for(k) for k in keys]))
        warm = json.loads(out)[1:]  # the first is the cold one
        oss_calls = len(oss.requests) // (args.runs + args.warm)

    med = {k: statistics.median(v) * 1000 for k, v in rows.items()}
    print(f"python {version}, {args.runs} runs each (median ms), loopback IMM and OSS emulators")
    print(f"{'process':<42} {'ms':>8} {'vs sdk-only':>12}")
    for label, key in (("python -c pass", "baseline"), ("import alibabacloud_imm20200930.client", "sdk-only"),
                       ("import index + handle one event", "on_upload")):
        print(f"{label:<42} {med[key]:>8.0f} {med[key] / med['sdk-only']:>11.2f}x")
    print(f"  of which: import index {med['import']:.0f} ms, first event {med['handle']:.0f} ms (inside the process)")
    w = sorted(x * 1000 for x in warm)
    print(f"warm per event ({len(w)} events): median {statistics.median(w):.1f} ms, "
          f"p90 {w[int(len(w) * 0.9)]:.1f} ms; {oss_calls} OSS + 1 IMM requests per event")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
