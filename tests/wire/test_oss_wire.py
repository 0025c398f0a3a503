"""The real OSS v2 SDK, through OssObjectStore, against the loopback OSS (path-style REST)."""

from __future__ import annotations

import hashlib
import json

import pytest

from autoanim.adapters.credentials import Credentials
from autoanim.adapters.oss import OssObjectStore
from autoanim.errors import ConfigError, NotFound, ServiceError, TooLarge
from tests.wire.conftest import run_with_chain_credentials

KEYS = [
    "videos/plain.mp4",
    "videos/with spaces/My Holiday (1).mov",
    "videos/a+b=c&d.mp4",
    "videos/100% done %2B %20.mp4",
    "videos/日本語/vidéo-😀.mp4",
    "videos/" + "x" * 1000 + ".mp4",
]


def store(emulator, credentials) -> OssObjectStore:
    return OssObjectStore(region="cn-hangzhou", endpoint=emulator.endpoint, credentials=credentials)


@pytest.mark.parametrize("key", KEYS, ids=["plain", "spaces", "plus", "percent", "non-ascii", "long"])
def test_keys_arrive_decoded_exactly_as_given(oss_emulator, sts, key):
    objects = store(oss_emulator, sts)
    objects.put("bkt", key, b"video bytes", "video/mp4")
    objects.put_tags("bkt", key, {"anim-format": "webp", "anim-scale": "fit"})

    assert oss_emulator.objects[("bkt", key)] == b"video bytes"
    assert {(r["method"], r["bucket"], r["key"]) for r in oss_emulator.requests} == {("PUT", "bkt", key)}
    info = objects.head("bkt", key)
    assert (info.key, info.size, info.content_type) == (key, 11, "video/mp4")
    assert objects.get_tags("bkt", key) == {"anim-format": "webp", "anim-scale": "fit"}
    assert objects.read("bkt", key, 1024) == b"video bytes"


def test_head_gives_the_etag_without_quotes(oss_emulator, sts):
    oss_emulator.put_object("bkt", "v.mp4", b"abc", content_type="video/mp4")
    info = store(oss_emulator, sts).head("bkt", "v.mp4")
    assert info.etag == hashlib.md5(b"abc").hexdigest().upper()
    assert (info.bucket, info.size, info.content_type) == ("bkt", 3, "video/mp4")
    assert info.last_modified


def test_tags_round_trip_through_the_xml_api(oss_emulator, sts):
    oss_emulator.put_object("bkt", "v.mp4", b"v", tags={"anim-start": "00:05", "anim-name": "a b+c=d:e/f"})
    objects = store(oss_emulator, sts)
    assert objects.get_tags("bkt", "v.mp4") == {"anim-start": "00:05", "anim-name": "a b+c=d:e/f"}

    objects.put_tags("bkt", "v.mp4", {"autoanim-status": "submitted", "anim": "off"})
    assert oss_emulator.tags[("bkt", "v.mp4")] == {"autoanim-status": "submitted", "anim": "off"}
    assert oss_emulator.requests[-1]["query"] == {"tagging": ""}
    objects.put_tags("bkt", "v.mp4", {})
    assert objects.get_tags("bkt", "v.mp4") == {}


def test_put_object_tagging_header_is_decoded_by_the_emulator(oss_emulator, sts):
    import alibabacloud_oss_v2 as oss

    objects = store(oss_emulator, sts)
    objects.put("bkt", "seed", b"")  # builds the SDK client
    objects._client.put_object(
        oss.PutObjectRequest(bucket="bkt", key="t.mp4", body=b"v", tagging="a=1&b=x%20y%2Bz")
    )
    assert oss_emulator.tags[("bkt", "t.mp4")] == {"a": "1", "b": "x y+z"}
    assert objects.get_tags("bkt", "t.mp4") == {"a": "1", "b": "x y+z"}


