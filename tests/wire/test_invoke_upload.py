"""Issue 2's acceptance: `autoanim invoke upload` with AUTOANIM_BACKEND=imm against loopback IMM and OSS.

The whole stack runs for real: CLI → index.on_upload → service → the real IMM and
OSS SDKs → HTTP on 127.0.0.1 → emulators that decode the wire format.
"""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest

from autoanim import cli
from tests.conftest import EVENTS
from tests.functional.test_result import result_event
from tests.wire.conftest import SECRET, TOKEN

TAGS = {"anim-format": "webp", "anim-start": "5", "anim-duration": "25", "anim-fps": "15", "anim-interval": "1",
        "anim-width": "0.5", "anim-height": "0.5", "anim-scale": "fit"}
KEY = "video-demo/Winemaking.mov"


@pytest.fixture
def cloud_env(monkeypatch, imm_emulator, oss_emulator):
    for var in list(os.environ):
        if var.startswith(("IMM_", "OSS_", "OUTPUT_", "AUTOANIM_", "DEFAULT_PROFILE", "ALIBABA_CLOUD_")):
            monkeypatch.delenv(var)
    env = {"AUTOANIM_BACKEND": "imm", "IMM_PROJECT": "test-project", "IMM_NOTIFY_TOPIC": "test-mns-topic",
           "IMM_REGION": "cn-hangzhou", "IMM_ENDPOINT": imm_emulator.endpoint, "OSS_ENDPOINT": oss_emulator.endpoint,
           "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tInvokeTest", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
           "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return imm_emulator, oss_emulator


def invoke(capsys, event: str) -> tuple[int, dict, str]:
    code = cli.main(["invoke", "upload", str(EVENTS / event), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.out + captured.err


def test_tagged_upload_sends_exactly_the_guide_request(cloud_env, capsys):
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags=TAGS)
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    assert code == 0 and len(report["submitted"]) == 1
    creates = [r for r in imm.requests if r["action"] == "CreateMediaConvertTask"]
    assert len(creates) == 1
    params = creates[0]["params"]
    assert params["ProjectName"] == "test-project"
    (source,) = params["Sources"]
    assert (source["URI"], source["StartTime"], source["Duration"]) == (f"oss://test-bucket/{KEY}", 5, 25)
    (target,) = params["Targets"]
    assert not target.get("Container") and not target.get("URI")
    (animation,) = target["Image"]["Animations"]
    assert {k: animation[k] for k in ("Format", "FrameRate", "Interval", "Number", "Width", "Height", "ScaleType")} == {
        "Format": "webp", "FrameRate": 15, "Interval": 1, "Number": 25, "Width": 0.5, "Height": 0.5, "ScaleType": "fit"}
    assert animation["URI"].startswith("oss://test-bucket/animated/")
    assert params["Notification"] == {"MNS": {"TopicName": "test-mns-topic"}}
    # The claim went through OSS's atomic create.
    claims = [r for r in oss.requests if r["method"] == "PUT" and "/.autoanim/claims/" in r["key"]]
    assert claims and claims[0]["headers"].get("x-oss-forbid-overwrite") == "true"


def test_redelivery_sends_nothing_more(cloud_env, capsys):
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags=TAGS)
    invoke(capsys, "oss-put-tagged.json")
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    assert code == 0 and report["duplicates"] and len(imm.created) == 1


@pytest.mark.parametrize("event,tags", [("oss-output-prefix.json", None), ("oss-not-video.json", None),
                                        ("oss-put-tagged.json", {"anim": "off"})])
def test_nothing_to_convert_sends_nothing(cloud_env, capsys, event, tags):
    imm, oss = cloud_env
    key = json.loads((EVENTS / event).read_text())["events"][0]["oss"]["object"]["key"]
    oss.put_object("test-bucket", key, b"bytes", tags=tags)
    code, report, _ = invoke(capsys, event)
    assert code == 0 and report["skipped"] and not imm.created


@pytest.mark.parametrize("tag,value", [("anim-name", "../../x"), ("anim-fps", "1000"), ("anim-width", "100000")])
def test_hostile_rules_send_nothing_and_say_why(cloud_env, capsys, tag, value):
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags={tag: value})
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    assert code == 2 and not imm.created
    assert f"{tag}={value!r}" in report["rejected"][0]["reason"]


