"""ObjectStore on OSS (``alibabacloud-oss-v2``): head, tags, capped reads, puts, atomic create.

Keys are used as given (the event parser decoded them once); the SDK does the
percent-encoding. The default endpoint is the region's internal one (FC runs
in-region); an endpoint override switches to path-style addressing (the
loopback emulator, or a private gateway). SDK failures leave as ``NotFound``,
``TooLarge`` or ``ServiceError`` with ``retryable`` set. The SDK is imported on
first use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ..errors import ConfigError, NotFound, ServiceError, TooLarge
from ..objects import uri
from ..ports import ObjectInfo
from .credentials import Credentials
from .retry import retryable_status


class OssObjectStore:
    """``ObjectStore`` on the real OSS v2 SDK; one SDK client per instance, built on first use."""

    def __init__(
        self,
        *,
        region: str | None,
        endpoint: str | None,
        credentials: Credentials | None,
        connect_timeout: float = 3.0,
        readwrite_timeout: float = 10.0,
        public: bool = False,
    ):
        if not region:
            raise ConfigError(
                "OSS needs a region (OSS_REGION, IMM_REGION or FC_REGION); v4 signatures include it"
            )
        self.region = region
        self.endpoint = endpoint
        self._credentials = credentials
        self.connect_timeout = connect_timeout
        self.readwrite_timeout = readwrite_timeout
        self.public = public  # the public endpoint (a command outside Alibaba Cloud), not the internal one
        self._client: Any = None
        self._unversioned: set[str] = set()  # buckets whose versioning was checked: off

    def __repr__(self) -> str:
        return f"OssObjectStore(region={self.region!r}, endpoint={self.endpoint!r})"

    # -- ObjectStore -------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo:
        oss = self._oss()
        result = self._call(
            "HeadObject", bucket, key, lambda c: c.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        )
        return ObjectInfo(
            bucket=bucket,
            key=key,
            etag=(result.etag or "").strip('"'),
            size=result.content_length or 0,
            content_type=result.content_type or "",
            last_modified=result.last_modified.isoformat() if result.last_modified else "",
        )

    def get_tags(self, bucket: str, key: str) -> dict[str, str]:
        oss = self._oss()
        result = self._call(
            "GetObjectTagging",
            bucket,
            key,
            lambda c: c.get_object_tagging(oss.GetObjectTaggingRequest(bucket=bucket, key=key)),
        )
        tags = result.tag_set.tags if result.tag_set and result.tag_set.tags else []
        return {tag.key: tag.value or "" for tag in tags}

    def put_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        oss = self._oss()
        tagging = oss.Tagging(tag_set=oss.TagSet(tags=[oss.Tag(key=k, value=v) for k, v in tags.items()]))
        request = oss.PutObjectTaggingRequest(bucket=bucket, key=key, tagging=tagging)
        self._call("PutObjectTagging", bucket, key, lambda c: c.put_object_tagging(request))

    def read(self, bucket: str, key: str, max_bytes: int) -> bytes:
        """One ranged GET of at most ``max_bytes + 1`` bytes; the object's total size decides ``TooLarge``."""
        oss = self._oss()
        request = oss.GetObjectRequest(bucket=bucket, key=key, range_header=f"bytes=0-{max_bytes}")
        result = self._call("GetObject", bucket, key, lambda c: c.get_object(request))
        try:
            size = _total_size(result.content_range, result.content_length)
            if size > max_bytes:
                raise TooLarge(f"{uri(bucket, key)} is {size} bytes, over the limit of {max_bytes}")
            # Reading the body is part of the call: a reset mid-stream is translated too.
            return self._call("GetObject", bucket, key, lambda _: result.body.read())
        finally:
            result.body.close()

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        oss = self._oss()
        request = oss.PutObjectRequest(bucket=bucket, key=key, body=data, content_type=content_type)
        self._call("PutObject", bucket, key, lambda c: c.put_object(request))

    def create(self, bucket: str, key: str, data: bytes, content_type: str = "application/json") -> bool:
        """PutObject with ``x-oss-forbid-overwrite: true``: False when the object already exists.

        Sent once (no SDK retry): a retried create that had in fact succeeded
        would meet its own object and wrongly report "already existed". A
        transport failure is raised as retryable instead.

        OSS's PutObject reference: forbid-overwrite has no effect on a bucket whose
        versioning is enabled or suspended (every put makes a new version), so the
        first create in a bucket checks GetBucketVersioning and refuses such a bucket.
        """
        self._check_unversioned(bucket)
        oss = self._oss()
        request = oss.PutObjectRequest(
            bucket=bucket, key=key, body=data, content_type=content_type, forbid_overwrite=True
        )
        try:
            self._call("PutObject", bucket, key, lambda c: c.put_object(request, retry_max_attempts=1))
        except ServiceError as error:
            if error.status == 409 and error.code == "FileAlreadyExists":
                return False
            raise
        return True

    def _check_unversioned(self, bucket: str) -> None:
        if bucket in self._unversioned:
            return
        oss = self._oss()
        result = self._call("GetBucketVersioning", bucket, "",
                            lambda c: c.get_bucket_versioning(oss.GetBucketVersioningRequest(bucket=bucket)))
        if result.version_status in ("Enabled", "Suspended"):
            raise ConfigError(
                f"bucket {bucket} has versioning {result.version_status}: OSS ignores x-oss-forbid-overwrite "
                "there, so claims cannot be made safely; set OUTPUT_BUCKET to a bucket without versioning "
                "(outputs and claims go there)", retryable=True, code="VersionedOutputBucket")
        self._unversioned.add(bucket)

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.head(bucket, key)
        except NotFound:
            return False
        return True

    def list(self, bucket: str, prefix: str = "", start_after: str = "", page_size: int = 1000
             ) -> Iterator[ObjectInfo]:
        """ListObjectsV2 through the SDK's paginator (continuation tokens), one page in memory at a time.

        Checked in ``alibabacloud-oss-v2`` 1.4.1: ``operations.list_objects_v2`` always sends
        ``encoding-type=url`` and ``serde_utils.deserialize_encode_type`` decodes ``Key`` (and the
        prefix and tokens) with ``urllib.parse.unquote`` (so ``+`` stays ``+``). That is the one
        place listed keys are decoded; they are used as they come from here. The SDK's own retry
        (3 attempts) covers each page; a failure leaves translated, like every other call.
        """
        oss = self._oss()
        request = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix or None,
                                           start_after=start_after or None, max_keys=page_size)
        where = prefix or "(bucket root)"
        pages = self._call("ListObjectsV2", bucket, where,
                           lambda c: iter(c.list_objects_v2_paginator().iter_page(request)))
        while True:
            page = self._call("ListObjectsV2", bucket, where, lambda _: next(pages, None))
            if page is None:
                return
            for item in page.contents or []:
                yield ObjectInfo(
                    bucket=bucket,
                    key=item.key,
                    etag=(item.etag or "").strip('"'),
                    size=item.size or 0,
                    last_modified=item.last_modified.isoformat() if item.last_modified else "",
                    storage_class=item.storage_class or "",
                    restored='ongoing-request="false"' in (item.restore_info or ""),
                )

    # -- internals ---------------------------------------------------------------

    def _oss(self) -> Any:
        import alibabacloud_oss_v2 as oss

        return oss

    def _sdk(self) -> Any:
        if self._client is None:
            oss = self._oss()
            cfg = oss.config.load_default()
            cfg.region = self.region
            cfg.connect_timeout = self.connect_timeout
            cfg.readwrite_timeout = self.readwrite_timeout
            if self.endpoint:
                cfg.endpoint = self.endpoint
                cfg.use_path_style = True
            else:
                cfg.endpoint = f"oss-{self.region}{'' if self.public else '-internal'}.aliyuncs.com"
            cfg.credentials_provider = _credentials_provider(oss, self._credentials)
            self._client = oss.Client(cfg)
        return self._client

    def _call(self, operation: str, bucket: str, key: str, send: Any) -> Any:
        try:
            return send(self._sdk())
        except Exception as exc:  # every SDK failure is translated here
            raise translate(operation, bucket, key, exc) from exc


