"""A loopback OSS for the real ``alibabacloud-oss-v2`` client, path-style.

Speaks ``HEAD/GET/PUT /<bucket>/<percent-encoded key>``, ``?tagging`` (GET/PUT,
XML), the ``x-oss-tagging`` header on PutObject, ``x-oss-forbid-overwrite``,
``Range`` on GetObject, ListObjectsV2 (``GET /<bucket>?list-type=2``: prefix,
start-after, max-keys, opaque continuation tokens, ``encoding-type=url``) and
OSS's XML errors (in the ``x-oss-err`` header for
HEAD, as OSS does). Checks that an ``OSS4-HMAC-SHA256`` ``Authorization``
header is there (the signature itself is not verified). Every bucket exists.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, deque
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from . import LoopbackServer, read_body, send

_CREDENTIAL = re.compile(r"^OSS4-HMAC-SHA256 Credential=([^/,\s]+)/")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class OssEmulator(LoopbackServer):
    """Records ``objects`` {(bucket, key): bytes}, ``tags`` and decoded ``requests``."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str], bytes] = {}
        self.tags: dict[tuple[str, str], dict[str, str]] = {}
        self.meta: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.stats: Counter[str] = Counter()
        self.versioning: dict[str, str] = {}  # bucket -> Enabled | Suspended (GetBucketVersioning)
        self._script: deque[int] = deque()

    def put_object(
        self,
        bucket: str,
        key: str,
        data: bytes,
        tags: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
        storage_class: str = "Standard",
        restore_info: str | None = None,
    ) -> None:
        """Seed an object (and its tags) as if it had been uploaded; listings show its storage class."""
        with self.lock:
            self._store(bucket, key, data, content_type)
            self.tags[(bucket, key)] = dict(tags or {})
            self.meta[(bucket, key)]["x-oss-storage-class"] = storage_class
            if restore_info:
                self.meta[(bucket, key)]["x-oss-restore"] = restore_info

    def fail_next(self, *statuses: int) -> None:
        """The next requests are answered with these HTTP statuses (OSS XML errors), in order."""
        with self.lock:
            self._script.extend(statuses)

    # -- HTTP ----------------------------------------------------------------------

    def handle(self, http: BaseHTTPRequestHandler) -> None:
        body = read_body(http)
        url = urlsplit(http.path)
        bucket, _, raw_key = url.path.lstrip("/").partition("/")
        key = unquote(raw_key)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        request_id = uuid.uuid4().hex[:24].upper()
        match = _CREDENTIAL.match(http.headers.get("Authorization", ""))
        record = {
            "method": http.command,
            "bucket": bucket,
            "key": key,
            "query": query,
            "headers": {name.lower(): value for name, value in http.headers.items()},
            "access_key_id": match.group(1) if match else None,
            "security_token": http.headers.get("x-oss-security-token"),
        }
        with self.lock:
            self.requests.append(record)
            self.stats["requests"] += 1
            status = self._script.popleft() if self._script else None
        try:
            if status is not None:
                raise OssError(
                    status, "InternalError" if status >= 500 else "AccessDenied", "Injected fault."
                )
            if not match:
                raise OssError(
                    403, "AccessDenied", "The request has no OSS4-HMAC-SHA256 Authorization header."
                )
            if bucket and not key and http.command == "GET" and "versioning" in query:
                status_xml = f"<Status>{self.versioning[bucket]}</Status>" if bucket in self.versioning else ""
                xml = f'<?xml version="1.0" encoding="UTF-8"?><VersioningConfiguration>{status_xml}</VersioningConfiguration>'
                return send(http, 200, xml.encode(), {"x-oss-request-id": request_id, "Content-Type": "application/xml"})
            if bucket and not key and http.command == "GET" and query.get("list-type") == "2":
                status, headers, payload = 200, {"Content-Type": "application/xml"}, self._list_v2(bucket, query)
            elif not bucket or not key:
                raise OssError(400, "InvalidArgument", "Only object operations and ListObjectsV2 are emulated.")
            else:
                status, headers, payload = self._route(http.command, bucket, key, query, http.headers, body)
        except OssError as error:
            return self._error(http, request_id, error, bucket, key)
        send(http, status, payload, {"x-oss-request-id": request_id, **headers})

    def _route(
        self, method: str, bucket: str, key: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if "tagging" in query:
                if method == "GET":
                    return (
                        200,
                        {"Content-Type": "application/xml"},
                        self._tagging_xml(self._existing(bucket, key)),
                    )
                if method == "PUT":
                    self._existing(bucket, key)
                    self.tags[(bucket, key)] = _parse_tagging(body)
                    return 200, {}, b""
            elif method in ("GET", "HEAD"):
                data = self.objects.get((bucket, key))
                if data is None:
                    raise OssError(404, "NoSuchKey", "The specified key does not exist.")
                headers_out = dict(self.meta[(bucket, key)])
                if self.tags.get((bucket, key)):
                    headers_out["x-oss-tagging-count"] = str(len(self.tags[(bucket, key)]))
                wanted = _RANGE.match(headers.get("Range", "")) if method == "GET" else None
                if wanted and int(wanted.group(1)) < len(data):
                    first = int(wanted.group(1))
                    last = min(int(wanted.group(2) or len(data) - 1), len(data) - 1)
                    headers_out["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
                    return 206, headers_out, data[first : last + 1]
                return 200, headers_out, data  # an invalid range gets the whole object, as OSS does
            elif method == "PUT":
                forbid = headers.get("x-oss-forbid-overwrite", "").lower() == "true"
                if forbid and (bucket, key) in self.objects:
                    raise OssError(409, "FileAlreadyExists", "The object you specified already exists.")
                self._store(bucket, key, body, headers.get("Content-Type") or "application/octet-stream")
                self.tags[(bucket, key)] = dict(
                    parse_qsl(headers.get("x-oss-tagging", ""), keep_blank_values=True)
                )
                return 200, {"ETag": self.meta[(bucket, key)]["ETag"]}, b""
        raise OssError(405, "MethodNotAllowed", f"{method} is not emulated here.")

    def _list_v2(self, bucket: str, query: dict[str, str]) -> bytes:
        """One ListObjectsV2 page, in key order; with ``encoding-type=url`` every key, the prefix and
        the tokens are percent-encoded (as OSS does, so keys XML 1.0 cannot carry still list)."""
        prefix = query.get("prefix", "")
        try:
            max_keys = int(query.get("max-keys") or 100)
        except ValueError:
            raise OssError(400, "InvalidArgument", "max-keys must be an integer.") from None
        if not 1 <= max_keys <= 1000:
            raise OssError(400, "InvalidArgument", "max-keys must be between 1 and 1000.")
        if query.get("delimiter"):
            raise OssError(400, "InvalidArgument", "delimiter is not emulated.")
        encoding = query.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise OssError(400, "InvalidEncodingType", "The encoding type must be url.")
        after = query.get("start-after", "")
        token = query.get("continuation-token")
        if token is not None:
            try:  # an opaque token to the client: base64 of JSON (holds '+', '/' and '=')
                after = max(after, json.loads(base64.b64decode(token, validate=True))["after"])
            except (ValueError, KeyError, TypeError):
                raise OssError(400, "InvalidArgument", "The continuation token is not valid.") from None
        with self.lock:
            self.stats["list_requests"] += 1
            keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix) and k > after)
            page, truncated = keys[:max_keys], len(keys) > max_keys
            entries = [(key, self.objects[(bucket, key)], self.meta[(bucket, key)]) for key in page]

        def text(value: str) -> str:
            return quote(value, safe="") if encoding == "url" else escape(value)

        parts = [f"<Name>{escape(bucket)}</Name><Prefix>{text(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"]
        if encoding:
            parts.append("<EncodingType>url</EncodingType>")
        if query.get("start-after"):
            parts.append(f"<StartAfter>{text(query['start-after'])}</StartAfter>")
        if token is not None:
            parts.append(f"<ContinuationToken>{text(token)}</ContinuationToken>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            nxt = base64.b64encode(json.dumps({"after": page[-1], "n": len(page)}).encode()).decode()
            parts.append(f"<NextContinuationToken>{text(nxt)}</NextContinuationToken>")
        parts.append(f"<KeyCount>{len(page)}</KeyCount>")
        for key, data, meta in entries:
            modified = parsedate_to_datetime(meta["Last-Modified"]).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            parts.append(
                f"<Contents><Key>{text(key)}</Key><LastModified>{modified}</LastModified>"
                f"<ETag>{escape(meta['ETag'])}</ETag><Type>Normal</Type><Size>{len(data)}</Size>"
                f"<StorageClass>{meta.get('x-oss-storage-class', 'Standard')}</StorageClass>"
                + (f"<RestoreInfo>{escape(meta['x-oss-restore'])}</RestoreInfo>" if "x-oss-restore" in meta else "")
                + "</Contents>"
            )
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>' + "".join(parts)
                + "</ListBucketResult>").encode()

    def _existing(self, bucket: str, key: str) -> tuple[str, str]:
        if (bucket, key) not in self.objects:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        return bucket, key

    def _store(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.objects[(bucket, key)] = data
        self.meta[(bucket, key)] = {
            "ETag": '"' + hashlib.md5(data).hexdigest().upper() + '"',
            "Content-Type": content_type,
            "Last-Modified": formatdate(usegmt=True),
        }

    def _tagging_xml(self, where: tuple[str, str]) -> bytes:
        tags = "".join(
            f"<Tag><Key>{escape(k)}</Key><Value>{escape(v)}</Value></Tag>"
            for k, v in self.tags.get(where, {}).items()
        )
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Tagging><TagSet>{tags}</TagSet></Tagging>'.encode()

    def _error(
        self, http: BaseHTTPRequestHandler, request_id: str, error: OssError, bucket: str, key: str
    ) -> None:
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{error.code}</Code><Message>{escape(error.message)}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{bucket}.127.0.0.1</HostId>"
            f"<Key>{escape(key)}</Key><EC>0000-00000000</EC></Error>"
        ).encode()
        headers = {
            "Content-Type": "application/xml",
            "x-oss-request-id": request_id,
            "x-oss-ec": "0000-00000000",
        }
        if http.command == "HEAD":  # no body on HEAD: OSS puts the error document in a header
            headers["x-oss-err"] = base64.b64encode(xml).decode()
            xml = b""
        send(http, error.status, xml, headers)


def _parse_tagging(body: bytes) -> dict[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
    return {tag.findtext("Key", ""): tag.findtext("Value", "") for tag in root.iter("Tag")}
