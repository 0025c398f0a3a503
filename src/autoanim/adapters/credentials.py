"""The FC role's credentials, found once and passed explicitly to both SDKs.

FC's python3.10 runtime hands them over as ``context.credentials``; python3.12 dropped that attribute
and sets the ``ALIBABA_CLOUD_*`` variables instead. When neither is there, adapters fall back to the
SDKs' default chain. The secret and the token never appear in ``repr``/``str``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FIELDS = ("access_key_id", "access_key_secret", "security_token")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:
        key_id = self.access_key_id  # enough of it to tell two apart in a log, never the whole
        shown = key_id[:4] + "****" if len(key_id) > 8 else "****"
        kind = "sts" if self.security_token else "access_key"
        return f"Credentials(access_key_id={shown!r}, type={kind!r})"


def resolve_credentials(context: Any = None, environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """``context.credentials`` (python3.10), else ``ALIBABA_CLOUD_*``, else None (SDK default chain)."""
    given = getattr(context, "credentials", None)
    key_id, secret, token = (getattr(given, name, None) for name in FIELDS)
    if not (key_id and secret):
        key_id, secret, token = (environ.get(f"ALIBABA_CLOUD_{name.upper()}") for name in FIELDS)
    return Credentials(key_id, secret, token or None) if key_id and secret else None