def _credentials_provider(oss: Any, credentials: Credentials | None) -> Any:
    """Static credentials when given; else the Alibaba default chain (not OSS's own ``OSS_*`` env provider)."""
    if credentials is not None:
        return oss.credentials.StaticCredentialsProvider(
            credentials.access_key_id, credentials.access_key_secret, credentials.security_token
        )
    from alibabacloud_credentials.client import Client as CredClient

    chain = CredClient()

    def fetch() -> Any:
        found = chain.get_credential()
        return oss.credentials.Credentials(found.access_key_id, found.access_key_secret, found.security_token)

    return oss.credentials.CredentialsProviderFunc(fetch)


def _total_size(content_range: str | None, content_length: int | None) -> int:
    """``Content-Range: bytes 0-99/1234`` → 1234; without one the server sent the whole object."""
    match = re.search(r"/(\d+)\s*$", content_range or "")
    return int(match.group(1)) if match else content_length or 0


def translate(operation: str, bucket: str, key: str, exc: BaseException) -> ServiceError:
    """An OSS SDK exception as a ``ServiceError`` / ``NotFound``; messages name the object, never credentials."""
    import alibabacloud_oss_v2 as oss

    where = uri(bucket, key)
    inner = exc.unwrap() if isinstance(exc, oss.exceptions.OperationError) else exc
    if isinstance(inner, oss.exceptions.ServiceError):
        status, code = inner.status_code, inner.code or "Unknown"
        said = f": {inner.message}" if inner.message else ""
        message = f"OSS {operation} {where} failed: {code} (HTTP {status}){said}"
        if status == 404:
            return NotFound(
                message, retryable=False, code=code, status=status, request_id=inner.request_id or None
            )
        retryable = retryable_status(status, permissions=True)
        return ServiceError(
            message, retryable=retryable, code=code, status=status, request_id=inner.request_id or None
        )
    if isinstance(inner, oss.exceptions.CredentialsFetchError):
        # The role's credentials could not be fetched: FC's retry may succeed, and a permanent
        # misconfiguration still ends in the on-failure destination, not lost.
        retryable, code = True, "CredentialsUnavailable"
    else:
        retryable = isinstance(inner, (oss.exceptions.RequestError, oss.exceptions.ResponseError, OSError))
        code = "ConnectionError" if retryable else type(inner).__name__
    detail = " ".join(str(inner).split())[:300]
    return ServiceError(f"OSS {operation} {where} failed: {code}: {detail}", retryable=retryable, code=code)