def test_read_is_one_ranged_get_and_refuses_objects_over_the_cap(oss_emulator, sts):
    oss_emulator.put_object("bkt", "small.anim.json", b'{"animations": []}')
    oss_emulator.put_object("bkt", "huge.anim.json", b"x" * 100_000)
    objects = store(oss_emulator, sts)

    assert objects.read("bkt", "small.anim.json", 18) == b'{"animations": []}'
    assert oss_emulator.requests[-1]["headers"]["range"] == "bytes=0-18"
    with pytest.raises(TooLarge) as caught:
        objects.read("bkt", "huge.anim.json", 16 * 1024)
    assert caught.value.retryable is False and "100000 bytes" in caught.value.message
    assert oss_emulator.requests[-1]["headers"]["range"] == "bytes=0-16384"
    oss_emulator.put_object("bkt", "empty", b"")
    assert objects.read("bkt", "empty", 10) == b""


def test_create_is_atomic_with_forbid_overwrite(oss_emulator, sts):
    objects = store(oss_emulator, sts)
    assert objects.create("bkt", ".autoanim/claims/abc.json", b'{"state": "claimed", "by": 1}') is True
    assert objects.create("bkt", ".autoanim/claims/abc.json", b'{"state": "claimed", "by": 2}') is False

    assert json.loads(oss_emulator.objects[("bkt", ".autoanim/claims/abc.json")]) == {
        "state": "claimed",
        "by": 1,
    }
    puts = [r for r in oss_emulator.requests if r["method"] == "PUT"]
    assert [r["headers"].get("x-oss-forbid-overwrite") for r in puts] == ["true", "true"]
    # The bucket's versioning was asked once, before the first create.
    assert [r["query"] for r in oss_emulator.requests if r["method"] == "GET"] == [{"versioning": ""}]
    assert oss_emulator.meta[("bkt", ".autoanim/claims/abc.json")]["Content-Type"] == "application/json"
    objects.put("bkt", ".autoanim/claims/abc.json", b"{}")  # a plain put overwrites
    assert oss_emulator.objects[("bkt", ".autoanim/claims/abc.json")] == b"{}"


def test_create_is_sent_once_and_a_failure_is_retryable(oss_emulator, sts):
    objects = store(oss_emulator, sts)
    assert objects.create("bkt", "first", b"{}") is True  # (the versioning check)
    before = oss_emulator.stats["requests"]
    oss_emulator.fail_next(503)
    with pytest.raises(ServiceError) as caught:
        objects.create("bkt", "claim", b"{}")
    assert (caught.value.retryable, caught.value.status) == (True, 503)
    assert oss_emulator.stats["requests"] == before + 1 and ("bkt", "claim") not in oss_emulator.objects


@pytest.mark.parametrize("state", ["Enabled", "Suspended"])
def test_a_versioned_bucket_is_refused_for_claims(oss_emulator, sts, state):
    """Regression: with versioning, forbid-overwrite protects nothing, so every claim 'succeeded'."""
    oss_emulator.versioning["bkt"] = state
    with pytest.raises(ConfigError) as caught:
        store(oss_emulator, sts).create("bkt", "claim", b"{}")
    assert caught.value.retryable is True  # the event is kept until the operator fixes it
    assert "bkt" in caught.value.message and state in caught.value.message and "OUTPUT_BUCKET" in caught.value.message
    assert ("bkt", "claim") not in oss_emulator.objects


def test_missing_objects(oss_emulator, sts):
    objects = store(oss_emulator, sts)
    assert objects.exists("bkt", "nope.mp4") is False
    for call in (
        lambda: objects.head("bkt", "nope.mp4"),
        lambda: objects.read("bkt", "nope.mp4", 10),
        lambda: objects.get_tags("bkt", "nope.mp4"),
    ):
        with pytest.raises(NotFound) as caught:
            call()
        assert (caught.value.code, caught.value.status, caught.value.retryable) == ("NoSuchKey", 404, False)
        assert caught.value.request_id
    oss_emulator.put_object("bkt", "here.mp4", b"v")
    assert objects.exists("bkt", "here.mp4") is True


def test_5xx_is_retried_by_the_sdk_then_raised_retryable(oss_emulator, sts):
    oss_emulator.put_object("bkt", "v.mp4", b"v")
    objects = store(oss_emulator, sts)

    oss_emulator.fail_next(500)
    assert objects.head("bkt", "v.mp4").size == 1  # the SDK's own retry (3 attempts by default)
    assert oss_emulator.stats["requests"] == 2

    oss_emulator.fail_next(500, 502, 503, 500)
    with pytest.raises(ServiceError) as caught:
        objects.get_tags("bkt", "v.mp4")
    assert (caught.value.retryable, caught.value.status) == (True, 503)
    assert oss_emulator.stats["requests"] == 5


