"""The real IMM SDK, through ImmMediaService, against the loopback IMM: what arrives and what comes back."""

from __future__ import annotations

import json
import threading

import pytest

from autoanim.adapters.credentials import Credentials
from autoanim.adapters.imm import ImmMediaService
from autoanim.adapters.retry import split_endpoint
from autoanim.errors import ConfigError, ServiceError
from tests.unit.test_retry import assert_backoff
from tests.wire.conftest import run_with_chain_credentials


class Clock:
    """A fake ``sleep`` that records delays, and a ``time_left`` that shrinks by them (and by each call)."""

    def __init__(self, budget: float, cost_per_check: float = 0.0):
        self.left = budget
        self.cost_per_check = cost_per_check
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.left -= seconds

    def time_left(self) -> float:
        self.left -= self.cost_per_check
        return self.left


def service(emulator, credentials, clock: Clock | None = None, **options) -> ImmMediaService:
    clock = clock or Clock(budget=600)
    return ImmMediaService(
        project="test-project",
        region="cn-hangzhou",
        endpoint=emulator.endpoint,
        credentials=credentials,
        time_left=clock.time_left,
        sleep=clock.sleep,
        **{"base_delay": 0.2, "max_delay": 5.0, **options},  # pinned here, whatever the shipped defaults
    )


def test_submit_sends_one_create_task_whose_query_means_the_request(imm_emulator, sts, convert_request):
    task_id = service(imm_emulator, sts).submit(convert_request)

    assert task_id.startswith("MediaConvert-") and task_id in imm_emulator.tasks
    (sent,) = imm_emulator.requests
    assert sent["action"] == "CreateMediaConvertTask"
    params = sent["params"]
    assert params["ProjectName"] == "test-project"
    assert params["Sources"][0]["URI"] == "oss://bkt/video-demo/Winemaking.mov"
    assert (params["Sources"][0]["StartTime"], params["Sources"][0]["Duration"]) == (5, 25)
    (target,) = params["Targets"]
    assert "Container" not in target and "URI" not in target
    (animation,) = target["Image"]["Animations"]
    assert animation == {
        "Format": "webp",
        "FrameRate": 15,
        "Interval": 1,
        "Number": 25,
        "Width": 0.5,
        "Height": 0.5,
        "ScaleType": "fit",
        "URI": "oss://bkt/animated/video-demo/Winemaking.webp",
    }
    assert params["Notification"] == {"MNS": {"TopicName": "test-mns-topic"}}
    assert json.loads(params["UserData"]) == {
        "bucket": "bkt",
        "key": "video-demo/Winemaking.mov",
        "rule": "tags",
    }
    assert imm_emulator.tasks[task_id]["Request"] == params


def test_sts_credentials_travel_in_the_signed_headers_not_the_query(imm_emulator, sts, convert_request):
    service(imm_emulator, sts).submit(convert_request)
    service(imm_emulator, Credentials("LTAIplainKey", "plain-secret")).submit(convert_request)

    with_token, without_token = imm_emulator.requests
    assert with_token["access_key_id"] == sts.access_key_id
    assert with_token["security_token"] == sts.security_token
    assert with_token["headers"]["authorization"].startswith("ACS3-HMAC-SHA256 Credential=")
    assert without_token["access_key_id"] == "LTAIplainKey" and without_token["security_token"] is None
    for sent in imm_emulator.requests:
        assert sts.access_key_secret not in json.dumps(sent)
        assert "plain-secret" not in json.dumps(sent)


def test_without_explicit_credentials_the_sdk_default_chain_is_used(imm_emulator, tmp_path):
    # The credentials package reads ALIBABA_CLOUD_* at import time: a fresh process sees them.
    script = (
        "import sys\n"
        "from autoanim.adapters.imm import ImmMediaService\n"
        "svc = ImmMediaService(project='test-project', region=None, endpoint=sys.argv[1], credentials=None)\n"
        "if svc.find_task({'autoanim-claim': 'none'}, since=0) is None:\n"
        "    print('answered')\n"
    )
    done = run_with_chain_credentials(script, imm_emulator.endpoint, tmp_path)
    assert done.stdout.strip() == "answered", done.stderr
    (sent,) = imm_emulator.requests
    assert sent["access_key_id"] == "LTAIfromTheChain" and sent["security_token"] == "chain-token"


