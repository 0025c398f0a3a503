"""`autoanim convert` and `autoanim sample-video`: outputs, exit codes, nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from autoanim import cli

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    assert cli.main(["sample-video", str(path), "--seconds", "3"]) == 0
    return path


def test_convert_writes_what_the_flags_ask(clip, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "clip.gif"
    code = cli.main(["convert", str(clip), "-o", str(out), "--start", "0.5", "--duration", "2", "--fps", "5",
                     "--width", "0.25", "--height", "0.25", "--scale", "fit", "--progress", "on", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == summary["imm_billed_frames"] == 10
    with Image.open(out) as image:
        assert image.format == "GIF" and image.n_frames == 10 and image.size == (160, 90)
        assert image.info["loop"] == 0


def test_format_from_the_extension_and_quality(clip, tmp_path):
    low, high = tmp_path / "low.webp", tmp_path / "high.webp"
    for path, quality in ((low, "20"), (high, "95")):
        assert cli.main(["convert", str(clip), "-o", str(path), "--duration", "1", "--quality", quality]) == 0
    assert low.read_bytes()[8:12] == b"WEBP" and low.stat().st_size < high.stat().st_size


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x20ftypisom" + b"\x17" * 3000])
def test_unreadable_media_exits_3_with_one_line_and_no_output(tmp_path, capsys, content):
    src = tmp_path / "bad.mp4"
    src.write_bytes(content)
    out = tmp_path / "out.webp"
    assert cli.main(["convert", str(src), "-o", str(out), "--duration", "1", "--fps", "5"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoanim: ")
    assert os.listdir(tmp_path) == ["bad.mp4"]


@pytest.mark.parametrize("flags,field", [(["--fps", "100"], "--fps"), (["--width", "5000"], "--width"),
                                         (["--format", "gif", "--width", "320", "--scale", "crop"], "--scale")])
def test_bad_flags_exit_2_naming_the_flag(clip, tmp_path, capsys, flags, field):
    assert cli.main(["convert", str(clip), "-o", str(tmp_path / "x.gif"), *flags]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_convert_speaks_to_people_by_default(clip, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "people.webp"
    assert cli.main(["convert", str(clip), "-o", str(out), "--duration", "1", "--fps", "4", "--progress", "off"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{out}: 4 frames") and "4 billed frames on IMM" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
