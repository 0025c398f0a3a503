"""The engine's bounded search under a byte cap, and ``autoanim convert --target``."""

from __future__ import annotations

import json

import pytest

from autoanim import cli, targets
from autoanim.engine import fit, sample_video
from tests.engine.media import read_animation

pytestmark = pytest.mark.media

BUILTIN = ("whatsapp-sticker", "discord", "discord-sticker", "slack-emoji", "github", "email")


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """The synthetic moving test video: colourful, busy, hard to compress (a worst case for GIF)."""
    return sample_video(tmp_path_factory.mktemp("fit") / "sample.mp4", seconds=12)


def convert(capsys, *args) -> tuple[int, dict]:
    code = cli.main(["convert", *map(str, args), "--json", "--progress", "off"])
    captured = capsys.readouterr()
    convert.err = captured.err
    return code, json.loads(captured.out) if captured.out.strip() else {}


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_target_is_met(name, footage, tmp_path, capsys):
    target = targets.builtin().targets[name]
    out = tmp_path / f"out.{target.format}"
    code, summary = convert(capsys, footage, "-o", out, "--target", name)
    assert code == 0 and summary["met"] is True
    assert summary["bytes"] == out.stat().st_size <= target.max_bytes
    assert summary["encodes"] <= fit.MAX_ENCODES
    assert summary["bytes"] >= 0.7 * target.max_bytes or not summary["given_up"]  # not wastefully small
    frames, durations, _ = read_animation(out)
    size = target.size
    if size.rule == "exact":
        assert (summary["width"], summary["height"]) == (size.width, size.height)
    else:
        assert summary["width"] <= size.width and summary["height"] <= size.height
    assert frames[0].shape[:2] == (summary["height"], summary["width"])
    assert len(frames) <= summary["frames"]  # a picture repeated for several samples may be stored once
    assert sum(durations) / 1000 <= target.max_duration + 0.05
    assert summary["duration"] <= target.max_duration + 1e-6
    assert summary["frames"] / summary["duration"] <= target.max_fps + 1e-6


def test_a_cap_too_small_for_the_floors_is_written_and_said(footage, tmp_path, capsys):
    out = tmp_path / "tiny.gif"
    code, summary = convert(capsys, footage, "-o", out, "--width", "400", "--fps", "10", "--duration", "4",
                            "--max-bytes", "2000")
    assert code == 3 and summary["met"] is False and summary["bytes"] > 2000
    assert out.stat().st_size == summary["bytes"]  # never a file over the cap without saying so


def test_a_rule_against_its_target_is_refused(footage, tmp_path, capsys):
    code, _ = convert(capsys, footage, "-o", tmp_path / "x.gif", "--target", "whatsapp-sticker")
    assert code == 2 and "takes webp" in convert.err


def test_fit_model_runs_the_cloud_plan_once(footage, tmp_path, capsys):
    code, summary = convert(capsys, footage, "-o", tmp_path / "m.gif", "--target", "email", "--fit", "model")
    assert code == 0 and summary["encodes"] == 1 and summary["cap"] == 1_000_000
    assert summary["given_up"]  # the size model shrank the 600 px, 10 fps clip


def test_the_search_holds_bounded_memory(footage, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fit, "MAX_MEMORY", 1024 * 1024)
    code, _ = convert(capsys, footage, "-o", tmp_path / "big.webp", "--width", "640", "--max-bytes", "100000")
    assert code == 3 and "--fit model" in convert.err and not (tmp_path / "big.webp").exists()
