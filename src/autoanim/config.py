"""Configuration, read once by ``Settings.from_env()`` (the composition root's call) and passed along.

pydantic-settings reads the variables (each field names its own), imported only when one is set, so that
``autoanim convert`` starts without it; ``Settings(...)`` or ``Limits(...)`` built in code reads none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import ConfigError


class _Config(BaseModel):
    # Code passes field names, the environment the aliases; errors name the field: "limits.max_fps".
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, loc_by_alias=False)


def _environ(model: type[BaseModel], environ: Mapping[str, str]) -> dict[str, Any]:
    """The variables of ``model``'s fields in ``environ`` (empty ones unset, JSON fields decoded)."""
    from pydantic_settings import EnvSettingsSource
    from pydantic_settings.sources.utils import parse_env_vars

    class Source(EnvSettingsSource):
        def _load_env_vars(self) -> Mapping[str, str | None]:  # the hook pydantic-settings' .env source overrides
            return parse_env_vars(environ, True, True, None)

    # A variable's name cannot hold '=': with that prefix, field names match no variable.
    return Source(model, case_sensitive=True, env_prefix="=", env_ignore_empty=True)()  # type: ignore[arg-type]


def _variables(model: type[BaseModel]) -> set[str]:
    aliases = [field.validation_alias for field in model.model_fields.values()]
    return {name for a in aliases if a for name in (a.choices if isinstance(a, AliasChoices) else [a])}


def _truthy(value: Any) -> Any:
    return value.strip().lower() in {"1", "true", "on", "yes"} if isinstance(value, str) else value


class Limits(_Config):
    """Cost and abuse bounds; a rule over any of them is rejected, never clamped."""

    max_frames: int = Field(300, ge=1, validation_alias="AUTOANIM_MAX_FRAMES",
                            description="frames per animation (IMM bills per output frame)")
    max_pixels: int = Field(300 * 1920 * 1080, ge=1, validation_alias="AUTOANIM_MAX_PIXELS",
                            description="frames x width x height per animation")
    max_fps: float = Field(50.0, gt=0, le=50.0, validation_alias="AUTOANIM_MAX_FPS")
    max_side: int = Field(4096, ge=1, le=4096, validation_alias="AUTOANIM_MAX_SIDE")
    max_rules: int = Field(10, ge=1, le=10, description="animations per video")
    max_sidecar_bytes: int = Field(16 * 1024, ge=1)


class Settings(_Config):
    # from_env: imm when run by FC
    backend: Literal["imm", "local"] = Field("local", validation_alias="AUTOANIM_BACKEND")
    imm_project: str | None = Field(None, validation_alias="IMM_PROJECT")
    imm_region: str | None = Field(None, validation_alias=AliasChoices("IMM_REGION", "FC_REGION"))
    imm_endpoint: str | None = Field(None, validation_alias="IMM_ENDPOINT")
    imm_notify_topic: str | None = Field(None, validation_alias="IMM_NOTIFY_TOPIC")
    oss_endpoint: str | None = Field(None, validation_alias="OSS_ENDPOINT")
    oss_region: str | None = Field(default_factory=lambda given: given["imm_region"], validation_alias="OSS_REGION")
    # FC 3.0 endpoint override for `autoanim backfill` (tests: the loopback FC)
    fc_endpoint: str | None = Field(None, validation_alias="FC_ENDPOINT")
    output_bucket: str | None = Field(None, validation_alias="OUTPUT_BUCKET")
    output_prefix: str = Field("animated/", validation_alias="OUTPUT_PREFIX")
    output_template: str = Field("{prefix}{dirname}/{barename}{name}.{ext}", validation_alias="OUTPUT_TEMPLATE")
    default_profile: str = Field("preview", validation_alias="DEFAULT_PROFILE")
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict, validation_alias="AUTOANIM_PROFILES")  # JSON
    targets: dict[str, dict[str, Any]] = Field(default_factory=dict, validation_alias="AUTOANIM_TARGETS")  # JSON
    local_root: str = Field("./buckets", validation_alias="AUTOANIM_LOCAL_ROOT")
    limits: Limits = Field(default_factory=Limits)  # from_env: the AUTOANIM_MAX_* variables
    status_tag: Annotated[bool, BeforeValidator(_truthy)] = Field(False, validation_alias="AUTOANIM_STATUS_TAG")
    claim_timeout: float = Field(90.0, gt=0, validation_alias="AUTOANIM_CLAIM_TIMEOUT",
                                 description="seconds before a crashed claim is taken over (> the function timeout)")
    max_resubmits: int = Field(2, ge=0, le=10, validation_alias="AUTOANIM_MAX_RESUBMITS")
    target_retries: int = Field(1, ge=0, le=5, validation_alias="AUTOANIM_TARGET_RETRIES",
                                description="resubmits, smaller, of an output over its byte cap")
    local_workers: int = Field(2, ge=1, le=64, validation_alias="AUTOANIM_LOCAL_WORKERS")
    local_timeout: float = Field(900.0, gt=0, validation_alias="AUTOANIM_LOCAL_TIMEOUT",
                                 description="seconds one local conversion may take")
    imm_attempts: int = Field(8, ge=1, le=20, validation_alias="AUTOANIM_IMM_ATTEMPTS")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"AUTOANIM_BACKEND": "imm" if env.get("FC_FUNCTION_NAME") else "local"}
        try:
            if any(env.get(name) for name in _VARIABLES):  # else the defaults, without pydantic-settings
                values.update(_environ(cls, env), limits=_environ(Limits, env))
            settings = cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"configuration {where}={first.get('input')!r}: {first['msg']}") from exc
        except ValueError as exc:  # pydantic-settings' SettingsError: a field decoded as JSON
            variable = "AUTOANIM_TARGETS" if '"targets"' in str(exc) else "AUTOANIM_PROFILES"
            raise ConfigError(f"{variable} is not JSON: {exc.__cause__}") from exc
        if settings.backend == "imm" and not settings.imm_project:
            raise ConfigError("IMM_PROJECT is required when AUTOANIM_BACKEND=imm")
        if not settings.output_prefix.endswith("/") or settings.output_prefix.startswith("/"):
            raise ConfigError(f"OUTPUT_PREFIX={settings.output_prefix!r}: must be a folder such as 'animated/' "
                              "(ends with '/', no leading '/')")
        return settings


_VARIABLES = _variables(Settings) | _variables(Limits)
