"""Backfill benchmark: `autoanim backfill` over N objects against loopback OSS and FC.

    .venv/bin/python bench/backfill.py [--objects 10000] [--workers 16] [--seed 1]

What runs: the real command (``cli.main(["backfill", "oss://.../videos/", ...])``)
with the real OSS v2 and FC 3.0 SDKs; the loopback ``OssEmulator`` and
``FcEmulator`` run in a child process (so they do not share this process's GIL).
Three phases over the same bucket: the dry run, ``--submit --rate 0`` (one async
invocation per video with clips), and the same ``--submit`` again (every
invocation refused as a repeat, 409). Figures: objects listed per second,
videos planned per second, invocations per second, and requests per video
(OSS: list pages + tag reads + sidecar reads + claims listing; FC: invocations).

Workload (seeded): 60% untagged videos (default profile), 15% tagged, 5% videos
with a sidecar (plus the sidecar object), 4% ``anim=off``, 3% hostile tags, 8%
non-videos, the rest our own outputs; keys with spaces, ``+``, ``%`` and
non-ASCII. Checks (exit 1 when one fails): the submit phase invokes once per
video with clips, the repeat invokes nothing. Bounded: N objects, three runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

BUCKET = "bench-bucket"
FLAVOURS = ["plain", "with space", "a+b", "100%", "日本語", "vidéo"]
TAGS = [{"anim-format": "gif", "anim-duration": "3", "anim-fps": "10"}, {"anim-profile": "sticker"},
        {"anim-format": "gif+webp", "anim-duration": "2"}]
HOSTILE = [{"anim-fps": "1000"}, {"anim-name": "../../x"}, {"anim-width": "100000"}]
SIDECAR = json.dumps({"animations": [{"format": "webp", "duration": 2, "fps": 5}, {"profile": "sticker"}]}).encode()


def serve(conn: Any) -> None:
    """Both emulators until told to stop; commands and answers go through ``conn`` (a Pipe end)."""
    from tests.support.emulators import serve_over_pipe
    from tests.support.emulators.fc_server import FcEmulator
    from tests.support.emulators.oss_server import OssEmulator

    oss, fc = OssEmulator(), FcEmulator()

    def stats(_: Any) -> dict[str, int]:
        with oss.lock, fc.lock:
            tags = sum(1 for r in oss.requests if "tagging" in r["query"])
            sidecars = sum(1 for r in oss.requests if r["method"] == "GET" and r["key"].endswith(".anim.json"))
            return {"oss_requests": oss.stats["requests"], "oss_list_pages": oss.stats["list_requests"],
                    "oss_tag_reads": tags, "oss_sidecar_reads": sidecars, "fc_requests": fc.stats["requests"],
                    "fc_accepted": len(fc.invocations), "fc_409": fc.stats["status_409"]}

    serve_over_pipe(conn, [oss, fc], oss, BUCKET, {"stats": stats})


def workload(n: int, rng: random.Random) -> list[tuple[str, bytes, dict[str, str]]]:
    objects = []
    i = 0
    while len(objects) < n:
        roll = rng.random()
        key = f"videos/{i // 1000:02d}/{i:05d} {FLAVOURS[i % len(FLAVOURS)]}"
        i += 1
        data = f"bench {key}".encode()
        if roll < 0.60:
            objects.append((key + ".mp4", data, {}))
        elif roll < 0.75:
            objects.append((key + ".mov", data, rng.choice(TAGS)))
        elif roll < 0.80:
            objects.append((key + ".mp4", data, {}))
            objects.append((key + ".mp4.anim.json", SIDECAR, {}))
        elif roll < 0.84:
            objects.append((key + ".mkv", data, {"anim": "off"}))
        elif roll < 0.87:
            objects.append((key + ".mp4", data, rng.choice(HOSTILE)))
        elif roll < 0.95:
            objects.append((key + rng.choice([".txt", ".jpg", ".mp3"]), data, {}))
        else:
            objects.append((key + rng.choice([".gif", ".webp"]), data, {}))
    return objects[:n]


def backfill(*args: str) -> tuple[dict[str, Any], float]:
    from autoanim import cli

    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cli.main(["backfill", f"oss://{BUCKET}/videos/", "--json", "--progress", "off", *args])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"backfill {' '.join(args)} exited {code}")
    return json.loads(out.getvalue()), wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    server.start()
    oss_endpoint, fc_endpoint = parent.recv()
    objects = workload(args.objects, random.Random(args.seed))
    parent.send(("seed", objects))
    parent.recv()
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "ALIBABA_CLOUD_", "FC_")):
            del os.environ[var]
    os.environ.update({"OSS_ENDPOINT": oss_endpoint, "FC_ENDPOINT": fc_endpoint, "OSS_REGION": "cn-hangzhou",
                       "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tBenchBackfill",
                       "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bench-secret"})
    os.chdir(Path(os.environ.get("TMPDIR", "/tmp")))
    checkpoint = Path(f"bench-backfill-{os.getpid()}.json")
    common = ["--workers", str(args.workers), "--checkpoint", str(checkpoint)]

    rows, failures = [], []
    before = {"oss_requests": 0, "oss_list_pages": 0, "oss_tag_reads": 0, "oss_sidecar_reads": 0,
              "fc_requests": 0, "fc_accepted": 0, "fc_409": 0}
    for phase, extra in (("dry run", []), ("submit", ["--submit", "--rate", "0"]),
                         ("submit again", ["--submit", "--rate", "0"])):
        report, wall = backfill(*extra, *(common if extra else ["--workers", str(args.workers)]))
        parent.send(("stats", None))
        stats = parent.recv()
        delta = {k: stats[k] - before[k] for k in stats}
        before = stats
        videos = report["videos"]
        rows.append({"phase": phase, "objects": report["objects"], "videos": videos,
                     "videos_with_clips": report["videos_with_clips"], "clips": report["clips"],
                     "billed_frames": report["billed_frames_total"], "invoked": report["invoked"],
                     "duplicates": report["duplicates"], "seconds": round(wall, 2),
                     "objects_per_s": round(report["objects"] / wall), "videos_per_s": round(videos / wall),
                     "invocations_per_s": round(report["invoked"] / wall) if report["invoked"] else 0,
                     "oss_requests_per_video": round(delta["oss_requests"] / videos, 3),
                     "fc_requests_per_video": round(delta["fc_requests"] / videos, 3), **delta})
        if phase == "submit" and (report["invoked"] != report["to_submit"] or not report["complete"]):
            failures.append(f"submit invoked {report['invoked']}, expected {report['to_submit']}")
        if phase == "submit again" and (report["invoked"] != 0 or delta["fc_accepted"] != 0):
            failures.append(f"the repeat invoked {report['invoked']} (FC accepted {delta['fc_accepted']})")
    parent.send(("stop", None))
    parent.recv()
    server.join(timeout=10)
    checkpoint.unlink(missing_ok=True)

    load = os.getloadavg()  # the machine is shared: say how busy it was
    print(json.dumps({"objects": args.objects, "workers": args.workers, "seed": args.seed,
                      "load_average_1_5_15": [round(x, 1) for x in load], "rows": rows}, indent=2))
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", file=sys.stderr)
    print("\n| phase | objects | videos | clips | billed frames | invoked | 409 | s | objects/s | videos/s | "
          "invocations/s | OSS req/video | FC req/video |", file=sys.stderr)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", file=sys.stderr)
    for r in rows:
        print(f"| {r['phase']} | {r['objects']:,} | {r['videos']:,} | {r['clips']:,} | {r['billed_frames']:,} | "
              f"{r['invoked']:,} | {r['fc_409']:,} | {r['seconds']} | {r['objects_per_s']:,} | {r['videos_per_s']:,} | "
              f"{r['invocations_per_s']:,} | {r['oss_requests_per_video']} | {r['fc_requests_per_video']} |",
              file=sys.stderr)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
