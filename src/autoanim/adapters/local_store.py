"""``ObjectStore`` on a folder: the local backend's bucket (see ``docs/local.md``).

Object ``(bucket, key)`` is the file ``<root>/<bucket>/<key>``. What OSS keeps
beside an object (tags, content type) lives in a hidden sidecar tree,
``<root>/.autoanim/meta/<bucket>/<key>.json``, with a cached ETag (uppercase hex
MD5, as OSS gives for simple uploads) keyed by the file's size and mtime.

Temp-file convention, shared with the engine and followed by ``watch``: a temp
file lives in its target's directory and its name starts with ``.`` and ends
with ``.tmp`` (here ``.<32 hex>.tmp``). Every write is temp + ``os.replace``,
so a reader or the watcher only ever sees complete files; ``create`` is
temp + ``os.link``, which fails when the name exists (atomic create-if-absent
across threads and processes).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import NotFound, RuleError, ServiceError, TooLarge
from ..fc_events import iso_ms
from ..objects import MAX_KEY_BYTES
from ..ports import ObjectInfo
from ..rules import check_tags

try:  # cross-process lock on metadata updates (POSIX); threads are covered by a lock either way
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

META_DIR = ".autoanim"
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
MAX_SEGMENT_BYTES = 250  # a file name is at most 255 bytes; the metadata file adds ".json"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_CHUNK = 1024 * 1024
_EXTRA_TYPES = {".webp": "image/webp", ".json": "application/json"}


def temp_name() -> str:
    """A fresh temp-file name following the convention (``.<hex>.tmp``)."""
    return f"{TEMP_PREFIX}{uuid.uuid4().hex}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def _invalid_key(bucket: str, key: str, why: str) -> ServiceError:
    return ServiceError(
        f"object key {key[:120]!r} in bucket {bucket!r} is not allowed: {why}",
        retryable=False,
        code="InvalidObjectName",
        status=400,
    )


def check_bucket(bucket: str) -> None:
    if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
        raise ServiceError(
            f"bucket name {str(bucket)[:80]!r} is not allowed: 3-63 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
            retryable=False,
            code="InvalidBucketName",
            status=400,
        )


def check_key(bucket: str, key: str) -> list[str]:
    """The key's path segments; raises ``ServiceError(InvalidObjectName)`` for a key that could escape."""
    if not isinstance(key, str) or not key:
        raise _invalid_key(bucket, str(key), "empty")
    if "\x00" in key:
        raise _invalid_key(bucket, key, "holds a NUL character")
    if len(key.encode("utf-8", errors="surrogatepass")) > MAX_KEY_BYTES:
        raise _invalid_key(bucket, key, f"longer than {MAX_KEY_BYTES} bytes")
    if key.startswith(("/", "\\")):
        raise _invalid_key(bucket, key, "absolute path")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid_key(bucket, key, "not valid UTF-8 (lone surrogate)") from None
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise _invalid_key(bucket, key, f"empty, '.' or '..' path segment ({segment!r})")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid_key(
                bucket, key, f"a path segment is over {MAX_SEGMENT_BYTES} bytes (local file name limit)"
            )
    return segments


def content_type_for(key: str) -> str:
    guessed = mimetypes.guess_type(key)[0]
    return guessed or _EXTRA_TYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")


def _check_tags(bucket: str, key: str, tags: dict[str, str]) -> dict[str, str]:
    """OSS's tagging limits (the rule language's own check), refused as OSS would: InvalidTag."""
    try:
        check_tags(tags, f"tags of {bucket}/{key}")
    except RuleError as exc:
        raise ServiceError(exc.message, retryable=False, code="InvalidTag", status=400) from None
    return dict(tags)


