"""Loopback IMM and OSS fakes for the wire tests: the real SDKs talk to them over 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoanim.adapters.credentials import Credentials
from autoanim.convert_request import ConvertRequest
from tests.support.emulators.imm_server import ImmEmulator
from tests.support.emulators.oss_server import OssEmulator

# Recognisable values: a test fails if any of them shows up where it must not.
SECRET = "sEcReT-DO-NOT-LEAK-9f2c"
TOKEN = "sTsToKeN-DO-NOT-LEAK-77ab"
STS = Credentials("LTAI5tWireTestKeyId", SECRET, TOKEN)


@pytest.fixture
def sts() -> Credentials:
    return STS


@pytest.fixture
def imm_emulator():
    with ImmEmulator(seed=1) as emulator:
        yield emulator


@pytest.fixture
def oss_emulator():
    with OssEmulator() as emulator:
        yield emulator


@pytest.fixture
def convert_request() -> ConvertRequest:
    """The issue's example: seconds 5-30 of Winemaking.mov as a half-size WebP at 15 fps."""
    return ConvertRequest.model_validate(
        {
            "ProjectName": "test-project",
            "Sources": [{"URI": "oss://bkt/video-demo/Winemaking.mov", "StartTime": 5, "Duration": 25}],
            "Targets": [
                {
                    "Image": {
                        "Animations": [
                            {
                                "Format": "webp",
                                "FrameRate": 15,
                                "Interval": 1,
                                "Number": 25,
                                "Width": 0.5,
                                "Height": 0.5,
                                "ScaleType": "fit",
                                "URI": "oss://bkt/animated/video-demo/Winemaking.webp",
                            }
                        ]
                    }
                }
            ],
            "Notification": {"MNS": {"TopicName": "test-mns-topic"}},
            "UserData": '{"bucket":"bkt","key":"video-demo/Winemaking.mov","rule":"tags"}',
        }
    )


def run_with_chain_credentials(script: str, endpoint: str, home: Path) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter whose only credentials are FC's ALIBABA_CLOUD_* variables.

    A fresh process because alibabacloud-credentials reads those variables at import time.
    """
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIfromTheChain",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "chain-secret",
        "ALIBABA_CLOUD_SECURITY_TOKEN": "chain-token",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    return subprocess.run([sys.executable, "-c", script, endpoint], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
