"""Benchmark: the local engine against FFmpeg's own recipes (and gifski when installed), one run.

    .venv/bin/python bench/engine.py [--runs 3] [--quick] [--gifski PATH]

Clips are synthetic (autoanim's sample_video: a pan over fractal-noise terrain
with moving shapes; "720p-still" is the same with the camera still), written into bench/out/. Every variant makes the same
frames (StartTime 1, 5 s, 10 fps, width 480, aspect kept) and runs in its own
process: wall time is the median of --runs, peak RSS is that process's
(ru_maxrss from wait4). SSIM: luma, Gaussian sigma 1.5, of each decoded output
frame (Pillow) against the source frames scaled (lanczos) to the output size,
best of the source frames within one frame of the sample time.
Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "bench" / "out"

ENGINE_CALL = """
import json, sys, time
from autoanim.convert_request import Animation
from autoanim.engine import convert
a = json.loads(sys.argv[1])
anim = Animation(Format=a['fmt'], FrameRate=a['fps'], Interval=1 / a['fps'], Number=a['n'], Width=a['w'],
                 Height=a.get('h'), ScaleType='fit', URI='x')
t = time.perf_counter()
convert(a['src'], a['out'], anim, start=a['start'], isolate=False)
print(time.perf_counter() - t)
"""

DECODE_CALL = """
import json, sys, time
from autoanim.engine.job import sample_times
from autoanim.engine.source import Decoder, open_video, pictures
a = json.loads(sys.argv[1])
t = time.perf_counter()
container, stream = open_video(a['src'])
for _ in pictures(Decoder(container, stream), sample_times(a['start'], 1 / a['fps'], a['n'], float('inf'))):
    pass
