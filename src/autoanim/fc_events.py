"""Function Compute trigger events built as FC delivers them, for the local backend to hand the handlers.

Shapes: the fc3 event templates and ``reference/alibaba-cloud.md`` sections 3 (OSS) and 4 (MNS, JSON format).
"""

from __future__ import annotations

import hashlib
import json
import time as _time
import uuid
from datetime import datetime, timezone

# Stands in for the Alibaba Cloud account id wherever an event names one.
LOCAL_ACCOUNT = "local"


def iso_ms(when: float | None = None) -> str:
    """UTC ISO 8601 with milliseconds and ``Z`` (``2024-08-20T07:03:07.360Z``); ``when`` defaults to now."""
    moment = datetime.fromtimestamp(_time.time() if when is None else when, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def oss_event(bucket: str, *keys: str, size: int, etag: str, event_name: str = "ObjectCreated:PutObject",
              region: str = "local") -> bytes:
    """An OSS trigger event with an entry per key (plain text), as the bytes FC passes."""
    entries = [{
        "eventName": event_name,
        "eventSource": "acs:oss",
        "eventTime": iso_ms(),
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
        "responseElements": {"requestId": uuid.uuid4().hex[:24].upper()},
        "userIdentity": {"principalId": LOCAL_ACCOUNT},
    } for key in keys]
    return json.dumps({"events": entries}, ensure_ascii=False).encode("utf-8")


def mns_json_event(message: str, *, topic: str = "local") -> bytes:
    """An MNS topic trigger event in the JSON format."""
    event = {
        "TopicOwner": LOCAL_ACCOUNT,
        "Message": message,
        "Subscriber": LOCAL_ACCOUNT,
        "PublishTime": int(_time.time() * 1000),
        "SubscriptionName": f"{topic}-subscription",
        "MessageMD5": hashlib.md5(message.encode("utf-8")).hexdigest().upper(),
        "TopicName": topic,
        "MessageId": uuid.uuid4().hex.upper(),
    }
    return json.dumps(event, ensure_ascii=False).encode("utf-8")
