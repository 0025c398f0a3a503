"""The whole pipeline offline, through the command line, on generated clips (local backend)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from autoanim import bootstrap, cli, local
from autoanim.config import Settings

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from autoanim.engine import sample_video

    return sample_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=4, width=160, height=90)


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "FC_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AUTOANIM_LOCAL_ROOT", str(tmp_path / "buckets"))
    return tmp_path / "buckets"


def run(capsys, *argv) -> tuple[int, dict]:
    code = cli.main([*argv, "--json"] if argv[0] in ("upload", "invoke", "plan", "convert") else list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip().startswith("{") else {})


def outputs(root: Path, bucket: str = "local-bucket") -> list[str]:
    """What a person sees under animated/ (the hidden claims folder left out)."""
    folder = root / bucket / "animated"
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return sorted(f for f in files if not f.startswith(".autoanim/"))


def test_upload_makes_the_output_and_its_manifest(root, clip, capsys):
    code, result = run(capsys, "upload", str(clip), "videos/clip.mp4", "--tags",
                       "anim-format=webp&anim-start=1&anim-duration=2&anim-fps=5&anim-width=0.5&anim-height=0.5")
    assert code == 0
    (item,) = result["results"]
    assert item["status"] == "Succeeded" and item["billed_frames"] == 10
    assert outputs(root) == ["videos/clip.webp", "videos/clip.webp.manifest.json"]
    manifest = json.loads(Path(item["manifest"]).read_text())
    assert manifest["output"]["frames"] == 10 and (manifest["output"]["width"], manifest["output"]["height"]) == (80, 45)
    assert Path(item["output"]).read_bytes()[8:12] == b"WEBP"


def test_the_same_upload_twice_converts_once(root, clip, capsys):
    tags = ["--tags", "anim-format=gif&anim-duration=1&anim-fps=4"]
    run(capsys, "upload", str(clip), "videos/clip.mp4", *tags)
    code, result = run(capsys, "upload", str(clip), "videos/clip.mp4", *tags)
    assert code == 0 and result["duplicates"] and not result["submitted"]
    assert result["results"][0]["status"] == "Succeeded"


@pytest.mark.parametrize("order", ["video-first", "sidecar-first"])
def test_sidecar_either_order(root, clip, capsys, tmp_path, order):
    sidecar = tmp_path / "clip.mp4.anim.json"
    sidecar.write_text(json.dumps({"animations": [{"name": "a", "duration": 1, "fps": 4, "width": 64},
                                                  {"name": "b", "start": 2, "duration": 1, "fps": 4,
                                                   "format": "gif", "width": 48, "height": 48, "scale": "crop"}]}))
    video = ("upload", str(clip), "videos/clip.mp4", "--tags", "anim=sidecar")
    side = ("upload", str(sidecar), "videos/clip.mp4.anim.json")
    for argv in ([video, side] if order == "video-first" else [side, video]):
        assert run(capsys, *argv)[0] == 0
    assert outputs(root) == ["videos/clip-a.webp", "videos/clip-a.webp.manifest.json",
                             "videos/clip-b.gif", "videos/clip-b.gif.manifest.json"]


def test_anim_off_makes_nothing(root, clip, capsys):
    code, result = run(capsys, "upload", str(clip), "videos/clip.mp4", "--tags", "anim=off")
    assert code == 0 and result["skipped"][0]["reason"] == "anim=off" and outputs(root) == []


def test_corrupt_video_gets_a_failed_manifest_and_no_output(root, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x20ftypisom" + os.urandom(4000))
    code, result = run(capsys, "upload", str(bad), "videos/bad.mp4")
    assert code == 3  # unreadable media; the task failed, and its manifest says why
    (item,) = result["results"]
    assert item["status"] == "Failed" and item["code"] == "InvalidMedia" and item["message"]
    assert outputs(root) == ["videos/bad.webp.manifest.json"]


def test_hostile_tags_exit_2_and_make_nothing(root, clip, capsys):
    code, result = run(capsys, "upload", str(clip), "videos/clip.mp4", "--tags", "anim-fps=1000")
    assert code == 2 and "anim-fps='1000'" in result["rejected"][0]["reason"]
    assert outputs(root) == ["videos/clip.mp4.rejected.json"]


@pytest.mark.parametrize("order", ["video-first", "sidecar-first"])
def test_watched_folder_with_a_sidecar_makes_exactly_its_two_clips(root, clip, tmp_path, order):
    app = bootstrap.build(Settings.from_env())
    stop, ready = threading.Event(), threading.Event()
    watcher = threading.Thread(target=local.watch, kwargs={"app": app, "grace": 1.5, "stop": stop, "ready": ready})
    watcher.start()
    try:
        assert ready.wait(10)
        folder = root / "drop" / "videos"
        folder.mkdir(parents=True)
        sidecar = json.dumps({"animations": [{"name": "one", "duration": 1, "fps": 4, "width": 64},
                                             {"name": "two", "start": 1, "duration": 1, "fps": 4, "width": 64}]})
        files = [("clip.mp4", clip.read_bytes()), ("clip.mp4.anim.json", sidecar.encode())]
        for name, data in (files if order == "video-first" else files[::-1]):
            (tmp_path / name).write_bytes(data)
            os.replace(tmp_path / name, folder / name)  # arrives whole, as an upload would
            time.sleep(0.3)
        expected = ["videos/clip-one.webp", "videos/clip-one.webp.manifest.json",
                    "videos/clip-two.webp", "videos/clip-two.webp.manifest.json"]
        deadline = time.monotonic() + 60
        while outputs(root, "drop") != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # anything more would have come by now (grace 1.5 s)
        app.media.wait(30)
        assert outputs(root, "drop") == expected
    finally:
        stop.set()
        watcher.join(10)
        app.media.close()


def test_upload_speaks_to_people_by_default(root, clip, capsys):
    code = cli.main(["upload", str(clip), "videos/people.mp4", "--tags", "anim-duration=1&anim-fps=4&anim-width=64"])
    out = capsys.readouterr().out
    assert code == 0 and not out.lstrip().startswith("{")
    assert "uploaded oss://local-bucket/videos/people.mp4" in out
    assert "converted" in out and "people.webp" in out and "4 billed frames" in out
    code = cli.main(["upload", str(clip), "videos/people.mp4", "--tags", "anim-fps=1000"])
    out = capsys.readouterr().out
    assert code == 2 and "rejected: " in out and "anim-fps='1000'" in out
