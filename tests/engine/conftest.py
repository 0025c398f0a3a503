"""Fixtures for the engine tests: clips are written once per session into a temp folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.media import write_clip


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def gray_clip(clips) -> Path:
    """3 s at 10 fps, 64x48: frame i shown from i/10 s."""
    return write_clip(clips / "gray.mp4")