def test_access_denied_is_raised_retryable_and_not_retried_by_the_sdk(oss_emulator, sts):
    """A missing permission is the operator's to fix: kept for FC's retry, not a rejection of the upload."""
    oss_emulator.put_object("bkt", "v.mp4", b"v")
    oss_emulator.fail_next(403)
    with pytest.raises(ServiceError) as caught:
        store(oss_emulator, sts).get_tags("bkt", "v.mp4")
    assert (caught.value.retryable, caught.value.status, caught.value.code) == (True, 403, "AccessDenied")
    assert oss_emulator.stats["requests"] == 1


def test_credentials_are_signed_into_headers(oss_emulator, sts):
    objects = store(oss_emulator, sts)
    objects.put("bkt", "a", b"1")
    store(oss_emulator, Credentials("LTAIplainKey", "plain-secret")).put("bkt", "b", b"2")

    with_token, without_token = oss_emulator.requests
    assert (
        with_token["access_key_id"] == sts.access_key_id
        and with_token["security_token"] == sts.security_token
    )
    assert with_token["headers"]["authorization"].startswith(
        f"OSS4-HMAC-SHA256 Credential={sts.access_key_id}/"
    )
    assert "/cn-hangzhou/oss/aliyun_v4_request" in with_token["headers"]["authorization"]
    assert without_token["access_key_id"] == "LTAIplainKey" and without_token["security_token"] is None
    for sent in oss_emulator.requests:
        assert sts.access_key_secret not in json.dumps(sent) and "plain-secret" not in json.dumps(sent)


def test_without_explicit_credentials_the_alibaba_default_chain_is_used(oss_emulator, tmp_path):
    # Not OSS's own OSS_* variables: FC sets ALIBABA_CLOUD_*; a fresh process reads them at import.
    script = (
        "import sys\n"
        "from autoanim.adapters.oss import OssObjectStore\n"
        "OssObjectStore(region='cn-hangzhou', endpoint=sys.argv[1], credentials=None).put('bkt', 'k', b'v')\n"
    )
    done = run_with_chain_credentials(script, oss_emulator.endpoint, tmp_path)
    assert done.returncode == 0, done.stderr
    (sent,) = oss_emulator.requests
    assert sent["access_key_id"] == "LTAIfromTheChain" and sent["security_token"] == "chain-token"


def test_connection_refused_is_retryable(sts):
    objects = OssObjectStore(
        region="cn-hangzhou", endpoint="http://127.0.0.1:9", credentials=sts, connect_timeout=1
    )
    with pytest.raises(ServiceError) as caught:
        objects.create("bkt", "claim", b"{}")
    assert (caught.value.retryable, caught.value.code) == (True, "ConnectionError")


def test_credentials_never_appear_in_errors_or_reprs(oss_emulator, sts):
    objects = store(oss_emulator, sts)
    errors = []
    oss_emulator.fail_next(403, 500, 500, 500)
    for call in (
        lambda: objects.head("bkt", "v"),
        lambda: objects.head("bkt", "v"),
        lambda: objects.head("bkt", "v"),
    ):
        with pytest.raises(ServiceError) as caught:
            call()
        errors.append(caught.value)
    refused = OssObjectStore(region="cn-hangzhou", endpoint="http://127.0.0.1:9", credentials=sts)
    with pytest.raises(ServiceError) as caught:
        refused.create("bkt", "claim", b"{}")
    errors.append(caught.value)
    shown = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(objects), repr(refused)]
    for text in shown:
        assert sts.access_key_secret not in text and sts.security_token not in text


def test_default_endpoint_is_the_regional_internal_one(sts):
    objects = OssObjectStore(region="cn-shanghai", endpoint=None, credentials=sts)
    assert objects._client._client._options.endpoint.netloc == "oss-cn-shanghai-internal.aliyuncs.com"


def test_a_region_is_required(sts):
    with pytest.raises(ConfigError):
        OssObjectStore(region=None, endpoint="http://127.0.0.1:9", credentials=sts)
