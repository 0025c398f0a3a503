"""The command line starts fast: a fresh process imports only what the command runs (no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import autoanim

PIPELINE = ("autoanim.config", "autoanim.service", "autoanim.bootstrap", "autoanim.planner",
            "autoanim.claims", "autoanim.adapters", "pydantic", "pydantic_settings", "tqdm", "av")


def modules_after(code: str, environ: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (this checkout's package first)."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    paths = [str(Path(autoanim.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**(os.environ if environ is None else environ), "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          timeout=60, env=env)
    return set(json.loads(done.stdout.splitlines()[-1]))


def pulled_in(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_importing_the_command_line_pulls_in_no_pipeline_and_no_pydantic():
    assert pulled_in(modules_after("import autoanim.cli"), PIPELINE) == []


@pytest.mark.parametrize("command", ["convert", "backfill", "plan"])
def test_a_command_s_help_imports_nothing_of_its_own(command):
    code = ("from autoanim.cli import main\ntry:\n"
            f"    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass")
    assert pulled_in(modules_after(code), PIPELINE) == []


@pytest.mark.media
def test_convert_needs_neither_the_pipeline_nor_an_adapter(tmp_path):
    """A conversion runs the rules, the planner and the engine: no service, claims, bootstrap or SDK."""
    pytest.importorskip("av")
    from autoanim.engine import sample_video

    clip = sample_video(tmp_path / "clip.mp4", seconds=1, width=64, height=36)
    argv = ["convert", str(clip), "-o", str(tmp_path / "a.webp"), "--frames", "1", "--progress", "off"]
    modules = modules_after(f"from autoanim.cli import main\nassert main({argv!r}) == 0", _unconfigured())
    assert pulled_in(modules, ("autoanim.service", "autoanim.bootstrap", "autoanim.claims",
                               "autoanim.adapters", "autoanim.handlers", "autoanim.local", "tqdm")) == []
    assert "autoanim.planner" in modules  # (the same plan as the cloud's drives the engine)
    # the conversion itself runs in the worker forked ahead: this process never imports it, nor PyAV
    assert pulled_in(modules, ("autoanim.engine.job", "autoanim.engine.encode", "av", "numpy", "PIL")) == []
    # nothing configured: the defaults, without pydantic-settings (issue 11); a variable set reads it
    assert pulled_in(modules, ("pydantic_settings", "dotenv")) == []
    configured = modules_after(f"from autoanim.cli import main\nassert main({argv!r}) == 0",
                               {**_unconfigured(), "AUTOANIM_MAX_FPS": "20"})
    assert "pydantic_settings" in configured


def _unconfigured() -> dict[str, str]:
    """This environment without the variables the settings read."""
    from autoanim.config import _VARIABLES

    return {k: v for k, v in os.environ.items() if k not in _VARIABLES and k != "FC_FUNCTION_NAME"}


@pytest.mark.media
def test_the_command_exits_with_main_s_status(tmp_path):
    """``python -m autoanim`` (and the console script, ``cli.run``): main's exit status and its message."""
    done = subprocess.run([sys.executable, "-m", "autoanim", "convert", str(tmp_path / "none.mp4"), "-o",
                           str(tmp_path / "a.gif"), "--json"], check=False, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(Path(autoanim.__file__).parents[1])})
    assert (done.returncode, done.stdout) == (3, "")
    assert "no such file" in done.stderr
