"""Shared fixtures: settings, in-memory apps, the sample events in events/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoanim.adapters.memory import MemoryObjectStore, RecordingMediaService
from autoanim.config import Settings
from autoanim.service import App

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def event_bytes(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def event_json(name: str) -> dict:
    return json.loads(event_bytes(name))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_764_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env({"AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "test-project",
                              "IMM_NOTIFY_TOPIC": "test-mns-topic"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryObjectStore:
    return MemoryObjectStore()


@pytest.fixture
def media() -> RecordingMediaService:
    return RecordingMediaService()


@pytest.fixture
def app(settings, store, media, clock) -> App:
    return App(settings=settings, store=store, media=media, clock=clock, sleep=clock.sleep)
