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


def test_the_variables_read_and_their_fallbacks(monkeypatch):
    env = {"FC_REGION": "cn-fc", "IMM_REGION": "", "AUTOANIM_STATUS_TAG": " Yes ", "AUTOANIM_MAX_FPS": "20",
           "AUTOANIM_PROFILES": '{"tiny": {"frames": 2}}', "max_frames": "1", "imm_project": "not-a-variable"}
    settings = Settings.from_env(env)
    assert (settings.imm_region, settings.oss_region) == ("cn-fc", "cn-fc")  # an empty variable is unset
    assert Settings.from_env({**env, "OSS_REGION": "cn-oss"}).oss_region == "cn-oss"
    assert settings.status_tag is True and Settings.from_env({"AUTOANIM_STATUS_TAG": "maybe"}).status_tag is False
    assert settings.profiles == {"tiny": {"frames": 2}} and settings.limits.max_fps == 20
    assert (settings.limits.max_frames, settings.imm_project) == (300, None)  # field names are no variables
    monkeypatch.setenv("IMM_PROJECT", "from-the-shell")
    assert Settings().imm_project is None and Settings.from_env().imm_project == "from-the-shell"


def test_a_bad_value_names_the_setting_and_the_value():
    with pytest.raises(ConfigError, match=r"configuration claim_timeout='-1': Input should be greater than 0"):
        Settings.from_env({"AUTOANIM_CLAIM_TIMEOUT": "-1"})