def tagged(request, claim: str, attempt: int):
    return request.model_copy(update={"tags": {"autoanim-claim": claim, "autoanim-attempt": str(attempt)}})


def test_find_task_sends_list_tasks_by_tag_and_finds_the_attempt(imm_emulator, sts, convert_request):
    svc = service(imm_emulator, sts)
    first = svc.submit(tagged(convert_request, "k1", 0))
    second = svc.submit(tagged(convert_request, "k1", 1))
    svc.submit(tagged(convert_request, "k2", 0))

    assert svc.find_task({"autoanim-claim": "k1", "autoanim-attempt": "1"}, since=0) == second
    assert svc.find_task({"autoanim-claim": "k1", "autoanim-attempt": "0"}, since=0) == first
    assert svc.find_task({"autoanim-claim": "k3", "autoanim-attempt": "0"}, since=0) is None
    listed = [r for r in imm_emulator.requests if r["action"] == "ListTasks"]
    params = listed[0]["params"]
    assert params["ProjectName"] == "test-project" and params["TaskTypes"] == ["MediaConvert"]
    assert params["TagSelector"] == "autoanim-claim=k1" and params["StartTimeRange"]["Start"] < "2"
    assert all("Tags" in r["params"] for r in imm_emulator.requests if r["action"] == "CreateMediaConvertTask")


def test_find_task_reads_every_page(imm_emulator, sts, convert_request):
    svc = service(imm_emulator, sts)
    for attempt in range(130):
        last = svc.submit(tagged(convert_request, "many", attempt))
    assert svc.find_task({"autoanim-claim": "many", "autoanim-attempt": "129"}, since=0) == last
    assert len([r for r in imm_emulator.requests if r["action"] == "ListTasks"]) == 2  # 100 a page


def test_a_5xx_after_the_task_was_made_is_ambiguous_and_the_task_is_found(imm_emulator, sts, convert_request):
    imm_emulator.fail_next("error_after")
    clock = Clock(budget=600)
    svc = service(imm_emulator, sts, clock)
    request = tagged(convert_request, "k", 0)

    with pytest.raises(ServiceError) as caught:
        svc.submit(request)
    assert (caught.value.retryable, caught.value.ambiguous, caught.value.status) == (True, True, 500)
    assert imm_emulator.stats["requests"] == 1 and clock.sleeps == []  # never resent blindly
    (made,) = imm_emulator.tasks
    assert svc.find_task(request.tags, since=0) == made


def test_list_tasks_is_retried_on_5xx(imm_emulator, sts):
    imm_emulator.fail_next("error", "error")
    clock = Clock(budget=600)
    assert service(imm_emulator, sts, clock).find_task({"autoanim-claim": "k"}, since=0) is None
    assert imm_emulator.stats["requests"] == 3 and len(clock.sleeps) == 2


def test_a_missing_project_is_a_retryable_configuration_error(imm_emulator, sts, convert_request):
    imm_emulator.missing_projects.add("test-project")
    with pytest.raises(ConfigError) as caught:
        service(imm_emulator, sts).submit(convert_request)
    assert caught.value.retryable is True and "IMM_PROJECT" in caught.value.message
    assert imm_emulator.tasks == {}


@pytest.mark.parametrize(
    ("status", "retry_after_ms", "sdk_exception"),
    [(429, None, "ClientException"), (503, None, "ServerException"), (429, 800, "ThrottlingException")],
)
def test_throttling_is_retried_with_backoff_then_succeeds(
    imm_emulator, sts, convert_request, status, retry_after_ms, sdk_exception
):
    imm_emulator.throttle_status = status
    imm_emulator.retry_after_ms = retry_after_ms
    imm_emulator.fail_next("throttle", "throttle")
    clock = Clock(budget=600)

    task_id = service(imm_emulator, sts, clock).submit(convert_request)

    assert list(imm_emulator.tasks) == [task_id]
    assert imm_emulator.stats["requests"] == 3 and imm_emulator.stats["throttle"] == 2
    assert_backoff(clock.sleeps, base=0.2, cap=5.0, floor=(retry_after_ms or 0) / 1000)  # retry-after: a floor


