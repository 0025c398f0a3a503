"""The start: auto probe request through the real IMM SDK: every Sprites field reaches the wire as planned.

A one-route loopback server records the query (the shared IMM emulator's claim-protocol behaviour is
not needed to see what the SDK sends).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from autoanim import objects, planner, probe, rules
from autoanim.adapters.imm import ImmMediaService


class Capture(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        type(self).seen.append({"action": self.headers.get("x-acs-action", ""), **query})
        body = json.dumps({"RequestId": "R-1", "TaskId": "MediaConvert-probe-1", "EventId": "E-1"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def capture():
    Capture.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_probe_request_arrives_field_for_field(capture, sts, settings):
    spec = rules.RuleSpec.model_validate({"start": "auto", "duration": 3, "fps": 10})
    (rule,) = rules.resolve([spec], origin="tags", source="tags", settings=settings)
    source = objects.SourceObject(bucket="bkt", key="v/clip.mp4", etag="E")
    planned = probe.plan_probe(source, rule, settings)
    media = ImmMediaService(project="test-project", region="cn-hangzhou", endpoint=capture, credentials=sts)
    assert media.submit(planned.request) == "MediaConvert-probe-1"
    (seen,) = Capture.seen
    assert seen["action"] == "CreateMediaConvertTask"
    wire = planned.request.wire()
    (target,) = json.loads(seen["Targets"])
    assert "Container" not in target and "URI" not in target
    (sprite,) = target["Image"]["Sprites"]
    assert sprite == wire["Targets"][0]["Image"]["Sprites"][0]  # nothing dropped or renamed by the SDK
    assert target["Image"].get("Animations") in ([], None)
    assert json.loads(seen["Sources"])[0]["Duration"] == planned.span
    assert json.loads(seen["Notification"]) == {"MNS": {"TopicName": "test-mns-topic"}}
    assert planner.TaskUserData.parse(seen["UserData"]).attempt == planner.PROBE