def test_no_credential_in_any_output(cloud_env, capsys, caplog, tmp_path):
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags={"anim-fps": "1000"})
    caplog.set_level(logging.DEBUG)
    imm.fail_next(*["error"] * 20)  # more than create + ListTasks can use up: the upload below gives up, retryable
    outputs = []
    for event in ("oss-put-tagged.json", "oss-batch.json"):
        try:
            _, _, text = invoke(capsys, event)
        except json.JSONDecodeError:
            text = capsys.readouterr().err
        outputs.append(text)
    oss.put_object("test-bucket", KEY, b"mov bytes v2", tags=TAGS)
    code = cli.main(["invoke", "upload", str(EVENTS / "oss-put-tagged.json")])  # IMM 500s: retryable, exit 4
    imm.clear_faults()
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, caplog.text]
    # The result function too: a success and a failure, each writing a manifest through OSS.
    assert cli.main(["invoke", "upload", str(EVENTS / "oss-put-tagged.json")]) == 0
    (task_id,) = imm.tasks
    for template in ("mns-imm-failed-retryable.json", "mns-imm-failed.json"):
        event = tmp_path / template
        task = SimpleNamespace(user_data=imm.tasks[task_id]["UserData"])
        event.write_bytes(result_event(template, task, task_id))
        assert cli.main(["invoke", "result", str(event)]) == 0
        task_id = next(reversed(imm.tasks))  # the retryable failure was resubmitted
    assert any(k.endswith(".manifest.json") for _, k in oss.objects)
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err, caplog.text]
    outputs += [v.decode("utf-8", "replace") for v in oss.objects.values()]
    assert code == 4
    blob = "\n".join(outputs)
    assert SECRET not in blob and TOKEN not in blob


def test_an_answer_lost_after_imm_made_the_task_makes_no_second_task(cloud_env, capsys, tmp_path):
    """CreateMediaConvertTask made the task but answered 500; ListTasks failed too, so the upload is
    redelivered: the redelivery finds the task by its tags and adopts it. One task, one manifest."""
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags=TAGS)
    imm.fail_next("error_after", *["error"] * 8)  # the create's answer, then every ListTasks attempt
    assert cli.main(["invoke", "upload", str(EVENTS / "oss-put-tagged.json")]) == 4  # retryable: FC redelivers
    capsys.readouterr()
    imm.clear_faults()
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    (task_id,) = imm.tasks
    assert code == 0 and report["submitted"][0]["task_id"] == task_id and report["submitted"][0]["how"] == "found"
    assert [r["action"] for r in imm.requests].count("CreateMediaConvertTask") == 1
    listed = [r for r in imm.requests if r["action"] == "ListTasks"][-1]["params"]
    assert listed["TagSelector"] == f"autoanim-claim={imm.tasks[task_id]['Tags']['autoanim-claim']}"
    assert invoke(capsys, "oss-put-tagged.json")[1]["duplicates"]  # and later deliveries do nothing

    oss.put_object("test-bucket", "animated/video-demo/Winemaking.webp", b"RIFF webp")
    event = tmp_path / "result.json"
    task = SimpleNamespace(user_data=imm.tasks[task_id]["UserData"])
    event.write_bytes(result_event("mns-imm-succeeded.json", task, task_id))
    assert cli.main(["invoke", "result", str(event)]) == 0
    manifests = [k for _, k in oss.objects if k.endswith(".manifest.json")]
    assert manifests == ["animated/video-demo/Winemaking.webp.manifest.json"]
    manifest = json.loads(oss.objects[("test-bucket", manifests[0])])
    assert manifest["status"] == "Succeeded" and manifest["task_ids"] == [task_id]
    assert len(imm.tasks) == 1


