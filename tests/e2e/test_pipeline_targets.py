"""Targets through the local pipeline: the cloud's algorithm (size model, then a size retry), offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoanim import targets
from tests.e2e.test_pipeline import root, run  # noqa: F401 - the fixture and helper of the pipeline tests

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def busy(tmp_path_factory) -> Path:
    from autoanim.engine import sample_video

    return sample_video(tmp_path_factory.mktemp("busy") / "busy.mp4", seconds=12)


def test_an_email_gif_over_its_cap_is_resubmitted_once_smaller(root, busy, capsys, monkeypatch):  # noqa: F811
    """The size model underestimates this footage (as if calibrated on calmer clips): the first GIF
    is over the 1 MB cap, the second, scaled by the ratio measured, is under it."""
    monkeypatch.setitem(targets.BYTES_PER_PIXEL_FRAME, "gif", 0.3)
    code, result = run(capsys, "upload", str(busy), "videos/busy.mp4", "--tags", "anim-target=email")
    (item,) = result["results"]
    assert code == 0 and item["status"] == "Succeeded"
    manifest = json.loads(Path(item["manifest"]).read_text())
    first, second = manifest["attempts"]
    assert first["reason"] is None and second["reason"]["code"] == "OverCap"
    assert int(second["reason"]["message"].split(" made ")[1].split()[0]) > 1_000_000  # the first output's bytes
    assert manifest["billed_frames_estimate"] == first["billed_frames_estimate"] + second["billed_frames_estimate"]
    assert manifest["cap"] == 1_000_000 and manifest["met"] is True
    assert manifest["output"]["bytes"] == Path(item["output"]).stat().st_size <= 1_000_000
    assert any(lost.startswith("size ") for lost in manifest["given_up"])
    request = manifest["request"]["Targets"][0]["Image"]["Animations"][0]
    assert manifest["output"]["width"] <= request["Width"]
