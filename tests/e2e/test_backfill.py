"""Issue 12's acceptance: `autoanim backfill` against loopback OSS and FC with 1,000 objects.

The real OSS SDK lists and reads tags from the loopback OSS (pagination, url-encoded
keys); the real FC 3.0 SDK invokes the loopback FC, which decodes the InvokeFunction
request. Each object's expected fate comes from how the test made it, not from the code.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

pytest.importorskip("alibabacloud_fc20230330", reason="the FC SDK is the backfill extra")

from autoanim import cli
from autoanim.events import parse_oss_event
from autoanim.fc_events import oss_event
from tests.support.emulators.fc_server import FcEmulator
from tests.support.emulators.oss_server import OssEmulator
from tests.wire.conftest import SECRET, STS, TOKEN

BUCKET = "backfill-bucket"
FLAVOURS = ["plain", "with space", "a+b=c", "100% %2B", "日本語", "vidéo-😀"]
GOOD_TAGS = [
    {"anim-format": "gif", "anim-duration": "3", "anim-fps": "10"},
    {"anim-profile": "sticker"},
    {"anim-format": "gif+webp", "anim-duration": "2", "anim-fps": "8"},
    {"anim-start": "1", "anim-frames": "20", "anim-width": "0.5"},
    {"anim-profile": "timelapse", "anim-name": "tl"},
]
HOSTILE_TAGS = [{"anim-fps": "1000"}, {"anim-name": "../../x"}, {"anim-width": "100000"},
                {"anim-frames": "100000"}, {"anim-format": "png"}]
SIDECARS = [
    {"animations": [{"format": "webp", "start": 1, "duration": 4, "fps": 5}]},
    {"animations": [{"profile": "sticker"}, {"format": "gif", "duration": 2, "fps": 6, "name": "short"}]},
    {"animations": [{"Format": "webp", "StartTime": 0, "Duration": 3, "FrameRate": 4, "Number": 12}]},
]
BAD_SIDECAR = {"animations": [{"fps": 999}]}


@dataclass
class Bucket:
    """What the test put in the bucket, and what each video should become (by construction)."""

    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    sidecars: dict[str, bytes] = field(default_factory=dict)  # video key -> sidecar JSON
    convertible: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)
    kinds: Counter = field(default_factory=Counter)

    def add(self, key: str, kind: str, tags: dict[str, str] | None = None, data: bytes | None = None) -> None:
        self.objects[key] = (data if data is not None else f"bytes of {key}".encode(), dict(tags or {}))
        self.kinds[kind] += 1

    def etag(self, key: str) -> str:
        return hashlib.md5(self.objects[key][0]).hexdigest().upper()


def make_bucket(total: int = 1000, seed: int = 12) -> Bucket:
    rng = random.Random(seed)
    made = Bucket()
    plan = ["tagged"] * 20 + ["sidecar"] * 15 + ["untagged"] * 20 + ["off"] * 6 + ["hostile"] * 6 + \
        ["bad-sidecar"] * 2 + ["waits"] * 2 + ["not-video"] * 10 + ["ours"] * 6
    i = 0
    while len(made.objects) < total:
        kind = plan[i % len(plan)]
        name = f"videos/{kind}/{i:04d} {FLAVOURS[i % len(FLAVOURS)]}"
        i += 1
        ext = rng.choice(["mp4", "mov", "MKV", "webm"])
        key = f"{name}.{ext}"
        if kind == "tagged":
            made.add(key, kind, rng.choice(GOOD_TAGS))
            made.convertible.add(key)
        elif kind == "untagged":
            made.add(key, kind)
            made.convertible.add(key)
        elif kind in ("sidecar", "bad-sidecar"):
            body = json.dumps(rng.choice(SIDECARS) if kind == "sidecar" else BAD_SIDECAR).encode()
            made.add(key, kind, {"anim-fps": "1000"} if kind == "sidecar" else None)  # the sidecar wins over tags
            made.add(key + ".anim.json", "sidecar-file", data=body)
            made.sidecars[key] = body
            (made.convertible if kind == "sidecar" else made.rejected).add(key)
        elif kind == "off":
            made.add(key, kind, {"anim": "off", "anim-format": "gif"})
        elif kind == "hostile":
            made.add(key, kind, rng.choice(HOSTILE_TAGS))
            made.rejected.add(key)
        elif kind == "waits":
            made.add(key, kind, {"anim": "sidecar"})
        elif kind == "not-video":
            made.add(f"{name}.{rng.choice(['txt', 'jpg', 'json', 'mp3'])}", kind)
        else:  # our own outputs and manifests (under the prefix by a user's mistake)
            made.add(f"{name}.{rng.choice(['gif', 'webp', 'mp4.manifest.json'])}", kind)
    return made


@pytest.fixture(scope="module")
def made() -> Bucket:
    return make_bucket()


@pytest.fixture
def oss(made):
    with OssEmulator() as emulator:
        for key, (data, tags) in made.objects.items():
            emulator.put_object(BUCKET, key, data, tags=tags)
        yield emulator


@pytest.fixture
def fc():
    with FcEmulator() as emulator:
        yield emulator


def operator_env(monkeypatch, tmp_path, **endpoints: str) -> None:
    """The operator's shell: only the given endpoints and a key pair from the default chain's variables."""
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "ALIBABA_CLOUD_", "FC_")):
            monkeypatch.delenv(var)
    for name, value in {"OSS_REGION": "cn-hangzhou", "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tBackfillTest",
                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET, **endpoints}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def env(monkeypatch, oss, fc, tmp_path):
    operator_env(monkeypatch, tmp_path, OSS_ENDPOINT=oss.endpoint, FC_ENDPOINT=fc.endpoint,
                 ALIBABA_CLOUD_SECURITY_TOKEN=TOKEN)
    return tmp_path


def backfill_cli(capsys, *args: str) -> tuple[int, dict]:
    code = cli.main(["backfill", f"oss://{BUCKET}/videos/", "--json", "--progress", "off", *args])
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err and TOKEN not in captured.out + captured.err
    return code, json.loads(captured.out)


def accepted_keys(fc) -> dict[str, str]:
    """Task id → the video key the invocation's event names (the event parsed as on_upload would)."""
    found = {}
    for sent in fc.invocations:
        ((_, record),) = parse_oss_event(sent["body"]).records
        assert sent["invocation_type"] == "Async" and sent["function"] == "autoanim-on-upload"
        assert record.bucket == BUCKET and record.event_name == "ObjectCreated:PutObject"
        found[sent["task_id"]] = (record.key, record.etag)
    return found


