"""Configuration: read once from the environment into a frozen settings object.

Nothing here runs at import time; ``Settings.from_env()`` is called by the
composition root (``bootstrap``) or a test, and the value is passed along.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

Backend = Literal["imm", "local"]


class Limits(BaseModel):
    """Cost and abuse bounds; a rule over any of them is rejected, never clamped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_frames: int = Field(300, ge=1, description="frames per animation (IMM bills per output frame)")
    max_pixels: int = Field(300 * 1920 * 1080, ge=1, description="frames x width x height per animation")
    max_fps: float = Field(50.0, gt=0, le=50.0)
    max_side: int = Field(4096, ge=1, le=4096)
    max_rules: int = Field(10, ge=1, le=10, description="animations per video")
    max_sidecar_bytes: int = Field(16 * 1024, ge=1)


# (environment variable, settings field) pairs for plain string settings.
_ENV_STRINGS = {
    "IMM_PROJECT": "imm_project",
    "IMM_REGION": "imm_region",
    "IMM_ENDPOINT": "imm_endpoint",
    "IMM_NOTIFY_TOPIC": "imm_notify_topic",
    "OSS_ENDPOINT": "oss_endpoint",
    "OSS_REGION": "oss_region",
    "FC_ENDPOINT": "fc_endpoint",
    "OUTPUT_BUCKET": "output_bucket",
    "OUTPUT_PREFIX": "output_prefix",
    "OUTPUT_TEMPLATE": "output_template",
    "DEFAULT_PROFILE": "default_profile",
    "AUTOANIM_LOCAL_ROOT": "local_root",
}
_ENV_LIMITS = {
    "AUTOANIM_MAX_FRAMES": "max_frames",
    "AUTOANIM_MAX_PIXELS": "max_pixels",
    "AUTOANIM_MAX_FPS": "max_fps",
    "AUTOANIM_MAX_SIDE": "max_side",
}
_ENV_NUMBERS = {
    "AUTOANIM_CLAIM_TIMEOUT": "claim_timeout",
    "AUTOANIM_MAX_RESUBMITS": "max_resubmits",
    "AUTOANIM_LOCAL_WORKERS": "local_workers",
    "AUTOANIM_LOCAL_TIMEOUT": "local_timeout",
    "AUTOANIM_IMM_ATTEMPTS": "imm_attempts",
}


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Backend = "local"
    imm_project: str | None = None
    imm_region: str | None = None
    imm_endpoint: str | None = None
    imm_notify_topic: str | None = None
    oss_endpoint: str | None = None
    oss_region: str | None = None
    fc_endpoint: str | None = None  # FC 3.0 endpoint override for `autoanim backfill` (tests: the loopback FC)
    output_bucket: str | None = None
    output_prefix: str = "animated/"
    output_template: str = "{prefix}{dirname}/{barename}{name}.{ext}"
    default_profile: str = "preview"
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    local_root: str = "./buckets"
    limits: Limits = Field(default_factory=Limits)
    status_tag: bool = False
    claim_timeout: float = Field(90.0, gt=0, description="seconds before a crashed claim is taken over (> the function timeout)")
    max_resubmits: int = Field(2, ge=0, le=10)
    local_workers: int = Field(2, ge=1, le=64)
    local_timeout: float = Field(900.0, gt=0, description="seconds one local conversion may take")
    imm_attempts: int = Field(8, ge=1, le=20)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        backend = env.get("AUTOANIM_BACKEND") or ("imm" if env.get("FC_FUNCTION_NAME") else "local")
        values["backend"] = backend
        for var, field in _ENV_STRINGS.items():
            if env.get(var):
                values[field] = env[var]
        values.setdefault("imm_region", env.get("FC_REGION"))
        values.setdefault("oss_region", values.get("imm_region"))
        for var, field in _ENV_NUMBERS.items():
            if env.get(var):
                values[field] = env[var]
        limits = {field: env[var] for var, field in _ENV_LIMITS.items() if env.get(var)}
        if limits:
            values["limits"] = limits
        if env.get("AUTOANIM_STATUS_TAG"):
            values["status_tag"] = env["AUTOANIM_STATUS_TAG"].strip().lower() in {"1", "true", "on", "yes"}
        if env.get("AUTOANIM_PROFILES"):
            try:
                values["profiles"] = json.loads(env["AUTOANIM_PROFILES"])
            except json.JSONDecodeError as exc:
                raise ConfigError(f"AUTOANIM_PROFILES is not JSON: {exc}") from exc
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"configuration {where}={first.get('input')!r}: {first['msg']}") from exc
        if settings.backend == "imm" and not settings.imm_project:
            raise ConfigError("IMM_PROJECT is required when AUTOANIM_BACKEND=imm")
        if not settings.output_prefix.endswith("/") or settings.output_prefix.startswith("/"):
            raise ConfigError(
                f"OUTPUT_PREFIX={settings.output_prefix!r}: must be a folder such as 'animated/' "
                "(ends with '/', no leading '/')"
            )
        return settings