def test_a_bare_task_notification_is_recorded(cloud_env, capsys, tmp_path):
    """IMM's older notification docs show the task JSON itself as the message, with no envelope."""
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags=TAGS)
    invoke(capsys, "oss-put-tagged.json")
    (task_id,) = imm.tasks
    oss.put_object("test-bucket", "animated/video-demo/Winemaking.webp", b"RIFF webp")
    bare = {"ProjectName": "test-project", "TaskId": task_id, "TaskType": "MediaConvert", "Status": "Succeeded",
            "UserData": imm.tasks[task_id]["UserData"]}
    event = tmp_path / "bare.json"
    event.write_text(json.dumps({"TopicOwner": "1", "TopicName": "test-mns-topic", "Message": json.dumps(bare)}))
    assert cli.main(["invoke", "result", str(event)]) == 0
    manifest = json.loads(oss.objects[("test-bucket", "animated/video-demo/Winemaking.webp.manifest.json")])
    assert manifest["status"] == "Succeeded" and manifest["task_id"] == task_id


def test_invoke_speaks_to_people_by_default(cloud_env, capsys, tmp_path):
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags=TAGS)
    assert cli.main(["invoke", "upload", str(EVENTS / "oss-put-tagged.json")]) == 0
    out = capsys.readouterr().out
    (task_id,) = imm.tasks
    assert f"submitted oss://test-bucket/animated/video-demo/Winemaking.webp (25 billed frames; task {task_id})" in out
    assert "1 submitted (25 billed frames), 0 already submitted, 0 skipped, 0 rejected" in out
    event = tmp_path / "result.json"
    oss.put_object("test-bucket", "animated/video-demo/Winemaking.webp", b"RIFF webp")
    event.write_bytes(result_event("mns-imm-succeeded.json", SimpleNamespace(user_data=imm.tasks[task_id]["UserData"]),
                                   task_id))
    assert cli.main(["invoke", "result", str(event)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recorded Succeeded for oss://test-bucket/animated/video-demo/Winemaking.webp, 9 bytes")


def test_an_auto_start_makes_one_probe_then_one_animation_from_its_pick(cloud_env, capsys, tmp_path):
    """anim-start=auto through the real SDKs: a Sprites probe first; its result picks the StartTime."""
    from tests.functional.simulation import MOVING_TILES, probe_sheet

    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags={"anim-start": "auto", "anim-duration": "3"})
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    (probe_id,) = imm.tasks
    probe = imm.tasks[probe_id]["Request"]
    (sprite,) = probe["Targets"][0]["Image"]["Sprites"]
    assert code == 0 and report["submitted"] and probe["Tags"]["autoanim-attempt"] == "probe"
    assert not probe["Targets"][0]["Image"].get("Animations")
    invoke(capsys, "oss-put-tagged.json")  # a second delivery: still one probe
    assert len(imm.tasks) == 1

    # IMM writes the sheet and announces the probe's result.
    sheet_key = sprite["URI"].split("/", 3)[3]
    oss.put_object("test-bucket", sheet_key, probe_sheet(SimpleNamespace(
        scale_width=sprite["ScaleWidth"], scale_height=sprite["ScaleHeight"], number=sprite["Number"],
        tile_width=sprite["TileWidth"], margin=sprite["Margin"], pad=sprite["Pad"])), content_type="image/jpeg")
    event = tmp_path / "probe.json"
    event.write_bytes(result_event("mns-imm-succeeded.json", SimpleNamespace(user_data=probe["UserData"]), probe_id))
    for _ in range(2):  # the probe's result delivered twice: one animation
        assert cli.main(["invoke", "result", str(event)]) == 0
    capsys.readouterr()
    (animation_id,) = [t for t in imm.tasks if t != probe_id]
    animation = imm.tasks[animation_id]["Request"]
    start = animation["Sources"][0]["StartTime"]
    assert MOVING_TILES.start * sprite["Interval"] <= start < MOVING_TILES.stop * sprite["Interval"]
    assert animation["Sources"][0]["Duration"] == 3 and animation["Tags"]["autoanim-attempt"] == "0"

    oss.put_object("test-bucket", "animated/video-demo/Winemaking.webp", b"RIFF webp")
    event.write_bytes(result_event("mns-imm-succeeded.json", SimpleNamespace(user_data=animation["UserData"]),
                                   animation_id))
    assert cli.main(["invoke", "result", str(event)]) == 0
    manifest = json.loads(oss.objects[("test-bucket", "animated/video-demo/Winemaking.webp.manifest.json")])
    assert manifest["status"] == "Succeeded" and manifest["task_ids"] == [probe_id, animation_id]
    assert [a["step"] for a in manifest["attempts"]] == ["probe", "animation"]
    assert manifest["rule"]["auto"]["start"] == start and manifest["attempts"][0]["unit"].startswith("one sprite")
    assert len(imm.tasks) == 2


def test_an_email_gif_over_its_cap_is_resubmitted_once_smaller(cloud_env, capsys, tmp_path):
    """anim-target=email through the real SDKs: the first output (a HEAD through OSS) is over the 1 MB
    cap, so one smaller task follows under the same claim; the manifest has both and their billed frames."""
    imm, oss = cloud_env
    oss.put_object("test-bucket", KEY, b"mov bytes", tags={"anim-target": "email"})
    code, report, _ = invoke(capsys, "oss-put-tagged.json")
    (first_id,) = imm.tasks
    first = imm.tasks[first_id]["Request"]["Targets"][0]["Image"]["Animations"][0]
    assert code == 0 and first["Format"] == "gif" and report["submitted"][0]["billed_frames"] == first["Number"]
    out_key = "animated/video-demo/Winemaking.gif"
    event = tmp_path / "result.json"

    def finish(task_id: str, size: int) -> None:
        oss.put_object("test-bucket", out_key, b"GIF89a" + bytes(size - 6), content_type="image/gif")
        task = SimpleNamespace(user_data=imm.tasks[task_id]["UserData"])
        event.write_bytes(result_event("mns-imm-succeeded.json", task, task_id))
        assert cli.main(["invoke", "result", str(event), "--json"]) == 0

    finish(first_id, 1_400_000)  # IMM's GIF came out 1.4x the cap
    resubmitted = json.loads(capsys.readouterr().out)
    assert resubmitted["event"] == "resubmitted" and resubmitted["code"] == "OverCap"
    (second_id,) = [t for t in imm.tasks if t != first_id]
    second = imm.tasks[second_id]["Request"]["Targets"][0]["Image"]["Animations"][0]
    assert imm.tasks[second_id]["Tags"]["autoanim-attempt"] == "1"
    assert second["Number"] * second["Width"] * second["Height"] < 0.7 * first["Number"] * first["Width"] * first["Height"]
    assert cli.main(["invoke", "result", str(event)]) == 0  # the first result again: nothing more
    assert len(imm.tasks) == 2

    finish(second_id, 900_000)
    capsys.readouterr()
    manifest = json.loads(oss.objects[("test-bucket", out_key + ".manifest.json")])
    assert manifest["status"] == "Succeeded" and manifest["task_ids"] == [first_id, second_id]
    assert [a["billed_frames_estimate"] for a in manifest["attempts"]] == [first["Number"], second["Number"]]
    assert manifest["billed_frames_estimate"] == first["Number"] + second["Number"]
    assert manifest["attempts"][1]["reason"]["code"] == "OverCap"
    assert manifest["cap"] == 1_000_000 and manifest["met"] is True and manifest["given_up"]
    assert len(imm.tasks) == 2
