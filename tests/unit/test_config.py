"""Configuration: read once, checked before any event is judged."""

from __future__ import annotations

import json

import pytest

from autoanim import bootstrap
from autoanim.config import Settings
from autoanim.errors import ConfigError


@pytest.mark.parametrize("env,match", [
    ({"DEFAULT_PROFILE": "nosuch"}, "DEFAULT_PROFILE='nosuch': no such profile"),
    ({"AUTOANIM_PROFILES": json.dumps({"big": {"fps": 500}})}, "profile big: fps=500"),
    ({"AUTOANIM_PROFILES": "{not json"}, "AUTOANIM_PROFILES is not JSON"),
    ({"OUTPUT_TEMPLATE": "{dirname}/{barename}.{ext}"}, "must start with OUTPUT_PREFIX"),
    ({"OUTPUT_PREFIX": "/abs/"}, "OUTPUT_PREFIX"),
    ({"AUTOANIM_MAX_FPS": "100"}, "max_fps"),
    ({"AUTOANIM_BACKEND": "imm"}, "IMM_PROJECT is required"),
])
def test_operator_mistakes_fail_before_any_event(env, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        bootstrap.check(Settings.from_env({"AUTOANIM_LOCAL_ROOT": str(tmp_path), **env}))


def test_defaults():
    settings = Settings.from_env({})
    bootstrap.check(settings)
    assert (settings.backend, settings.output_prefix, settings.default_profile) == ("local", "animated/", "preview")
    assert Settings.from_env({"FC_FUNCTION_NAME": "f", "IMM_PROJECT": "p", "FC_REGION": "cn-x"}).backend == "imm"


def test_a_lower_limit_only_fails_the_builtin_profiles_that_are_used(tmp_path):
    bootstrap.check(Settings.from_env({"AUTOANIM_MAX_FRAMES": "40", "DEFAULT_PROFILE": "sticker"}))
    with pytest.raises(ConfigError, match="profile preview: frames=60"):
        bootstrap.check(Settings.from_env({"AUTOANIM_MAX_FRAMES": "40"}))