def test_the_sdk_exception_for_each_throttle_shape(imm_emulator, sts, convert_request):
    """What the SDK raises: 429 → ClientException, 503 → ServerException, x-acs-retry-after → ThrottlingException."""
    from alibabacloud_tea_openapi import exceptions

    seen = []
    for status, retry_after in ((429, None), (503, None), (429, 800)):
        imm_emulator.throttle_status, imm_emulator.retry_after_ms = status, retry_after
        imm_emulator.fail_next("throttle")
        with pytest.raises(ServiceError) as caught:
            service(imm_emulator, sts, attempts=1).submit(convert_request)
        assert caught.value.retryable is True and caught.value.code == "Throttling.User"
        assert caught.value.status == status and caught.value.request_id
        seen.append(type(caught.value.__cause__))
    assert seen == [exceptions.ClientException, exceptions.ServerException, exceptions.ThrottlingException]


def test_5xx_on_create_is_raised_at_once_as_ambiguous(imm_emulator, sts, convert_request):
    imm_emulator.fail_next(*["error"] * 10)
    clock = Clock(budget=600)

    with pytest.raises(ServiceError) as caught:
        service(imm_emulator, sts, clock, attempts=4).submit(convert_request)

    error = caught.value
    assert (error.retryable, error.ambiguous, error.code, error.status) == (True, True, "InternalError", 500)
    assert imm_emulator.stats["requests"] == 1 and clock.sleeps == []


def test_invalid_request_is_permanent_and_sent_once(imm_emulator, sts, convert_request):
    clock = Clock(budget=600)
    bad = convert_request.model_copy(update={"project_name": ""})

    with pytest.raises(ServiceError) as caught:
        service(imm_emulator, sts, clock).submit(bad)

    assert caught.value.retryable is False and caught.value.status == 400
    assert caught.value.code == "MissingProjectName"
    assert imm_emulator.stats["requests"] == 1 and clock.sleeps == []


def test_retries_stop_before_the_time_budget_runs_out(imm_emulator, sts, convert_request):
    imm_emulator.fail_next(*["throttle"] * 10)
    # 11 s left: room for a few short pauses plus a 10 s read timeout, not for ten attempts.
    clock = Clock(budget=11.0)

    with pytest.raises(ServiceError) as caught:
        service(imm_emulator, sts, clock, attempts=10, read_timeout=10.0).submit(convert_request)

    made = len(clock.sleeps) + 1
    assert caught.value.retryable is True and f"stopped after {made} attempts: " in caught.value.message
    assert imm_emulator.stats["requests"] == made < 10
    assert_backoff(clock.sleeps, base=0.2, cap=5.0)
    assert clock.left >= 10.0  # every pause left room for one more call: never slept past the budget


def test_no_budget_means_no_sleep_at_all(imm_emulator, sts, convert_request):
    imm_emulator.fail_next("throttle")
    clock = Clock(budget=1.0)
    with pytest.raises(ServiceError) as caught:
        service(imm_emulator, sts, clock, read_timeout=2.0).submit(convert_request)
    assert caught.value.retryable is True and clock.sleeps == []


def test_a_slow_answer_times_out_and_is_ambiguous(imm_emulator, sts, convert_request):
    imm_emulator.timeout_seconds = 1.0
    imm_emulator.timeout_applies = True  # IMM made the task; the answer comes too late
    imm_emulator.fail_next("timeout")
    clock = Clock(budget=600)
    svc = service(imm_emulator, sts, clock, read_timeout=0.2)
    request = tagged(convert_request, "slow", 0)

    with pytest.raises(ServiceError) as caught:
        svc.submit(request)
    assert (caught.value.retryable, caught.value.ambiguous, caught.value.code) == (True, True, "ConnectionError")
    assert len(imm_emulator.tasks) == 1 and clock.sleeps == []  # not resent: it would be a second task
    assert svc.find_task(request.tags, since=0) == next(iter(imm_emulator.tasks))