class LocalObjectStore:
    """A folder of buckets. Thread-safe; safe across processes for data, ``create`` and metadata."""

    def __init__(self, root: str | os.PathLike[str]):
        self._root = Path(root).resolve()
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self._root

    # --- paths -------------------------------------------------------------------------

    def path(self, bucket: str, key: str) -> Path:
        """Where the object's data lives; validates bucket and key (nothing escapes the bucket)."""
        check_bucket(bucket)
        return self._root.joinpath(bucket, *check_key(bucket, key))

    def key_for(self, path: str | os.PathLike[str]) -> tuple[str, str]:
        """The inverse of ``path``: ``(bucket, key)`` of a file under the root; ``ValueError`` otherwise."""
        parts = Path(os.path.abspath(path)).relative_to(self._root).parts
        if len(parts) < 2:
            raise ValueError(f"{path} is not inside a bucket folder of {self._root}")
        bucket, key = parts[0], "/".join(parts[1:])
        self.path(bucket, key)
        return bucket, key

    def _meta_path(self, bucket: str, key: str) -> Path:
        segments = check_key(bucket, key)
        segments[-1] += ".json"
        return self._root.joinpath(META_DIR, "meta", bucket, *segments)

    # --- metadata ----------------------------------------------------------------------

    @contextmanager
    def _meta_lock(self) -> Iterator[None]:
        with self._lock:
            if fcntl is None:  # pragma: no cover - Windows
                yield
                return
            lock_path = self._root / META_DIR / "lock"
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_meta(self, bucket: str, key: str) -> dict[str, Any]:
        path = self._meta_path(bucket, key)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ServiceError(
                f"metadata file {path} is unreadable ({exc}); fix or delete it",
                retryable=False,
                code="InvalidMetadata",
            ) from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("tags", {}), dict):
            raise ServiceError(
                f'metadata file {path} must be a JSON object like {{"tags": {{"anim": "on"}}}}',
                retryable=False,
                code="InvalidMetadata",
            )
        return meta

    def _write_meta(self, bucket: str, key: str, meta: dict[str, Any]) -> None:
        path = self._meta_path(bucket, key)
        self._write_atomic(
            path, json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8"), bucket, key
        )

    @staticmethod
    def _stamp(meta: dict[str, Any], etag: str, stat: os.stat_result) -> dict[str, Any]:
        return {**meta, "etag": etag, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    # --- file helpers ------------------------------------------------------------------

    def _mkdir(self, directory: Path, bucket: str, key: str) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise _invalid_key(
                bucket,
                key,
                f"a parent of it is a file in the local folder ({exc.filename}); "
                "a folder cannot hold both 'a' and 'a/b'",
            ) from exc
        except OSError as exc:
            raise ServiceError(
                f"cannot create {directory}: {exc}", retryable=False, code="LocalIOError"
            ) from exc

    def _temp_write(self, target: Path, data: bytes, bucket: str, key: str) -> Path:
        self._mkdir(target.parent, bucket, key)
        temp = target.with_name(temp_name())
        try:
            with open(temp, "xb") as handle:
                handle.write(data)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ServiceError(f"cannot write {target}: {exc}", retryable=False, code="LocalIOError") from exc
        return temp

    def _replace(self, temp: Path, target: Path, bucket: str, key: str) -> None:
        try:
            os.replace(temp, target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            if target.is_dir():
                raise _invalid_key(bucket, key, f"{target} is a folder holding other objects") from exc
            raise ServiceError(f"cannot write {target}: {exc}", retryable=False, code="LocalIOError") from exc

    def _write_atomic(self, target: Path, data: bytes, bucket: str, key: str) -> None:
        self._replace(self._temp_write(target, data, bucket, key), target, bucket, key)

    def _stat(self, bucket: str, key: str) -> tuple[Path, os.stat_result]:
        path = self.path(bucket, key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            stat = None
        if stat is None or not path.is_file():
            raise NotFound(f"no object {key!r} in local bucket {bucket!r} ({path})", status=404)
        return path, stat

    # --- the ObjectStore port ----------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo:
        path, stat = self._stat(bucket, key)
        meta = self._read_meta(bucket, key)
        etag = (
            meta.get("etag")
            if (meta.get("size"), meta.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns)
            else None
        )
        if not isinstance(etag, str):
            etag = _md5_file(path)
            with self._meta_lock():
                now = path.stat()
                if (now.st_size, now.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                    self._write_meta(bucket, key, self._stamp(self._read_meta(bucket, key), etag, stat))
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=etag,
            size=stat.st_size,
            content_type=meta.get("content_type") or content_type_for(key),
            last_modified=iso_ms(stat.st_mtime),
        )

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        self._stat(bucket, key)
        tags = self._read_meta(bucket, key).get("tags", {})
        return _check_tags(bucket, key, tags)

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        """Replaces the object's tags (like OSS PutObjectTagging)."""
        tags = _check_tags(bucket, key, tags)
        self._stat(bucket, key)
        with self._meta_lock():
            self._write_meta(bucket, key, {**self._read_meta(bucket, key), "tags": tags})

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        path, stat = self._stat(bucket, key)
        too_large = TooLarge(
            f"{bucket}/{key} is over the {max_bytes}-byte limit ({stat.st_size} bytes)", status=413
        )
        if stat.st_size > max_bytes:
            raise too_large
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:  # it grew since the stat
            raise too_large
        return data

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Writes the whole object atomically; like OSS PutObject, its tags start empty."""
        target = self.path(bucket, key)
        temp = self._temp_write(target, data, bucket, key)
        self._commit(bucket, key, temp, target, hashlib.md5(data).hexdigest().upper(), content_type, {})

    def put_file(
        self,
        bucket: str,
        key: str,
        src_path: str | os.PathLike[str],
        tags: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Copies a local file in atomically, with its tags set before the object appears."""
        tags = _check_tags(bucket, key, tags or {})
        target = self.path(bucket, key)
        self._mkdir(target.parent, bucket, key)
        temp = target.with_name(temp_name())
        digest = hashlib.md5()
        try:
            with open(src_path, "rb") as src, open(temp, "xb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    dst.write(chunk)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ServiceError(
                f"cannot copy {src_path} to {target}: {exc}", retryable=False, code="LocalIOError"
            ) from exc
        self._commit(
            bucket, key, temp, target, digest.hexdigest().upper(), content_type or content_type_for(key), tags
        )
        return self.head(bucket, key)

    def _commit(
        self, bucket: str, key: str, temp: Path, target: Path, etag: str, content_type: str, tags: dict
    ) -> None:
        # Metadata first: whoever sees the new file (the watcher) already finds its tags.
        meta = self._stamp({"content_type": content_type, "tags": tags}, etag, temp.stat())
        try:
            with self._meta_lock():
                self._write_meta(bucket, key, meta)
                self._replace(temp, target, bucket, key)
        finally:
            temp.unlink(missing_ok=True)

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """Atomic create-if-absent: exactly one of any number of racing callers gets True."""
        target = self.path(bucket, key)
        temp = self._temp_write(target, data, bucket, key)
        try:
            os.link(temp, target)
        except FileExistsError:
            if target.is_dir():
                raise _invalid_key(bucket, key, f"{target} is a folder holding other objects") from None
            return False
        except OSError as exc:
            raise ServiceError(
                f"cannot create {target}: {exc} (the local store needs a file system with hard links)",
                retryable=False,
                code="LocalIOError",
            ) from exc
        finally:
            temp.unlink(missing_ok=True)
        with self._meta_lock():
            meta = {"content_type": content_type, "tags": {}}
            self._write_meta(
                bucket, key, self._stamp(meta, hashlib.md5(data).hexdigest().upper(), target.stat())
            )
        return True

    def exists(self, bucket: str, key: str) -> bool:
        return self.path(bucket, key).is_file()

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """The files under ``prefix`` in key order (as OSS lists), temp files left out.

        Walks only the deepest folder the prefix names; keys are sorted as whole strings
        (``a-c`` before ``a/b``, as OSS orders them), not folder by folder.
        """
        check_bucket(bucket)
        folder, _, _ = prefix.rpartition("/")
        base = self._root / bucket
        start = base.joinpath(*check_key(bucket, folder)) if folder else base
        found = []
        for dirpath, _, filenames in os.walk(start):
            relative = Path(dirpath).relative_to(base).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if not is_temp_name(name) and key.startswith(prefix) and key > start_after:
                    found.append(key)
        for key in sorted(found):
            try:
                yield self.head(bucket, key)
            except NotFound:  # removed since the walk
                continue
            except ServiceError as exc:  # a file name OSS could not hold: said, not listed
                if exc.code != "InvalidObjectName":
                    raise
                from ..log import event

                event("store.unlisted", 30, bucket=bucket, key=key[:200], reason=exc.message)

    def delete(self, bucket: str, key: str) -> None:
        """Removes the object and its metadata; a missing object is no error (like OSS DeleteObject)."""
        self.path(bucket, key).unlink(missing_ok=True)
        self._meta_path(bucket, key).unlink(missing_ok=True)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest().upper()
