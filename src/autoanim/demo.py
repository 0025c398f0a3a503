"""``make demo``: the whole upload pipeline offline, on a generated video uploaded twice with other tags
(the handlers that run in FC, the engine as IMM), then an ``index.html`` showing each animation."""

from __future__ import annotations

import html
import json
import sys
import tempfile
from pathlib import Path

from . import bootstrap, local, log, render, rules
from .config import Settings

BUCKET = "demo-bucket"
KEY = "videos/sample.mp4"
UPLOADS = [
    ("a WebP highlight", ("anim-format=webp&anim-start=1&anim-duration=4&anim-fps=15&anim-width=0.5"
                          "&anim-height=0.5&anim-scale=fit&anim-name=highlight")),
    ("a GIF sticker", "anim-profile=sticker&anim-start=2"),
]


def main() -> int:
    from . import engine

    log.setup(30)  # the demo prints its own summary; warnings and errors still show
    outputs: list[local.Converted] = []
    with bootstrap.build_local(Settings.from_env()) as app, tempfile.TemporaryDirectory() as tmp:
        video = engine.sample_video(Path(tmp) / "sample.mp4", seconds=8)
        print(f"made a sample video: {video.stat().st_size:,} bytes, 8 s, 640x360")
        for what, tags in UPLOADS:
            print(f"\nuploading oss://{BUCKET}/{KEY} with tags {tags!r} ({what})")
            result = local.upload(app, video, BUCKET, KEY, rules.parse_tag_string(tags))
            print(render.local_upload(result))
            outputs += [item for item in result.results if item.status == "Succeeded"]
    if len(outputs) != len(UPLOADS):
        print("demo failed: see the manifests above", file=sys.stderr)
        return 4
    page = write_index(app.store.path(BUCKET, app.settings.output_prefix + "index.html").parent, outputs)
    total = sum(o.billed_frames or 0 for o in outputs)
    print(f"\n{len(outputs)} animations, {total} frames IMM would bill. Open {page} to look at them.")
    return 0


def write_index(folder: Path, outputs: list[local.Converted]) -> Path:
    """An HTML page beside the outputs: each animation next to its rule, size and billed frames."""
    rows = []
    for item in outputs:
        manifest = json.loads(Path(item.manifest or "").read_text())
        out = Path(item.output)
        rule = {k: round(v, 4) if isinstance(v, float) else v
                for k, v in manifest["rule"].items() if k not in ("origin", "notes")}
        size = manifest["output"]
        rows.append(
            f"<tr><td><img src='{html.escape(out.relative_to(folder).as_posix())}' alt=''></td>"
            f"<td><code>{html.escape(out.name)}</code><br>{size['width'] or '?'}×{size['height'] or '?'} px, "
            f"{size['frames'] or '?'} frames, {size['bytes']:,} bytes<br>"
            f"<b>{manifest['billed_frames_estimate']}</b> IMM frames billed</td>"
            f"<td><pre>{html.escape(json.dumps(rule, indent=1))}</pre></td></tr>"
        )
    page = folder / "index.html"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><title>autoanim demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{vertical-align:top;padding:1em;border-top:1px solid #ccc}"
        "img{max-width:480px;background:#eee}pre{margin:0}</style>"
        f"<h1>autoanim demo</h1><p>Outputs of <code>oss://{BUCKET}/{KEY}</code>, made by the local engine "
        "exactly as the IMM requests in each manifest ask.</p>"
        "<table><tr><th>animation</th><th>output</th><th>rule</th></tr>" + "".join(rows) + "</table>"
    )
    return page


if __name__ == "__main__":
    raise SystemExit(main())