def test_connection_refused_is_retryable(sts, convert_request):
    clock = Clock(budget=600)
    svc = ImmMediaService(
        project="p",
        region=None,
        endpoint="http://127.0.0.1:9",
        credentials=sts,
        attempts=2,
        time_left=clock.time_left,
        sleep=clock.sleep,
        connect_timeout=1.0,
    )
    with pytest.raises(ServiceError) as caught:
        svc.submit(convert_request)
    assert (caught.value.retryable, caught.value.code) == (True, "ConnectionError")
    assert clock.sleeps == []  # a transport failure on create is not resent blindly (see the service)


def test_credentials_never_appear_in_errors_or_reprs(imm_emulator, sts, convert_request):
    errors: list[ServiceError] = []
    for faults in (["error"], ["throttle"], []):
        imm_emulator.fail_next(*faults)
        try:
            bad = convert_request if faults else convert_request.model_copy(update={"project_name": ""})
            service(imm_emulator, sts, attempts=1).submit(bad)
        except ServiceError as error:
            errors.append(error)
    refused = ImmMediaService(
        project="p", region=None, endpoint="http://127.0.0.1:9", credentials=sts, attempts=1
    )
    with pytest.raises(ServiceError) as caught:
        refused.submit(convert_request)
    errors.append(caught.value)

    assert len(errors) == 4
    shown = [str(e) for e in errors] + [repr(e) for e in errors] + [json.dumps(e.as_dict()) for e in errors]
    shown += [repr(refused), str(refused)]
    for text in shown:
        assert sts.access_key_secret not in text and sts.security_token not in text


def test_one_sdk_client_per_service_instance_and_thread(imm_emulator, sts, convert_request):
    svc = service(imm_emulator, sts)
    svc.submit(convert_request)
    client = svc._sdk()
    svc.submit(convert_request)
    svc.find_task({"autoanim-claim": "x"}, since=0)
    assert svc._sdk() is client and len(imm_emulator.tasks) == 2


def test_on_task_hook_sees_each_created_task(sts, convert_request):
    from tests.support.emulators.imm_server import ImmEmulator

    delivered = []
    done = threading.Event()

    def deliver(task_id, request):
        delivered.append((task_id, request["ProjectName"]))
        done.set()

    with ImmEmulator(on_task=deliver) as emulator:
        task_id = service(emulator, sts).submit(convert_request)
        assert done.wait(10)  # the hook runs after the answer, on the server's thread
    assert delivered == [(task_id, "test-project")]


def test_qps_limit_throttles_a_burst(sts, convert_request):
    from tests.support.emulators.imm_server import ImmEmulator

    with ImmEmulator(qps_limit=0.01, burst=1) as emulator:
        svc = service(emulator, sts, attempts=1)
        svc.submit(convert_request)
        with pytest.raises(ServiceError) as caught:
            svc.submit(convert_request)
    assert caught.value.code == "Throttling.User" and caught.value.retryable is True
    assert emulator.stats["throttle"] == 1 and len(emulator.tasks) == 1


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:9100", ("http", "127.0.0.1:9100")),
        ("https://imm.cn-hangzhou.aliyuncs.com/", ("https", "imm.cn-hangzhou.aliyuncs.com")),
        ("127.0.0.1:9100", (None, "127.0.0.1:9100")),
    ],
)
def test_endpoint_override_splits_scheme_and_host(endpoint, expected):
    assert split_endpoint(endpoint) == expected


def test_a_region_or_an_endpoint_is_required(sts):
    with pytest.raises(ConfigError):
        ImmMediaService(project="p", region=None, endpoint=None, credentials=sts)
