"""The local and the IMM backends run the same handler code and send the same requests."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import index
from autoanim import bootstrap, service
from autoanim.config import Settings
from autoanim.fc_events import oss_event
from tests.support.emulators.imm_server import ImmEmulator
from tests.support.emulators.oss_server import OssEmulator

pytestmark = pytest.mark.media

TAGS = {"anim-format": "gif", "anim-start": "1", "anim-duration": "2", "anim-fps": "5", "anim-width": "64"}


def test_same_event_same_request_on_both_backends(tmp_path, monkeypatch):
    from autoanim.engine import sample_video

    clip = sample_video(tmp_path / "clip.mp4", seconds=4, width=160, height=90).read_bytes()
    calls: list[str] = []
    real_handle = service.handle_upload

    def spy(app, batch):  # records which backend went through the one service function
        calls.append(type(app.media).__name__)
        return real_handle(app, batch)

    monkeypatch.setattr(service, "handle_upload", spy)
    common = {"IMM_PROJECT": "test-project", "IMM_NOTIFY_TOPIC": "test-mns-topic", "IMM_REGION": "cn-hangzhou"}
    event = oss_event("test-bucket", "videos/clip.mp4", size=len(clip), etag="")

    with ImmEmulator() as imm, OssEmulator() as oss:
        oss.put_object("test-bucket", "videos/clip.mp4", clip, tags=TAGS)
        fc_context = SimpleNamespace(credentials=SimpleNamespace(  # FC python3.10's context.credentials
            access_key_id="LTAI5tSame", access_key_secret="secret", security_token="token"))
        cloud = bootstrap.build(Settings.from_env({**common, "AUTOANIM_BACKEND": "imm", "IMM_ENDPOINT": imm.endpoint,
                                                   "OSS_ENDPOINT": oss.endpoint}), fc_context)
        index.on_upload(event, fc_context, app=cloud)
        (sent_to_imm,) = imm.created

    local = bootstrap.build(Settings.from_env({**common, "AUTOANIM_BACKEND": "local",
                                               "AUTOANIM_LOCAL_ROOT": str(tmp_path / "buckets")}))
    local.store.put_file("test-bucket", "videos/clip.mp4", tmp_path / "clip.mp4", tags=TAGS)
    submitted = []
    real_submit = local.media.submit
    monkeypatch.setattr(local.media, "submit", lambda request: submitted.append(request) or real_submit(request))
    index.on_upload(event, bootstrap.local_context(), app=local)
    local.media.close()

    assert calls == ["ImmMediaService", "LocalMediaService"]
    (request,) = submitted
    assert json.loads(json.dumps(request.wire())) == without_empty_lists(sent_to_imm)
    manifest = json.loads(local.store.read("test-bucket", "animated/videos/clip.gif.manifest.json", 1 << 20))
    assert manifest["status"] == "Succeeded" and manifest["request"] == request.wire()


def without_empty_lists(value):
    """The SDK adds empty Subtitles/Snapshots/Sprites/TargetGroups lists; they say nothing."""
    if isinstance(value, dict):
        return {k: without_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [without_empty_lists(v) for v in value]
    return value
