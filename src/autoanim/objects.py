"""Object references (``oss://bucket/key``), the one decoding of an event's key, what a key is to
autoanim (a video, a sidecar, one of our outputs), and OSS's key and tag limits."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, unquote_plus

from pydantic import BaseModel, ConfigDict

SCHEME = "oss://"
MAX_KEY_BYTES = 1023  # OSS object keys are 1..1023 bytes of UTF-8
# OSS tagging (PutObjectTagging): at most 10 tags; key 1..128 and value up to 256 characters of
# letters, digits, space and + - = . _ : /
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 10, 128, 256
TAG_CHARACTERS = "letters, digits, space and + - = . _ : /"
TAG_TEXT = re.compile(r"^[A-Za-z0-9 +\-=._:/]*$")
NAME = re.compile(r"^[a-z0-9_-]{1,32}$")  # a rule's, a profile's or a target's name (a suffix of output keys)

SIDECAR_SUFFIX = ".anim.json"
MANIFEST_SUFFIX = ".manifest.json"
REJECTED_SUFFIX = ".rejected.json"
# What IMM and FFmpeg read as video. Everything else is not ours to convert.
VIDEO_EXTENSIONS = frozenset(
    ["mp4", "m4v", "mov", "qt", "mkv", "webm", "avi", "flv", "f4v", "ts", "mts", "m2ts", "m3u8", "wmv", "asf", "rm",
     "rmvb", "vob", "mpg", "mpeg", "mpe", "3gp", "3g2", "mxf", "ogv", "dv"]
)
OUTPUT_EXTENSIONS = frozenset(["gif", "webp"])


def uri(bucket: str, key: str) -> str:
    return f"{SCHEME}{bucket}/{key}"


class ObjectRef(BaseModel):
    """An object: its bucket and its key, exactly as stored (never encoded)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return uri(self.bucket, self.key)

    @classmethod
    def parse(cls, text: str, *, key_optional: bool = False) -> ObjectRef:
        """``oss://bucket/key`` → the reference; ``ValueError`` for anything else."""
        bucket, _, key = text[len(SCHEME):].partition("/") if text.startswith(SCHEME) else ("", "", "")
        if not bucket or not (key or key_optional):
            raise ValueError(f"{text!r} is not an {SCHEME}bucket/key URI")
        return cls(bucket=bucket, key=key)


class SourceObject(ObjectRef):
    """A version of an object: what a claim is for (the ETag changes with every new upload)."""

    etag: str


def extension(key: str) -> str:
    base = posixpath.basename(key)
    return base.rsplit(".", 1)[1].lower() if "." in base else ""


def is_video_key(key: str) -> bool:
    return extension(key) in VIDEO_EXTENSIONS


def is_sidecar_key(key: str) -> bool:
    return key.endswith(SIDECAR_SUFFIX) and len(key) > len(SIDECAR_SUFFIX)


def video_of_sidecar(key: str) -> str:
    return key[: -len(SIDECAR_SUFFIX)]


def is_ours(key: str, output_prefix: str) -> bool:
    """Keys autoanim writes or must never act on: anything under the output prefix, outputs, manifests."""
    return key.startswith(output_prefix) or key.endswith(MANIFEST_SUFFIX) or extension(key) in OUTPUT_EXTENSIONS


def key_forms(key: str) -> list[str]:
    """The keys an event's key may stand for, most likely first; the one place keys are decoded.

    FC's samples carry plain keys; a key may also arrive URL-encoded (``+`` stays ``+``) or
    form-encoded (``+`` is a space, as S3 and OBS encode event keys).
    """
    return list(dict.fromkeys((key, unquote(key), unquote_plus(key))))