print(time.perf_counter() - t)
"""


def child_rss(cmd: list[str], inner: bool) -> tuple[float, float]:
    """Run ``cmd`` and return (seconds, its own peak RSS in MB) using wait4."""
    # Linux keeps a process's RSS high-water mark across exec, so the measured command is
    # started by a small interpreter rather than by this (large) one.
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-c", RSS_PROBE, *cmd], capture_output=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} failed: {done.stderr.decode()[-800:]}")
    *output, peak = done.stdout.decode().split()
    return (float(output[-1]) if inner else wall), int(peak) / 1024


RSS_PROBE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def variants(job: dict, gifski: str | None) -> dict[str, list[str] | tuple]:
    ff = ffmpeg_exe()
    head = [ff, "-v", "error", "-y", "-ss", str(job["start"]), "-i", job["src"], "-frames:v", str(job["n"])]
    vf = f"fps={job['fps']},scale={job['w']}:-1:flags=lanczos"
    py = [sys.executable, "-c"]
    stem = OUT / Path(job["src"]).stem
    found = {
        "engine GIF": (py + [ENGINE_CALL, json.dumps({**job, "fmt": "gif", "out": f"{stem}.engine.gif"})],
                       f"{stem}.engine.gif", True),
        "ffmpeg GIF one pass": (head + ["-vf", vf + ",split[a][b];[a]palettegen[p];[b][p]paletteuse",
                                        "-loop", "0", f"{stem}.ffmpeg.gif"], f"{stem}.ffmpeg.gif", False),
        "engine WebP": (py + [ENGINE_CALL, json.dumps({**job, "fmt": "webp", "out": f"{stem}.engine.webp"})],
                        f"{stem}.engine.webp", True),
        "ffmpeg WebP q75": (head + ["-vf", vf, "-c:v", "libwebp_anim", "-quality", "75", "-loop", "0",
                                    f"{stem}.ffmpeg.webp"], f"{stem}.ffmpeg.webp", False),
        "decode only": (py + [DECODE_CALL, json.dumps(job)], None, True),
    }
    if gifski:
        frames = OUT / "png"
        script = (f"rm -rf {frames} && mkdir -p {frames} && "
                  f"{' '.join(head)} -vf {vf} {frames}/f%04d.png && "
                  f"{gifski} -q --fps {job['fps']} -Q 90 -o {stem}.gifski.gif {frames}/f*.png")
        found["gifski q90 (PNG frames)"] = (["sh", "-c", script], f"{stem}.gifski.gif", False)
    return found


def _gauss(img: np.ndarray) -> np.ndarray:
    x = np.arange(-5, 6)
    w = np.exp(-(x**2) / (2 * 1.5**2))
    w /= w.sum()
    for axis in (0, 1):
        pad = np.pad(img, [(5, 5) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        img = sum(w[i] * np.take(pad, range(i, i + img.shape[axis]), axis=axis) for i in range(11))
    return img


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = _gauss(a), _gauss(b)
    va, vb, cov = _gauss(a * a) - ma * ma, _gauss(b * b) - mb * mb, _gauss(a * b) - ma * mb
    return float(((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))).mean())


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def references(job: dict, size: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    """Source frames around the requested span, scaled (lanczos) to the output size, as luma."""
    import av

    end = job["start"] + job["n"] / job["fps"] + 0.2
    out = []
    with av.open(job["src"]) as c:
        for f in c.decode(video=0):
            if job["start"] - 0.2 <= f.time <= end:
                img = f.reformat(width=size[0], height=size[1], format="rgb24", interpolation="LANCZOS")
                out.append((f.time, luma(img.to_ndarray())))
    return out


def score(path: str, job: dict, refs: list) -> tuple[float, float]:
    from PIL import Image

    values = []
    period = refs[1][0] - refs[0][0]
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            frame = luma(np.asarray(im.convert("RGB")))
            t = job["start"] + k / job["fps"]
            near = [r for tr, r in refs if abs(tr - t) <= 1.01 * period]
            values.append(max(ssim(frame, r) for r in near))
    return statistics.mean(values), min(values)


def compare(job: dict, runs: int, gifski: str | None) -> list[dict]:
    rows = []
    table = variants(job, gifski)
    times = {name: [] for name in table}
    rss = dict.fromkeys(table, 0.0)
    for _ in range(runs):  # in turns, so that load on the machine hits every variant alike
        for name, (cmd, _, inner) in table.items():
            seconds, peak = child_rss(cmd, inner)
            times[name].append(seconds)
            rss[name] = max(rss[name], peak)
    refs = None
    for name, (_, path, _) in table.items():
        row = {"variant": name, "s": statistics.median(times[name]), "rss": rss[name]}
        if path:
            from PIL import Image

            with Image.open(path) as im:
                size, row["frames"] = im.size, im.n_frames
            refs = refs or references(job, size)
            row["KB"] = os.path.getsize(path) / 1000
            row["ssim"], row["ssim_min"] = score(path, job, refs)
            row["size"] = f"{size[0]}x{size[1]}"
        rows.append(row)
    return rows


def table(title: str, rows: list[dict], base: str) -> str:
    ref = {r["variant"]: r for r in rows}
    lines = [f"### {title}", "", "| variant | s (median) | × " + base + " | peak RSS MB | KB | frames | size | SSIM mean / min |",
             "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        q = f"{r['ssim']:.4f} / {r['ssim_min']:.4f}" if "ssim" in r else ""
        kb = f"{r['KB']:,.0f}" if "KB" in r else ""
        lines.append(f"| {r['variant']} | {r['s']:.3f} | {r['s'] / ref[base]['s']:.2f} | {r['rss']:.0f} | {kb} | "
                     f"{r.get('frames', '')} | {r.get('size', '')} | {q} |")
    lines.append("")
    decode, frames = ref["decode only"]["s"], ref["engine GIF"]["frames"]
    pairs = [("engine GIF", "ffmpeg GIF one pass"), ("engine GIF", "gifski q90 (PNG frames)"),
             ("engine WebP", "ffmpeg WebP q75")]
    for a, b in pairs:
        if b in ref:
            lines.append(f"- {a} / {b}: bytes {ref[a]['KB'] / ref[b]['KB']:.3f}×, wall {ref[a]['s'] / ref[b]['s']:.2f}×, "
                         f"SSIM mean {ref[a]['ssim'] - ref[b]['ssim']:+.4f}, min {ref[a]['ssim_min'] - ref[b]['ssim_min']:+.4f}")
    for a in ["engine GIF", "engine WebP"]:
        lines.append(f"- {a}: {ref[a]['s'] / decode:.1f}× decode only; (wall − decode only) / frames = "
                     f"{1000 * (ref[a]['s'] - decode) / frames:.1f} ms per frame")
    return "\n".join(lines) + "\n"


def engine_only(job: dict, fmt: str, runs: int) -> tuple[float, float]:
    cmd = [sys.executable, "-c", ENGINE_CALL, json.dumps({**job, "fmt": fmt, "out": str(OUT / f"solo.{fmt}")})]
    results = [child_rss(cmd, True) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 1080p memory and long-clip parts")
    parser.add_argument("--gifski", default=shutil.which("gifski"), help="gifski binary (npm package gifski)")
    args = parser.parse_args()
    from autoanim.engine import sample_video

    OUT.mkdir(parents=True, exist_ok=True)
    clips = {"720p": (1280, 720, 8, True), "360p": (640, 360, 8, True), "720p-still": (1280, 720, 8, False)}
    if not args.quick:
        clips.update({"1080p": (1920, 1080, 14, True), "long": (640, 360, 120, True)})
    paths = {}
    for name, (w, h, seconds, pan) in clips.items():
        path = OUT / f"{name}.mp4"
        if not path.exists():
            sample_video(path, seconds, width=w, height=h, fps=25, pan=pan)
        paths[name] = str(path)

    import av
    import imageio_ffmpeg

    print(f"# Engine benchmark\n\n`{' '.join(sys.argv)}`; runs={args.runs}; av {av.__version__} "
          f"(FFmpeg {av.ffmpeg_version_info}); imageio-ffmpeg {imageio_ffmpeg.__version__}; "
          f"gifski: {args.gifski or 'not installed'}; {os.cpu_count()} cores.\n")
    for name in ["720p", "360p", "720p-still"]:
        job = {"src": paths[name], "start": 1.0, "fps": 10, "n": 50, "w": 480}
        print(table(f"{name} clip: StartTime 1, 50 frames at 10 fps, width 480", compare(job, args.runs, args.gifski),
                    "ffmpeg GIF one pass"))
    if args.quick:
        return
    print("### Seeking: 5 s at 10 fps, width 480, 120 s clip (GOP 2 s)\n")
    print("| start | GIF s | WebP s |\n|---:|---:|---:|")
    for start in [5.0, 110.0]:
        job = {"src": paths["long"], "start": start, "fps": 10, "n": 50, "w": 480}
        print(f"| {start:g} | {engine_only(job, 'gif', args.runs)[0]:.3f} | {engine_only(job, 'webp', args.runs)[0]:.3f} |")
    print("\n### Memory: 1080p source, 25 fps sampling, width 960 (half size)\n")
    print("| frames | GIF s | GIF peak RSS MB | WebP s | WebP peak RSS MB |\n|---:|---:|---:|---:|---:|")
    for n in [100, 300]:
        job = {"src": paths["1080p"], "start": 1.0, "fps": 25, "n": n, "w": 960}
        gs, grss = engine_only(job, "gif", 1)
        ws, wrss = engine_only(job, "webp", 1)
        print(f"| {n} | {gs:.2f} | {grss:.0f} | {ws:.2f} | {wrss:.0f} |")


if __name__ == "__main__":
    main()
