"""ListObjectsV2 through the real OSS v2 SDK's paginator against the loopback OSS, and the other stores' list."""

from __future__ import annotations

import hashlib
from urllib.parse import unquote

import pytest

from autoanim.adapters.local_store import LocalObjectStore
from autoanim.adapters.memory import MemoryObjectStore
from autoanim.adapters.oss import OssObjectStore
from autoanim.errors import ServiceError

# Keys that need encoding in a URL or in XML 1.0; the last one can only be listed with encoding-type=url.
HOSTILE = [
    "videos/with spaces/My Holiday (1).mov",
    "videos/a+b=c&d.mp4",
    "videos/100% done %2B %20.mp4",
    "videos/日本語/vidéo-😀.mp4",
    "videos/<tag>&'\".mp4",
    "videos/ctrl\x01char.mp4",
]


def store(emulator, credentials) -> OssObjectStore:
    return OssObjectStore(region="cn-hangzhou", endpoint=emulator.endpoint, credentials=credentials)


def test_pages_follow_continuation_tokens_and_keys_come_back_decoded(oss_emulator, sts):
    keys = [f"videos/{i:04d}.mp4" for i in range(25)] + HOSTILE
    for key in keys:
        oss_emulator.put_object("bkt", key, key.encode())
    oss_emulator.put_object("bkt", "other/x.mp4", b"x")

    listed = list(store(oss_emulator, sts).list("bkt", "videos/", page_size=7))

    assert [o.key for o in listed] == sorted(keys)
    assert all(o.etag == hashlib.md5(o.key.encode()).hexdigest().upper() for o in listed)
    assert all(o.size == len(o.key.encode()) and o.bucket == "bkt" and o.last_modified for o in listed)
    pages = [r for r in oss_emulator.requests if r["query"].get("list-type") == "2"]
    assert len(pages) == -(-len(keys) // 7)
    assert all(p["query"]["encoding-type"] == "url" and p["query"]["max-keys"] == "7" for p in pages)
    assert "continuation-token" not in pages[0]["query"]
    assert all("continuation-token" in p["query"] for p in pages[1:])  # the opaque token went back as given


def test_the_emulator_really_encodes_keys(oss_emulator, sts):
    """The SDK's single decode is exercised: the XML on the wire holds no raw hostile key."""
    import http.client

    oss_emulator.put_object("bkt", HOSTILE[-1], b"v")
    store(oss_emulator, sts).put("bkt", "seed", b"")
    conn = http.client.HTTPConnection("127.0.0.1", oss_emulator.port)
    auth = oss_emulator.requests[-1]["headers"]["authorization"]
    conn.request("GET", "/bkt/?list-type=2&encoding-type=url&prefix=videos%2F", headers={"Authorization": auth})
    body = conn.getresponse().read().decode()
    assert "\x01" not in body and "<Key>videos%2Fctrl%01char.mp4</Key>" in body
    assert unquote("videos%2Fctrl%01char.mp4") == HOSTILE[-1]


def test_start_after_resumes_after_a_key(oss_emulator, sts):
    for i in range(10):
        oss_emulator.put_object("bkt", f"v/{i}.mp4", b"v")
    listed = [o.key for o in store(oss_emulator, sts).list("bkt", "v/", start_after="v/4.mp4", page_size=3)]
    assert listed == [f"v/{i}.mp4" for i in range(5, 10)]
    assert oss_emulator.requests[0]["query"]["start-after"] == "v/4.mp4"


def test_an_empty_prefix_lists_nothing_in_one_request(oss_emulator, sts):
    assert list(store(oss_emulator, sts).list("bkt", "nothing/")) == []
    assert oss_emulator.stats["list_requests"] == 1


def test_a_listing_failure_is_translated_and_retryable(oss_emulator, sts):
    oss_emulator.put_object("bkt", "v/a.mp4", b"v")
    oss_emulator.fail_next(503, 503, 503)
    with pytest.raises(ServiceError) as caught:
        list(store(oss_emulator, sts).list("bkt", "v/"))
    assert (caught.value.retryable, caught.value.status) == (True, 503)
    assert "ListObjectsV2" in caught.value.message


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_the_other_stores_list_in_the_same_order(tmp_path, kind):
    keys = ["v/a-c.mp4", "v/a/b.mp4", "v/a.mp4", "v/a.mp4.anim.json", "v/a.mp4 copy.mp4", "v/日本.mp4", "w/x.mp4"]
    objects = MemoryObjectStore() if kind == "memory" else LocalObjectStore(tmp_path)
    for key in keys:
        objects.put("bkt", key, key.encode())
    listed = list(objects.list("bkt", "v/"))
    assert [o.key for o in listed] == sorted(k for k in keys if k.startswith("v/"))
    assert listed[0].etag == hashlib.md5(listed[0].key.encode()).hexdigest().upper()
    assert [o.key for o in objects.list("bkt", "v/a", start_after="v/a.mp4")] == [
        "v/a.mp4 copy.mp4", "v/a.mp4.anim.json", "v/a/b.mp4"]
    assert list(objects.list("bkt", "nothing/here/")) == []


def test_listings_carry_the_storage_class_and_restore_state(oss_emulator, sts):
    oss_emulator.put_object("bkt", "v/a.mp4", b"a")
    oss_emulator.put_object("bkt", "v/b.mp4", b"b", storage_class="Archive")
    oss_emulator.put_object("bkt", "v/c.mp4", b"c", storage_class="ColdArchive",
                            restore_info='ongoing-request="false", expiry-date="Sun, 16 Apr 2017 08:12:33 GMT"')
    oss_emulator.put_object("bkt", "v/d.mp4", b"d", storage_class="Archive", restore_info='ongoing-request="true"')
    listed = {o.key: (o.storage_class, o.restored) for o in store(oss_emulator, sts).list("bkt", "v/")}
    assert listed == {"v/a.mp4": ("Standard", False), "v/b.mp4": ("Archive", False),
                      "v/c.mp4": ("ColdArchive", True), "v/d.mp4": ("Archive", False)}
