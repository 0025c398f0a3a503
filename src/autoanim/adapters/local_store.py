"""``ObjectStore`` on a folder: the local backend's bucket (see ``docs/local.md``).

Object ``(bucket, key)`` is the file ``<root>/<bucket>/<key>``. What OSS keeps beside an object (tags,
content type) lives in a hidden sidecar tree, ``<root>/.autoanim/meta/<bucket>/<key>.json``, with a
cached ETag (uppercase hex MD5, as OSS gives for simple uploads) keyed by the file's size and mtime.

Temp-file convention, shared with the engine and followed by ``watch``: a temp file lives in its
target's directory and its name starts with ``.`` and ends with ``.tmp`` (here ``.<32 hex>.tmp``).
Every write is temp + ``os.replace``, so a reader or the watcher only ever sees complete files;
``create`` is temp + ``os.link``, which fails when the name exists (atomic create-if-absent across
threads and processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mimetypes
import os
import re
import stat as stats
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import NotFound, RuleError, ServiceError, TooLarge
from ..fc_events import iso_ms
from ..log import event
from ..objects import MAX_KEY_BYTES
from ..ports import ObjectInfo
from ..rules import check_tags

try:  # cross-process lock on metadata updates (POSIX); threads are covered by a lock either way
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

META_DIR = ".autoanim"
MAX_SEGMENT_BYTES = 250  # a file name is at most 255 bytes; the metadata file adds ".json"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_CHUNK = 1024 * 1024
_EXTRA_TYPES = {".webp": "image/webp", ".json": "application/json"}


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _invalid_key(bucket: str, key: str, why: str) -> ServiceError:
    return ServiceError(f"object key {key[:120]!r} in bucket {bucket!r} is not allowed: {why}",
                        code="InvalidObjectName", status=400)


def _io_error(doing: str, exc: OSError) -> ServiceError:
    return ServiceError(f"cannot {doing}: {exc}", code="LocalIOError")


def check_bucket(bucket: str) -> None:
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise ServiceError(f"bucket name {str(bucket)[:80]!r} is not allowed: 3-63 characters of a-z, "
                           "0-9 and '-', starting and ending with a letter or digit",
                           code="InvalidBucketName", status=400)


def check_key(bucket: str, key: str) -> list[str]:
    """The key's path segments; raises ``ServiceError(InvalidObjectName)`` for a key that could escape."""
    if not isinstance(key, str) or not key:
        raise _invalid_key(bucket, str(key), "empty")
    if "\x00" in key:
        raise _invalid_key(bucket, key, "holds a NUL character")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _invalid_key(bucket, key, "not valid UTF-8 (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise _invalid_key(bucket, key, f"longer than {MAX_KEY_BYTES} bytes")
    if key.startswith(("/", "\\")):
        raise _invalid_key(bucket, key, "absolute path")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _invalid_key(bucket, key, f"empty, '.' or '..' path segment ({segment!r})")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid_key(bucket, key, f"a path segment is over {MAX_SEGMENT_BYTES} bytes (a file name)")
    return segments


def content_type_for(key: str) -> str:
    guessed = mimetypes.guess_type(key)[0]
    return guessed or _EXTRA_TYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")


def _check_tags(bucket: str, key: str, tags: dict[str, str]) -> dict[str, str]:
    """OSS's tagging limits (the rule language's own check), refused as OSS would: InvalidTag."""
    try:
        check_tags(tags, f"tags of {bucket}/{key}")
    except RuleError as exc:
        raise ServiceError(exc.message, code="InvalidTag", status=400) from None
    return dict(tags)


def _version(stat: os.stat_result) -> dict[str, int]:
    """What the cached ETag is keyed by: the file's size and mtime."""
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        yield from iter(lambda: handle.read(_CHUNK), b"")


class LocalObjectStore:
    """A folder of buckets. Thread-safe; safe across processes for data, ``create`` and metadata."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self._lock = threading.Lock()

    def path(self, bucket: str, key: str) -> Path:
        """Where the object's data lives; validates bucket and key (nothing escapes the bucket)."""
        check_bucket(bucket)
        return self.root.joinpath(bucket, *check_key(bucket, key))

    def key_for(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        """The inverse of ``path``: ``(bucket, key)`` of a file under the root; ``ValueError`` otherwise."""
        parts = Path(os.path.abspath(path)).relative_to(self.root).parts
        if len(parts) < 2:
            raise ValueError(f"{path} is not inside a bucket folder of {self.root}")
        bucket, key = parts[0], "/".join(parts[1:])
        self.path(bucket, key)
        return bucket, key

    def _meta_path(self, bucket: str, key: str) -> Path:
        *folders, name = check_key(bucket, key)
        return self.root.joinpath(META_DIR, "meta", bucket, *folders, name + ".json")

    @contextlib.contextmanager
    def _meta_lock(self) -> Iterator[None]:
        lock_path = self.root / META_DIR / "lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(lock_path, "a") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _read_meta(self, bucket: str, key: str) -> dict[str, Any]:
        path = self._meta_path(bucket, key)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ServiceError(f"metadata file {path} is unreadable ({exc}); fix or delete it",
                               code="InvalidMetadata") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("tags", {}), dict):
            raise ServiceError(f"metadata file {path} must be a JSON object like "
                               '{"tags": {"anim": "on"}}', code="InvalidMetadata")
        return meta

    def _write_meta(self, bucket: str, key: str, meta: dict[str, Any]) -> None:
        path = self._meta_path(bucket, key)
        data = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
        with self._temp(path, [data], bucket, key) as (temp, _):
            self._replace(temp, path, bucket, key)

    @contextlib.contextmanager
    def _temp(self, target: Path, chunks: Iterable[bytes], bucket: str, key: str
              ) -> Iterator[tuple[Path, dict[str, Any]]]:
        """The data in a temp file beside ``target`` (the convention above), and what the metadata records of
        it (ETag, size, mtime); the temp file is gone on exit, whether it was moved into place or not."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise _invalid_key(bucket, key, f"a parent of it is a file in the local folder ({exc.filename}); "
                               "a folder cannot hold both 'a' and 'a/b'") from exc
        except OSError as exc:
            raise _io_error(f"create {target.parent}", exc) from exc
        temp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        digest = hashlib.md5()
        try:
            with open(temp, "xb") as handle:
                for chunk in chunks:
                    digest.update(chunk)
                    handle.write(chunk)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise _io_error(f"write {target}", exc) from exc
        try:
            yield temp, {"etag": digest.hexdigest().upper(), **_version(temp.stat())}
        finally:
            temp.unlink(missing_ok=True)

    def _replace(self, temp: Path, target: Path, bucket: str, key: str) -> None:
        try:
            os.replace(temp, target)
        except OSError as exc:
            if target.is_dir():
                raise _invalid_key(bucket, key, f"{target} is a folder holding other objects") from exc
            raise _io_error(f"write {target}", exc) from exc

    def _put(self, bucket: str, key: str, chunks: Iterable[bytes], content_type: str, tags: dict) -> None:
        """Writes the object atomically, its metadata first: whoever sees the new file (the watcher)
        already finds its tags."""
        target = self.path(bucket, key)
        with self._temp(target, chunks, bucket, key) as (temp, stamp), self._meta_lock():
            self._write_meta(bucket, key, {"content_type": content_type, "tags": tags, **stamp})
            self._replace(temp, target, bucket, key)

    def _stat(self, bucket: str, key: str) -> tuple[Path, os.stat_result]:
        path = self.path(bucket, key)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            stat = path.stat()
            if stats.S_ISREG(stat.st_mode):
                return path, stat
        raise NotFound(f"no object {key!r} in local bucket {bucket!r} ({path})", status=404)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        path, stat = self._stat(bucket, key)
        meta = self._read_meta(bucket, key)
        etag = meta.get("etag")
        if not isinstance(etag, str) or not _version(stat).items() <= meta.items():
            digest = hashlib.md5()
            for chunk in _chunks(path):
                digest.update(chunk)
            etag = digest.hexdigest().upper()
            with self._meta_lock():
                if _version(path.stat()) == _version(stat):
                    cached = {**self._read_meta(bucket, key), "etag": etag, **_version(stat)}
                    self._write_meta(bucket, key, cached)
        return ObjectInfo(bucket=bucket, key=key, etag=etag, size=stat.st_size,
                          last_modified=iso_ms(stat.st_mtime),
                          content_type=meta.get("content_type") or content_type_for(key))

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        self._stat(bucket, key)
        return _check_tags(bucket, key, self._read_meta(bucket, key).get("tags", {}))

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        """Replaces the object's tags (like OSS PutObjectTagging)."""
        tags = _check_tags(bucket, key, tags)
        self._stat(bucket, key)
        with self._meta_lock():
            self._write_meta(bucket, key, {**self._read_meta(bucket, key), "tags": tags})

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        path, stat = self._stat(bucket, key)
        if stat.st_size <= max_bytes:  # over it by the stat: nothing read
            with open(path, "rb") as handle:
                data = handle.read(max_bytes + 1)
            if len(data) <= max_bytes:  # else it grew since the stat
                return data
        raise TooLarge(f"{bucket}/{key} is over the {max_bytes}-byte limit ({stat.st_size} bytes)", status=413)

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Writes the whole object atomically; like OSS PutObject, its tags start empty."""
        self._put(bucket, key, [data], content_type, {})

    def put_file(self, bucket: str, key: str, src: str | os.PathLike[str], tags: dict[str, str] | None = None
                 ) -> ObjectInfo:
        """Copies a local file in atomically, with its tags set before the object appears."""
        self._put(bucket, key, _chunks(src), content_type_for(key), _check_tags(bucket, key, tags or {}))
        return self.head(bucket, key)

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """Atomic create-if-absent: exactly one of any number of racing callers gets True."""
        target = self.path(bucket, key)
        with self._temp(target, [data], bucket, key) as (temp, stamp):
            try:
                os.link(temp, target)
            except FileExistsError:
                if target.is_dir():
                    raise _invalid_key(bucket, key, f"{target} is a folder holding other objects") from None
                return False
            except OSError as exc:
                raise _io_error(f"create {target} (the local store needs hard links)", exc) from exc
        with self._meta_lock():
            self._write_meta(bucket, key, {"content_type": content_type, "tags": {}, **stamp})
        return True

    def exists(self, bucket: str, key: str) -> bool:
        return self.path(bucket, key).is_file()

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """The files under ``prefix`` in key order (as OSS lists), temp files left out.

        Walks only the deepest folder the prefix names; keys are sorted as whole strings (``a-c`` before
        ``a/b``, as OSS orders them), not folder by folder.
        """
        check_bucket(bucket)
        folder = prefix.rpartition("/")[0]
        base = self.root / bucket
        walked = os.walk(base.joinpath(*check_key(bucket, folder)) if folder else base)
        keys = (Path(dirpath, name).relative_to(base).as_posix()
                for dirpath, _, names in walked for name in names if not is_temp_name(name))
        for key in sorted(k for k in keys if k.startswith(prefix) and k > start_after):
            try:
                yield self.head(bucket, key)
            except NotFound:  # removed since the walk
                continue
            except ServiceError as exc:  # a file name OSS could not hold: said, not listed
                if exc.code != "InvalidObjectName":
                    raise
                event("store.unlisted", 30, bucket=bucket, key=key[:200], reason=exc.message)
