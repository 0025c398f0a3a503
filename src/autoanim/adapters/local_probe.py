"""``start: auto`` on the local backend: the cloud's two-step probe done in one go, at upload time.

The engine renders the planned probe's sprite sheet of the local bucket's file into the sheet's
key (so the bucket holds what IMM would write) and ``probe.pick_start`` scores it; the animation
is then planned, claimed and submitted as any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..errors import MediaError
from ..objects import SourceObject
from ..probe import PlannedProbe, pick_start, plan_probe, with_start
from ..rules import AutoStart, Rule
from .local_store import LocalObjectStore


def sprite_sheet(*args: Any, **kw: Any) -> Any:
    from ..engine.probe import sprite_sheet  # PyAV: imported on first use

    return sprite_sheet(*args, **kw)


class LocalStartPicker:
    def __init__(self, store: LocalObjectStore, settings: Settings, *, timeout: float | None = None,
                 render=None):
        self._store = store
        self._settings = settings
        self._timeout = timeout
        self._render = render  # tests: a fake engine; default: autoanim.engine.probe.sprite_sheet

    def choose(self, source: SourceObject, rule: Rule) -> Rule:
        probe = plan_probe(source, rule, self._settings)
        src = self._store.path(source.bucket, source.key)
        sheet = self._store.path(probe.sheet_bucket, probe.sheet_key)
        sheet.parent.mkdir(parents=True, exist_ok=True)
        return with_start(rule, probe_file(src, sheet, probe, timeout=self._timeout, render=self._render))


def probe_file(src: Path, sheet: Path, probe: PlannedProbe, *, timeout: float | None = None,
               render=None) -> AutoStart:
    """Render ``probe``'s sprite sheet of the file ``src`` at ``sheet``, then score it."""
    clip = probe.request.source
    render = render or sprite_sheet
    render(src, sheet, probe.sprite, start=clip.start_time, duration=clip.duration, timeout=timeout)
    try:
        return pick_start(sheet.read_bytes(), probe)
    except ValueError as exc:
        raise MediaError(f"the probe's sprite sheet {probe.sheet_uri} cannot be scored: {exc}") from exc