def test_the_dry_run_bills_what_autoanim_plan_bills_object_by_object(env, capsys, made, oss, fc):
    code, report = backfill_cli(capsys)
    assert code == 0
    assert report["objects"] == len(made.objects) == 1000
    assert report["videos"] == sum(made.kinds[k] for k in ("tagged", "sidecar", "untagged", "off", "hostile",
                                                            "bad-sidecar", "waits"))
    assert {r["key"] for r in report["rejected"]} == made.rejected
    assert all(r["reason"] for r in report["rejected"])
    assert report["skipped"]["anim=off"] == made.kinds["off"]
    assert report["skipped"]["sidecar (planned with its video)"] == made.kinds["sidecar-file"]
    assert report["skipped"]["not a video (by extension)"] == made.kinds["not-video"]
    assert report["skipped"]["autoanim's own output, manifest or claim"] == made.kinds["ours"]
    assert not fc.requests  # a dry run invokes nothing

    # `autoanim plan` over the same objects, one at a time, with each object's tags and sidecar.
    planned: Counter = Counter()
    total = 0
    for key, (data, tags) in made.objects.items():
        if key.endswith(".anim.json"):
            continue  # planned with its video
        event = env / "event.json"
        event.write_bytes(oss_event(BUCKET, key, size=len(data), etag=made.etag(key)))
        args = ["plan", str(event), "--json"]
        if tags:
            args += ["--tags", "&".join(f"{k}={v}" for k, v in tags.items())]
        if key in made.sidecars:
            (env / "sidecar.json").write_bytes(made.sidecars[key])
            args += ["--sidecar", str(env / "sidecar.json")]
        cli.main(args)
        out = json.loads(capsys.readouterr().out)
        total += out["billed_frames_total"]
        planned.update((t["output"], t["billed_frames"]) for t in out["tasks"])
    assert report["billed_frames_total"] == total > 0
    assert Counter((t["output"], t["billed_frames"]) for t in report["tasks"]) == planned
    assert sum(sum(p.values()) for p in report["billed_frames"].values()) == total
    assert {t["source"].split("/", 3)[3] for t in report["tasks"]} == made.convertible
    # Sidecars came from the listing: no sidecar was probed for a video that has none.
    sidecar_reads = [r for r in oss.requests if r["method"] == "GET" and r["key"].endswith(".anim.json")]
    assert len(sidecar_reads) == len(made.sidecars)


