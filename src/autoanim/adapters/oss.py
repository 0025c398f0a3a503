"""ObjectStore on OSS (``alibabacloud-oss-v2``): head, tags, capped reads, puts, atomic create.

Keys are used as given (the event parser decoded them once); the SDK percent-encodes them. The default
endpoint is the region's internal one (FC runs in-region); an endpoint override switches to path-style
addressing (the loopback emulator, or a private gateway). The SDK is imported on first use.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from ..errors import ConfigError, NotFound, ServiceError, TooLarge
from ..objects import uri
from ..ports import ObjectInfo
from .credentials import Credentials
from .retry import retryable_status, short


@dataclass(kw_only=True, eq=False)
class OssObjectStore:
    """``ObjectStore`` on the real OSS v2 SDK; one SDK client per instance, built on first use."""

    region: str | None
    endpoint: str | None
    credentials: Credentials | None
    connect_timeout: float = 3.0
    readwrite_timeout: float = 10.0
    public: bool = False  # the public endpoint (a command outside Alibaba Cloud), not the internal one
    _unversioned: set[str] = field(default_factory=set, init=False, repr=False)  # versioning checked: off

    def __post_init__(self) -> None:
        if not self.region:
            raise ConfigError("OSS needs a region (OSS_REGION, IMM_REGION or FC_REGION); "
                              "v4 signatures include it")

    def head(self, bucket: str, key: str) -> ObjectInfo:
        result = self._request("HeadObject", bucket, key)
        return _info(bucket, key, result.etag, result.content_length, result.last_modified,
                     content_type=result.content_type or "")

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        result = self._request("GetObjectTagging", bucket, key)
        tags = result.tag_set.tags if result.tag_set and result.tag_set.tags else []
        return {tag.key: tag.value or "" for tag in tags}

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        import alibabacloud_oss_v2 as oss

        tagging = oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key=k, value=v) for k, v in tags.items()]))
        self._request("PutObjectTagging", bucket, key, tagging=tagging)

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """One ranged GET of at most ``max_bytes + 1`` bytes; the object's total size decides ``TooLarge``."""
        result = self._request("GetObject", bucket, key, range_header=f"bytes=0-{max_bytes}")
        try:
            # Content-Range: bytes 0-99/1234 → 1234; without one the server sent the whole object.
            total = re.search(r"/(\d+)\s*$", result.content_range or "")
            size = int(total.group(1)) if total else result.content_length or 0
            if size > max_bytes:
                raise TooLarge(f"{uri(bucket, key)} is {size} bytes, over the limit of {max_bytes}")
            # Reading the body is part of the call: a reset mid-stream is translated too.
            return self._call("GetObject", bucket, key, lambda _: result.body.read())
        finally:
            result.body.close()

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._request("PutObject", bucket, key, body=data, content_type=content_type)

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """PutObject with ``x-oss-forbid-overwrite: true``: False when the object already exists.

        Sent once (a retried create that had in fact succeeded would meet its own object and wrongly
        report "already existed"; a transport failure is raised as retryable instead). OSS's PutObject
        reference: forbid-overwrite has no effect on a bucket whose versioning is enabled or suspended,
        so the first create in a bucket checks GetBucketVersioning.
        """
        if bucket not in self._unversioned:
            state = self._request("GetBucketVersioning", bucket).version_status
            if state in ("Enabled", "Suspended"):
                raise ConfigError(
                    f"bucket {bucket} has versioning {state}: OSS ignores x-oss-forbid-overwrite there, so "
                    "claims cannot be made safely; set OUTPUT_BUCKET to a bucket without versioning "
                    "(outputs and claims go there)", retryable=True, code="VersionedOutputBucket")
            self._unversioned.add(bucket)
        try:
            self._request("PutObject", bucket, key, body=data, content_type=content_type,
                          forbid_overwrite=True, options={"retry_max_attempts": 1})
        except ServiceError as error:
            if error.status == 409 and error.code == "FileAlreadyExists":
                return False
            raise
        return True

    def exists(self, bucket: str, key: str) -> bool:
        with contextlib.suppress(NotFound):
            return bool(self.head(bucket, key))
        return False

    def list(self, bucket: str, prefix: str = "", start_after: str = "", page_size: int = 1000
             ) -> Iterator[ObjectInfo]:
        """ListObjectsV2 through the SDK's paginator (continuation tokens), one page in memory at a time.

        Checked in ``alibabacloud-oss-v2`` 1.4.1: ``operations.list_objects_v2`` always sends
        ``encoding-type=url`` and ``serde_utils.deserialize_encode_type`` decodes ``Key`` (and the prefix
        and tokens) with ``urllib.parse.unquote`` (so ``+`` stays ``+``): the one place listed keys are
        decoded. The SDK's own retry (3 attempts) covers each page; a failure leaves translated.
        """
        import alibabacloud_oss_v2 as oss

        request = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix or None,
                                           start_after=start_after or None, max_keys=page_size)
        where = prefix or "(bucket root)"
        pages = self._call("ListObjectsV2", bucket, where,
                           lambda c: iter(c.list_objects_v2_paginator().iter_page(request)))
        while (page := self._call("ListObjectsV2", bucket, where, lambda _: next(pages, None))) is not None:
            for item in page.contents or []:
                yield _info(bucket, item.key, item.etag, item.size, item.last_modified,
                            storage_class=item.storage_class or "",
                            restored='ongoing-request="false"' in (item.restore_info or ""))

    @cached_property
    def _client(self) -> Any:
        import alibabacloud_oss_v2 as oss

        cfg = oss.config.load_default()
        cfg.region = self.region
        cfg.connect_timeout = self.connect_timeout
        cfg.readwrite_timeout = self.readwrite_timeout
        cfg.endpoint = self.endpoint or f"oss-{self.region}{'' if self.public else '-internal'}.aliyuncs.com"
        cfg.use_path_style = bool(self.endpoint)
        cfg.credentials_provider = _credentials_provider(oss, self.credentials)
        return oss.Client(cfg)

    def _request(self, operation: str, bucket: str, key: str | None = None, *, options: dict | None = None,
                 **fields: Any) -> Any:
        """One operation by its API name, as the SDK names its parts: ``HeadObject`` is
        ``client.head_object(HeadObjectRequest(bucket=..., key=..., **fields), **options)``."""
        import alibabacloud_oss_v2 as oss

        if key is not None:
            fields["key"] = key
        request = getattr(oss, f"{operation}Request")(bucket=bucket, **fields)
        method = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", operation).lower()
        return self._call(operation, bucket, key or "",
                          lambda client: getattr(client, method)(request, **(options or {})))

    def _call(self, operation: str, bucket: str, key: str, send: Callable[[Any], Any]) -> Any:
        try:
            return send(self._client)
        except Exception as exc:  # every SDK failure is translated here
            raise translate(operation, bucket, key, exc) from exc


