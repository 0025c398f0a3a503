"""start: auto end to end on generated clips: the engine's sprite sheet, `convert --start auto`, the local pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from autoanim import cli
from autoanim.activity import split_sheet
from autoanim.convert_request import Sprite
from autoanim.engine.probe import sprite_sheet
from autoanim.engine.segments import active_range, segments_video
from autoanim.errors import MediaError
from tests.engine.media import source_index, write_clip

pytestmark = pytest.mark.media

STILL_MOVE_STILL = [("still", 10), ("move", 5), ("still", 10)]


def sprite(**fields) -> Sprite:
    base = {"Format": "png", "StartTime": 0, "Interval": 0.3, "Number": 5, "TileWidth": 3, "TileHeight": 2,
            "ScaleWidth": 16, "ScaleHeight": 16, "URI": "oss://b/s.png"}
    return Sprite.model_validate({**base, **fields})


@pytest.fixture(scope="module")
def gray(tmp_path_factory) -> Path:
    """3 s at 10 fps: frame i is grey level 16 + 7i."""
    return write_clip(tmp_path_factory.mktemp("g") / "gray.mp4")


@pytest.mark.parametrize("isolate", [True, False])
def test_the_engine_samples_tiles_as_animation_frames_are_sampled(gray, tmp_path, isolate):
    out = tmp_path / "sheet.png"
    result = sprite_sheet(gray, out, sprite(), start=0.5, duration=2.0, isolate=isolate)
    assert (result.tiles, result.width, result.height) == (5, 48, 32)  # 3 per row, 2 rows used
    tiles = split_sheet(out.read_bytes(), columns=3, rows=2, tile_width=16, tile_height=16, count=5)
    assert [source_index(t) for t in tiles] == [5, 8, 11, 14, 17]  # t = 0.5 + 0.3k
    margins = sprite_sheet(gray, out, sprite(Margin=2, Pad=1, Number=4, StartTime=1), isolate=isolate)
    assert (margins.width, margins.height) == (2 * 2 + 3 * 16 + 2, 2 * 2 + 2 * 16 + 1)
    tiles = split_sheet(out.read_bytes(), columns=3, rows=2, tile_width=16, tile_height=16, margin=2, pad=1,
                        count=4)
    assert [source_index(t) for t in tiles] == [10, 13, 16, 19]


def test_unreadable_media_is_a_media_error_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x17" * 3000)
    with pytest.raises(MediaError, match="corrupt"):
        sprite_sheet(bad, tmp_path / "s.png", sprite())
    assert sorted(os.listdir(tmp_path)) == ["bad.mp4"]


@pytest.fixture(scope="module")
def still_move_still(tmp_path_factory) -> Path:
    return segments_video(tmp_path_factory.mktemp("a") / "still-move-still.mp4", STILL_MOVE_STILL)


def test_convert_start_auto_picks_a_window_in_the_moving_part(still_move_still, tmp_path, capsys):
    lo, hi = active_range(STILL_MOVE_STILL)
    out = tmp_path / "a.webp"
    assert cli.main(["convert", str(still_move_still), "-o", str(out), "--start", "auto", "--duration", "3",
                     "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert lo <= summary["start"] and summary["start"] + 3 <= hi
    assert summary["start_auto"]["start"] == summary["start"] and summary["start_auto"]["score"] > 0
    assert "most motion" in summary["start_auto"]["why"] and summary["frames"] == summary["imm_billed_frames"] == 30
    assert {"output", "frames", "width", "height", "bytes", "duration", "seconds"} <= set(summary)
    assert cli.main(["convert", str(still_move_still), "-o", str(tmp_path / "b.gif"), "--start", "auto",
                     "--duration", "3"]) == 0
    text = capsys.readouterr().out
    assert f"start: auto picked {summary['start']:g} s" in text


@pytest.mark.parametrize("segments", [[("black", 3), ("move", 4), ("still", 12)],
                                      [("fadein", 4), ("still", 6), ("move", 4), ("fadeout", 3)]])
def test_convert_start_auto_follows_the_motion_wherever_it_is(segments, tmp_path, capsys):
    src = segments_video(tmp_path / "clip.mp4", segments)
    lo, hi = active_range(segments)
    assert cli.main(["convert", str(src), "-o", str(tmp_path / "o.webp"), "--start", "auto", "--duration", "3",
                     "--json"]) == 0
    start = json.loads(capsys.readouterr().out)["start"]
    assert lo <= start and start + 3 <= hi


def test_a_local_upload_tagged_auto_records_the_pick_in_its_manifest(still_move_still, tmp_path, monkeypatch,
                                                                      capsys):
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "FC_")):
            monkeypatch.delenv(var)
    root = tmp_path / "buckets"
    monkeypatch.setenv("AUTOANIM_LOCAL_ROOT", str(root))
    code = cli.main(["upload", str(still_move_still), "v/clip.mp4", "--tags",
                     "anim-start=auto&anim-duration=3&anim-fps=5&anim-width=80", "--json"])
    assert code == 0
    (item,) = json.loads(capsys.readouterr().out)["results"]
    manifest = json.loads(Path(item["manifest"]).read_text())
    auto = manifest["rule"]["auto"]
    lo, hi = active_range(STILL_MOVE_STILL)
    assert lo <= auto["start"] <= hi - 3 and manifest["request"]["Sources"][0]["StartTime"] == auto["start"]
    assert manifest["rule"]["start_auto"] is True and auto["why"] and manifest["output"]["frames"] == 15
    sheet = root / "local-bucket" / auto["sheet"].split("/", 3)[3]
    assert sheet.parent.name == "probes" and sheet.read_bytes()[:3] == b"\xff\xd8\xff"  # the probe's JPEG sheet
