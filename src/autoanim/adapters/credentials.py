"""The FC role's credentials, found once and passed explicitly to both SDKs.

FC's python3.10 runtime hands them over as ``context.credentials``; python3.12
dropped that attribute and sets the ``ALIBABA_CLOUD_*`` variables instead.
When neither is there, adapters fall back to the SDKs' default chain.
The secret and the token never appear in ``repr``/``str``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        kind = "sts" if self.security_token else "access_key"
        return f"Credentials(access_key_id={mask(self.access_key_id)!r}, type={kind!r})"

    __str__ = __repr__


def mask(value: str) -> str:
    """Enough of an access key id to tell two apart in a log, never the whole."""
    return value[:4] + "****" if len(value) > 8 else "****"


def resolve_credentials(context: Any = None, environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """``context.credentials`` (python3.10), else ``ALIBABA_CLOUD_*``, else None (SDK default chain)."""
    given = getattr(context, "credentials", None)
    if (
        given is not None
        and getattr(given, "access_key_id", None)
        and getattr(given, "access_key_secret", None)
    ):
        return Credentials(
            given.access_key_id, given.access_key_secret, getattr(given, "security_token", None) or None
        )
    key_id = environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
    secret = environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    if key_id and secret:
        return Credentials(key_id, secret, environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None)
    return None
