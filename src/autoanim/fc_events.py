"""Builders of Function Compute trigger events, shaped exactly as FC delivers them.

The local backend uses them to hand the same bytes to the handlers that FC
would: an OSS trigger event for a new object (``watch``, ``autoanim upload``)
and an MNS topic trigger event in the JSON ``notifyContentFormat`` for an IMM
task result (``LocalMediaService``). Pure functions, no I/O. Shapes: the fc3
event templates and ``reference/alibaba-cloud.md`` sections 3 and 4.
"""

from __future__ import annotations

import hashlib
import json
import time as _time
import uuid
from datetime import datetime, timezone
from typing import Any

# Stands in for the Alibaba Cloud account id wherever an event names one.
LOCAL_ACCOUNT = "local"


def iso_ms(when: datetime | float | None = None) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (``2024-08-20T07:03:07.360Z``)."""
    if when is None:
        when = _time.time()
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, tz=timezone.utc)
    when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def oss_entry(
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str,
    event_name: str = "ObjectCreated:PutObject",
    region: str = "local",
    time: datetime | float | None = None,
) -> dict[str, Any]:
    """One entry of an OSS trigger's ``events[]``; ``key`` as plain text."""
    return {
        "eventName": event_name,
        "eventSource": "acs:oss",
        "eventTime": iso_ms(time),
        "eventVersion": "1.0",
        "oss": {
            "bucket": {
                "arn": f"acs:oss:{region}:{LOCAL_ACCOUNT}:{bucket}",
                "name": bucket,
                "ownerIdentity": LOCAL_ACCOUNT,
                "virtualBucket": "",
            },
            "object": {"deltaSize": size, "eTag": etag, "key": key, "size": size},
            "ossSchemaVersion": "1.0",
            "ruleId": "local",
        },
        "region": region,
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"requestId": _request_id()},
        "userIdentity": {"principalId": LOCAL_ACCOUNT},
    }


def oss_batch(entries: list[dict[str, Any]]) -> bytes:
    """An OSS trigger event carrying several entries (see ``oss_entry``)."""
    return json.dumps({"events": entries}, ensure_ascii=False).encode("utf-8")


def oss_event(bucket: str, key: str, **fields: Any) -> bytes:
    """An OSS trigger event with one entry (``fields`` as for ``oss_entry``), as the bytes FC passes."""
    return oss_batch([oss_entry(bucket, key, **fields)])


def mns_json_event(message: str, *, topic: str = "local", attributes: dict[str, str] | None = None) -> bytes:
    """An MNS topic trigger event in the JSON format; ``attributes`` go at the top level like FC's."""
    standard = {
        "TopicOwner": LOCAL_ACCOUNT,
        "Message": message,
        "Subscriber": LOCAL_ACCOUNT,
        "PublishTime": int(_time.time() * 1000),
        "SubscriptionName": f"{topic}-subscription",
        "MessageMD5": hashlib.md5(message.encode("utf-8")).hexdigest().upper(),
        "TopicName": topic,
        "MessageId": uuid.uuid4().hex.upper(),
    }
    clash = set(attributes or {}) & set(standard)
    if clash:
        raise ValueError(f"message attributes may not replace the event's own fields: {sorted(clash)}")
    return json.dumps({**(attributes or {}), **standard}, ensure_ascii=False).encode("utf-8")