def test_submit_invokes_once_per_video_and_a_second_run_invokes_nothing(env, capsys, made, oss, fc):
    code, first = backfill_cli(capsys, "--submit", "--rate", "0")
    assert code == 0 and first["complete"] is True
    found = accepted_keys(fc)
    assert len(fc.invocations) == len(made.convertible) == first["invoked"]
    assert {key for key, _ in found.values()} == made.convertible
    clips: dict[str, list[str]] = {}
    for task in first["tasks"]:
        clips.setdefault(task["source"].split("/", 3)[3], []).append(task["idempotency_key"])
    for tid, (key, etag) in found.items():  # the task id names (bucket, key, ETag) and the planned clips
        assert etag == made.etag(key)
        identity = json.dumps([BUCKET, key, etag, sorted(clips[key])], ensure_ascii=False, separators=(",", ":"))
        assert tid == "autoanim-" + hashlib.sha256(identity.encode()).hexdigest()

    code, second = backfill_cli(capsys, "--submit", "--rate", "0")
    assert code == 0 and second["invoked"] == 0 and second["duplicates"] == len(made.convertible)
    assert len(fc.invocations) == len(made.convertible)  # FC refused every repeat (409)
    assert fc.stats["status_409"] == len(made.convertible)

    # New rules on one video (same ETag): new clips, so a new task id; the rest are still repeats.
    changed = min(k for k in made.convertible if k not in made.sidecars)
    oss.tags[(BUCKET, changed)] = {"anim-format": "gif", "anim-duration": "1", "anim-fps": "7", "anim-name": "new"}
    code, third = backfill_cli(capsys, "--submit", "--rate", "0")
    assert code == 0 and third["invoked"] == 1 and third["duplicates"] == len(made.convertible) - 1
    assert accepted_keys(fc)[fc.invocations[-1]["task_id"]][0] == changed


def test_an_interrupted_run_resumed_ends_with_the_same_set(env, capsys, made, fc):
    code, first = backfill_cli(capsys, "--submit", "--limit", "300", "--workers", "8", "--rate", "0")
    assert code == 0 and first["invoked"] == 300 and first["complete"] is False
    checkpoint = json.loads((env / first["checkpoint"]).read_text())
    assert checkpoint["last_key"] == first["last_key"] and checkpoint["complete"] is False
    assert len(fc.invocations) == 300

    code, rest = backfill_cli(capsys, "--submit", "--resume", "--workers", "8", "--rate", "0")
    assert code == 0 and rest["complete"] is True and rest["resumed_after"] == first["last_key"]
    assert rest["objects"] < len(made.objects)  # it listed after the checkpoint only
    found = accepted_keys(fc)
    assert {key for key, _ in found.values()} == made.convertible
    assert len(fc.invocations) == len(made.convertible)  # nothing was invoked twice
    assert first["invoked"] + rest["invoked"] == len(made.convertible)


def test_throttling_is_retried_and_a_missing_function_stops_the_run(env, capsys, made, fc):
    fc.fail_next(429, 429, 503)
    code, report = backfill_cli(capsys, "--submit", "--rate", "0", "--workers", "2")
    assert code == 0 and report["invoked"] == len(made.convertible) and not report["failed"]
    assert fc.stats["status_429"] == 2 and fc.stats["status_503"] == 1

    code = cli.main(["backfill", f"oss://{BUCKET}/videos/", "--submit", "--function", "no-such-function",
                     "--progress", "off"])
    captured = capsys.readouterr()
    assert code == 4 and "FunctionNotFound" in captured.err and "HTTP 404" in captured.err


