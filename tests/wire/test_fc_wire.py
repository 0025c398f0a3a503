"""The real FC 3.0 SDK (alibabacloud-fc20230330), through FcInvoker, against the loopback FC."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("alibabacloud_fc20230330", reason="the FC SDK is the backfill extra (not in FC's runtime set)")

from autoanim.adapters.fc import FcInvoker
from autoanim.errors import ConfigError, NotFound, ServiceError
from autoanim.events import parse_oss_event
from autoanim.fc_events import oss_event
from tests.support.emulators.fc_server import FcEmulator


@pytest.fixture
def fc():
    with FcEmulator(functions=("autoanim-on-upload", "my fn+1")) as emulator:
        yield emulator


def invoker(fc, credentials, function="autoanim-on-upload", **kw) -> FcInvoker:
    kw.setdefault("sleep", lambda s: None)
    return FcInvoker(function=function, region="cn-hangzhou", endpoint=fc.endpoint, credentials=credentials, **kw)


def test_an_async_invocation_carries_the_task_id_and_the_event(fc, sts):
    event = oss_event("bkt", "videos/日本 語+%.mp4", size=3, etag="ABC")
    answer = invoker(fc, sts).invoke_async(event, "autoanim-0123abcd")

    assert (answer.status, answer.task_id, fc.stats["requests"]) == ("accepted", "autoanim-0123abcd", 1)
    (sent,) = fc.invocations
    assert sent["method"] == "POST" and sent["path"] == "/2023-03-30/functions/autoanim-on-upload/invocations"
    assert (sent["invocation_type"], sent["task_id"]) == ("Async", "autoanim-0123abcd")
    assert sent["body"] == event  # byte for byte what on_upload will receive
    ((_, record),) = parse_oss_event(sent["body"]).records
    assert (record.bucket, record.key, record.etag) == ("bkt", "videos/日本 語+%.mp4", "ABC")
    assert sent["access_key_id"] == sts.access_key_id
    assert sent["security_token"] == sts.security_token
    assert sent["headers"]["authorization"].startswith("ACS3-HMAC-SHA256 ")
    assert sts.access_key_secret not in json.dumps({k: v for k, v in sent.items() if k != "body"})


def test_a_function_name_is_percent_encoded_and_the_qualifier_is_a_query(fc, sts):
    invoker(fc, sts, function="my fn+1", qualifier="prod").invoke_async(b"{}", "_t1")
    (sent,) = fc.invocations
    assert sent["function"] == "my fn+1" and sent["query"] == {"qualifier": "prod"}


def test_a_repeated_task_id_is_refused_and_reported_as_a_duplicate(fc, sts):
    calls = invoker(fc, sts)
    assert calls.invoke_async(b"{}", "autoanim-1").status == "accepted"
    again = calls.invoke_async(b"{}", "autoanim-1")
    assert again.status == "duplicate" and fc.stats["requests"] == 2  # one each
    assert len(fc.invocations) == 1 and fc.stats["status_409"] == 1


def test_throttling_and_5xx_are_retried_with_backoff(fc, sts):
    from tests.unit.test_retry import assert_backoff

    pauses = []
    fc.fail_next(429, 503, 500)
    answer = invoker(fc, sts, sleep=pauses.append).invoke_async(b"{}", "autoanim-2")
    assert answer.status == "accepted"
    assert_backoff(pauses, base=0.2, cap=10.0)  # the shipped defaults: full jitter under a capped exponential
    assert fc.stats["requests"] == 4 and len(fc.invocations) == 1


def test_a_retry_that_meets_its_own_lost_first_attempt_counts_as_accepted(fc, sts):
    """A 5xx after FC queued the call: the retry's 409 means this run queued it."""
    fc.lose_answers(1)
    answer = invoker(fc, sts).invoke_async(b"{}", "autoanim-3")
    assert (answer.status, fc.stats["requests"]) == ("accepted", 2)
    assert len(fc.invocations) == 1 and fc.stats["status_409"] == 1


def test_a_repeat_refused_after_failures_that_queued_nothing_is_a_duplicate(fc, sts):
    """A 408 or a throttle is not queued (not ``ambiguous``): the 409 after it is an earlier run's call."""
    calls = invoker(fc, sts)
    assert calls.invoke_async(b"{}", "autoanim-8").status == "accepted"  # an earlier run's
    fc.fail_next(408, 429)
    assert calls.invoke_async(b"{}", "autoanim-8").status == "duplicate"
    assert fc.stats["requests"] == 4 and len(fc.invocations) == 1


def test_giving_up_is_retryable_and_says_so(fc, sts):
    fc.fail_next(*[503] * 3)
    with pytest.raises(ServiceError) as caught:
        invoker(fc, sts, attempts=3).invoke_async(b"{}", "autoanim-4")
    assert caught.value.retryable and caught.value.status == 503 and "gave up after 3" in caught.value.message
    assert not fc.invocations


def test_an_unknown_function_is_not_found_and_not_retried(fc, sts):
    with pytest.raises(NotFound) as caught:
        invoker(fc, sts, function="nope").invoke_async(b"{}", "autoanim-5")
    assert (caught.value.status, caught.value.retryable, caught.value.code) == (404, False, "FunctionNotFound")
    assert fc.stats["requests"] == 1


def test_connection_refused_is_retryable(sts):
    calls = FcInvoker(function="f", region="cn-hangzhou", endpoint="http://127.0.0.1:9", credentials=sts,
                      attempts=2, sleep=lambda s: None, connect_timeout=1)
    with pytest.raises(ServiceError) as caught:
        calls.invoke_async(b"{}", "autoanim-6")
    assert caught.value.retryable and caught.value.code == "ConnectionError"
    assert sts.access_key_secret not in str(caught.value) and sts.access_key_secret not in repr(calls)


def test_bad_task_ids_and_configuration_are_refused_before_any_call(fc, sts):
    with pytest.raises(ValueError):
        invoker(fc, sts).invoke_async(b"{}", "9-starts-with-a-digit")
    with pytest.raises(ValueError):
        invoker(fc, sts).invoke_async(b"{}", "a" * 129)
    with pytest.raises(ConfigError):
        FcInvoker(function="f", region=None, endpoint=None, credentials=sts)
    assert not fc.requests


def test_default_endpoint_is_the_sdks_regional_fc3_one(sts):
    client, _ = FcInvoker(function="f", region="cn-shanghai", endpoint=None, credentials=sts)._sdk()
    assert client._endpoint == "fcv3.cn-shanghai.aliyuncs.com"


def test_without_explicit_credentials_the_default_chain_signs(fc, tmp_path):
    from tests.wire.conftest import run_with_chain_credentials

    script = (
        "import sys\n"
        "from autoanim.adapters.fc import FcInvoker\n"
        "FcInvoker(function='autoanim-on-upload', region='cn-hangzhou', endpoint=sys.argv[1],\n"
        "          credentials=None).invoke_async(b'{}', 'autoanim-chain')\n"
    )
    done = run_with_chain_credentials(script, fc.endpoint, tmp_path)
    assert done.returncode == 0, done.stderr
    (sent,) = fc.invocations
    assert sent["access_key_id"] == "LTAIfromTheChain" and sent["security_token"] == "chain-token"
