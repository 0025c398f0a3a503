"""`autoanim backfill` on a local folder bucket: every video converted once, by the local pipeline."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from autoanim import cli

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from autoanim.engine import sample_video

    return sample_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3, width=160, height=90)


@pytest.fixture
def bucket(tmp_path, monkeypatch, clip) -> Path:
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "FC_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AUTOANIM_LOCAL_ROOT", str(tmp_path / "buckets"))
    monkeypatch.setenv("DEFAULT_PROFILE", "sticker")  # small and quick
    monkeypatch.chdir(tmp_path)
    videos = tmp_path / "buckets" / "demo-bucket" / "videos"
    (videos / "sub dir").mkdir(parents=True)
    for name in ("a.mp4", "sub dir/b+c 日本.mov", "d.mp4"):
        shutil.copy(clip, videos / name)
    (videos / "a.mp4.anim.json").write_text(json.dumps(
        {"animations": [{"format": "webp", "duration": 1, "fps": 4, "name": "one"},
                        {"format": "gif", "duration": 1, "fps": 4, "name": "two"}]}))
    (videos / "notes.txt").write_text("not a video")
    return tmp_path / "buckets" / "demo-bucket"


def outputs(bucket: Path) -> dict[str, int]:
    folder = bucket / "animated"
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")
            if p.is_file() and ".autoanim" not in p.parts}


def backfill(capsys, *args: str) -> tuple[int, dict]:
    code = cli.main(["backfill", "buckets/demo-bucket/videos/", "--json", "--progress", "off", *args])
    return code, json.loads(capsys.readouterr().out)


def test_a_folder_bucket_is_converted_once(bucket, capsys):
    code, dry = backfill(capsys)
    assert code == 0 and dry["via"] == "local" and (dry["videos"], dry["clips"]) == (3, 4)
    assert not (bucket / "animated").exists()  # a dry run writes nothing

    code, done = backfill(capsys, "--submit")
    assert code == 0 and done["invoked"] == 3 and done["complete"]
    made = outputs(bucket)
    assert set(made) == {"videos/a-one.webp", "videos/a-two.gif", "videos/d-sticker.gif",
                         "videos/sub dir/b+c 日本-sticker.gif"} | {f"{k}.manifest.json" for k in (
                             "videos/a-one.webp", "videos/a-two.gif", "videos/d-sticker.gif",
                             "videos/sub dir/b+c 日本-sticker.gif")}
    for key in made:
        if key.endswith(".manifest.json"):
            assert json.loads((bucket / "animated" / key).read_text())["status"] == "Succeeded"
    assert done["billed_frames_total"] == dry["billed_frames_total"] > 0

    code, again = backfill(capsys, "--submit")
    assert code == 0 and again["invoked"] == 0 and again["skipped_done"] == 3 and again["billed_frames_total"] == 0
    assert outputs(bucket) == made  # nothing converted twice


def test_a_path_outside_the_local_root_is_refused(bucket, capsys, tmp_path):
    assert cli.main(["backfill", str(tmp_path / "elsewhere" / "b"), "--progress", "off"]) == 2
    assert "not inside the local root" in capsys.readouterr().err