def test_resume_needs_a_checkpoint_of_the_same_run(env, capsys):
    assert cli.main(["backfill", f"oss://{BUCKET}/videos/", "--resume"]) == 2
    assert "--resume continues a --submit run" in capsys.readouterr().err
    assert cli.main(["backfill", f"oss://{BUCKET}/videos/", "--submit", "--resume"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_once_the_functions_ran_a_second_run_sends_nothing_at_all(monkeypatch, capsys, tmp_path):
    """The whole loop: the loopback FC runs the real on_upload (real OSS and IMM SDKs, loopback IMM);
    the claims it leaves make the next backfill skip every video without a request to FC."""
    import index
    from autoanim.adapters.imm import ImmMediaService
    from autoanim.adapters.oss import OssObjectStore
    from autoanim.bootstrap import local_context
    from autoanim.config import Settings
    from autoanim.service import App
    from tests.support.emulators.imm_server import ImmEmulator

    small = make_bucket(total=120, seed=3)
    errors: list[BaseException] = []
    with OssEmulator() as oss, ImmEmulator(seed=1) as imm:
        for key, (data, tags) in small.objects.items():
            oss.put_object(BUCKET, key, data, tags=tags)
        settings = Settings(backend="imm", imm_project="p", imm_region="cn-hangzhou", imm_endpoint=imm.endpoint,
                            oss_endpoint=oss.endpoint, oss_region="cn-hangzhou", imm_notify_topic="t")
        function_app = App(settings=settings,
                           store=OssObjectStore(region="cn-hangzhou", endpoint=oss.endpoint, credentials=STS),
                           media=ImmMediaService(project="p", region="cn-hangzhou", endpoint=imm.endpoint,
                                                 credentials=STS))

        def run_on_upload(record):  # what FC's async queue does with an accepted invocation
            try:
                index.on_upload(record["body"], local_context("on_upload"), app=function_app)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        with FcEmulator(on_invoke=run_on_upload) as fc:
            operator_env(monkeypatch, tmp_path, OSS_ENDPOINT=oss.endpoint, FC_ENDPOINT=fc.endpoint)

            code, first = backfill_cli(capsys, "--submit", "--rate", "0")
            assert fc.wait_idle() and not errors
            assert code == 0 and first["invoked"] == len(small.convertible)
            assert len(imm.created) == first["clips"]  # on_upload submitted every planned clip to IMM
            requests = fc.stats["requests"]

            code, second = backfill_cli(capsys, "--submit", "--rate", "0")
            assert code == 0 and second["invoked"] == 0 and second["duplicates"] == 0
            assert second["skipped_done"] == len(small.convertible)
            assert second["clips_done"] == second["clips"] == first["clips"]
            assert second["billed_frames_total"] == 0 and second["billed_frames_done"] == first["billed_frames_total"]
            assert fc.stats["requests"] == requests  # not one request to FC


def test_via_direct_runs_on_upload_here_against_oss_and_imm(monkeypatch, capsys, tmp_path):
    """`--via direct`: no FC at all; this process claims and submits to IMM, once."""
    from tests.support.emulators.imm_server import ImmEmulator

    small = make_bucket(total=80, seed=5)
    with OssEmulator() as oss, ImmEmulator(seed=1) as imm:
        for key, (data, tags) in small.objects.items():
            oss.put_object(BUCKET, key, data, tags=tags)
        operator_env(monkeypatch, tmp_path, OSS_ENDPOINT=oss.endpoint, IMM_ENDPOINT=imm.endpoint, IMM_PROJECT="p",
                     IMM_REGION="cn-hangzhou", IMM_NOTIFY_TOPIC="t")

        code, dry = backfill_cli(capsys)
        code, first = backfill_cli(capsys, "--submit", "--via", "direct", "--rate", "0")
        assert code == 0 and first["via"] == "direct" and first["invoked"] == len(small.convertible)
        assert len(imm.created) == dry["clips"] == first["clips"]
        assert sum(a["Number"] for r in imm.created for t in r["Targets"] for a in t["Image"]["Animations"]) \
            == dry["billed_frames_total"]

        code, again = backfill_cli(capsys, "--submit", "--via", "direct", "--rate", "0")
        assert code == 0 and again["invoked"] == 0 and again["skipped_done"] == len(small.convertible)
        assert len(imm.created) == first["clips"]


def test_archived_videos_are_reported_not_handed_over(monkeypatch, capsys, tmp_path):
    with OssEmulator() as oss, FcEmulator() as fc:
        oss.put_object(BUCKET, "videos/new.mp4", b"n")
        oss.put_object(BUCKET, "videos/old.mp4", b"o", storage_class="Archive")
        oss.put_object(BUCKET, "videos/back.mp4", b"b", storage_class="Archive",
                       restore_info='ongoing-request="false", expiry-date="Sun, 16 Apr 2017 08:12:33 GMT"')
        operator_env(monkeypatch, tmp_path, OSS_ENDPOINT=oss.endpoint, FC_ENDPOINT=fc.endpoint)
        code, report = backfill_cli(capsys, "--submit", "--rate", "0")
        assert code == 0 and report["videos"] == 3 and report["invoked"] == 2
        (reason,) = report["skipped"]
        assert reason.startswith("storage class Archive: restore it first")
        assert {accepted_keys(fc)[t][0] for t in accepted_keys(fc)} == {"videos/new.mp4", "videos/back.mp4"}


def test_a_video_that_cannot_be_handed_over_is_failed_and_resumed(monkeypatch, capsys, tmp_path):
    small = make_bucket(total=30, seed=8)
    with OssEmulator() as oss, FcEmulator() as fc:
        for key, (data, tags) in small.objects.items():
            oss.put_object(BUCKET, key, data, tags=tags)
        operator_env(monkeypatch, tmp_path, OSS_ENDPOINT=oss.endpoint, FC_ENDPOINT=fc.endpoint)
        fc.fail_next(*[503] * 6)  # the first hand-over's every attempt
        code, first = backfill_cli(capsys, "--submit", "--rate", "0", "--workers", "1")
        assert code == 4 and len(first["failed"]) == 1 and not first["complete"]
        (failed,) = first["failed"]
        assert "gave up after 6 attempts" in failed["reason"]
        assert first["invoked"] == len(small.convertible) - 1  # the others went on
        assert first["last_key"] is None or first["last_key"] < failed["key"]

        code, rest = backfill_cli(capsys, "--submit", "--rate", "0", "--resume")
        assert code == 0 and rest["complete"] and rest["invoked"] == 1
        assert rest["duplicates"] == len(small.convertible) - 1
        assert {key for key, _ in accepted_keys(fc).values()} == small.convertible