def _info(bucket: str, key: str, etag: str | None, size: int | None, modified: Any,
          **more: Any) -> ObjectInfo:
    """OSS's quoted ETag and its datetimes as the port's plain strings."""
    return ObjectInfo(bucket=bucket, key=key, etag=(etag or "").strip('"'), size=size or 0,
                      last_modified=modified.isoformat() if modified else "", **more)


def _credentials_provider(oss: Any, credentials: Credentials | None) -> Any:
    """Static credentials when given; else the Alibaba default chain (not OSS's ``OSS_*`` provider)."""
    if credentials is not None:
        return oss.credentials.StaticCredentialsProvider(**asdict(credentials))
    from alibabacloud_credentials.client import Client as CredClient

    chain = CredClient()

    def fetch() -> Any:
        found = chain.get_credential()
        return oss.credentials.Credentials(found.access_key_id, found.access_key_secret, found.security_token)

    return oss.credentials.CredentialsProviderFunc(fetch)


def translate(operation: str, bucket: str, key: str, exc: BaseException) -> ServiceError:
    """An OSS SDK exception as a ``ServiceError`` / ``NotFound``; messages name the object, not secrets."""
    import alibabacloud_oss_v2 as oss

    where = uri(bucket, key)
    inner = exc.unwrap() if isinstance(exc, oss.exceptions.OperationError) else exc
    if isinstance(inner, oss.exceptions.ServiceError):
        status, code = inner.status_code, inner.code or "Unknown"
        said = f": {inner.message}" if inner.message else ""
        kind = NotFound if status == 404 else ServiceError
        return kind(f"OSS {operation} {where} failed: {code} (HTTP {status}){said}", code=code, status=status,
                    retryable=retryable_status(status, permissions=True), request_id=inner.request_id or None)
    if isinstance(inner, oss.exceptions.CredentialsFetchError):
        retryable, code = True, "CredentialsUnavailable"  # FC's retry may succeed (as in retry.py)
    else:
        retryable = isinstance(inner, (oss.exceptions.RequestError, oss.exceptions.ResponseError, OSError))
        code = "ConnectionError" if retryable else type(inner).__name__
    return ServiceError(f"OSS {operation} {where} failed: {code}: {short(inner)}", retryable=retryable,
                        code=code)
