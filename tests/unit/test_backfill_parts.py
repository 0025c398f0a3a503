"""The backfill's pure parts: sidecars known from the listing, task ids, the hand-overs' limit and rate, the checkpoint."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoanim import backfill, objects
from autoanim.adapters.fc import TASK_ID
from autoanim.errors import ConfigError
from autoanim.ports import ObjectInfo

# Names whose keys sort between a video and its sidecar ("a.mp4 copy", "a.mp4-2", "a.mp4.x").
_names = st.sampled_from(["a", "a.mp4", "a.mp4 copy", "a.mp4-2", "a.mp4.x", "b", "日本", "a/b", "a-c"])
_suffix = st.sampled_from(["", ".mp4", ".anim.json", ".mp4.anim.json", ".txt", ".gif"])


def info(key: str) -> ObjectInfo:
    return ObjectInfo(bucket="b", key=key, etag="E", size=1)


@given(st.sets(st.builds(lambda n, s: f"v/{n}{s}", _names, _suffix), max_size=30))
def test_every_video_learns_whether_its_sidecar_was_listed_and_the_order_is_kept(keys):
    listing = sorted(keys)
    out = list(backfill.with_sidecars(info(k) for k in listing))
    assert [o.info.key for o in out] == listing
    for item in out:
        if backfill.objects.is_video_key(item.info.key):
            assert item.sidecar is ((item.info.key + ".anim.json") in keys)
        else:
            assert item.sidecar is None


def test_a_video_is_held_only_until_the_listing_passes_its_sidecar():
    seen = []

    def listing():
        for key in ["v/a.mp4", "v/a.mp4 copy.mp4", "v/a.mp4.anim.json", "v/b.mp4"]:
            seen.append(key)
            yield info(key)

    stream = backfill.with_sidecars(listing())
    first = next(stream)
    assert first.info.key == "v/a.mp4" and first.sidecar is True
    assert seen[-1] == "v/a.mp4.anim.json"  # decided as soon as the sidecar's key was listed


def test_task_ids_change_with_the_planned_clips():
    from autoanim import planner, rules
    from autoanim.config import Settings

    settings = Settings()
    video = ObjectInfo(bucket="b", key="v/a.mp4", etag="E1", size=1)
    source = objects.SourceObject(bucket="b", key="v/a.mp4", etag="E1")

    def clips(**fields):
        return planner.plan(source, rules.resolve([rules.RuleSpec(**fields)], origin="tags", source="t",
                                                  settings=settings, base_profile="preview"), settings)

    gif, webp = clips(format="gif"), clips(format="webp")
    assert backfill.task_id(video, gif) == backfill.task_id(video, list(reversed(gif)))
    assert backfill.task_id(video, gif) != backfill.task_id(video, webp) != backfill.task_id(video)


def test_task_ids_name_bucket_key_and_etag_within_fcs_rules():
    one = backfill.task_id(ObjectInfo(bucket="b", key="v/日本 語+%.mp4", etag="E1", size=1))
    assert TASK_ID.match(one) and len(one) <= 128 and one.startswith("autoanim-")
    assert one == backfill.task_id(ObjectInfo(bucket="b", key="v/日本 語+%.mp4", etag="E1", size=99))
    others = {backfill.task_id(ObjectInfo(bucket=b, key=k, etag=e, size=1))
              for b, k, e in [("c", "v/日本 語+%.mp4", "E1"), ("b", "v/x.mp4", "E1"), ("b", "v/日本 語+%.mp4", "E2")]}
    assert one not in others and len(others) == 3


def test_hand_overs_are_spaced_evenly():
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 6))
        now[0] += seconds

    gate = backfill.HandOvers(None, 4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        assert gate.take()
    assert slept == [0.25, 0.25, 0.25, 0.25]
    now[0] += 10  # idle time is not saved up into a burst
    gate.take()
    gate.take()
    assert slept[-1] == 0.25 and len(slept) == 5
    backfill.HandOvers(None, 0, sleep=slept.append).take()  # 0: unbounded, never sleeps
    assert len(slept) == 5


def test_the_limit_stops_hand_overs():
    gate = backfill.HandOvers(2, 0)
    assert [gate.take() for _ in range(3)] == [True, True, False] and gate.spent
    assert backfill.HandOvers(None, 0).take() and not backfill.HandOvers(None, 0).spent


def test_a_checkpoint_resumes_only_the_same_run(tmp_path):
    mine = backfill.Checkpoint(tmp_path / "c.json", source="oss://b/v/", via="fc", function="f")
    with pytest.raises(ConfigError):
        mine.load()
    mine.save("v/k 1.mp4", complete=False)
    assert mine.load() == "v/k 1.mp4"
    other = backfill.Checkpoint(tmp_path / "c.json", source="oss://b/v/", via="direct", function="f")
    with pytest.raises(ConfigError):
        other.load()
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temp file left


def test_the_default_function_is_the_one_s_yaml_deploys():
    from pathlib import Path

    from autoanim import cli

    yaml = pytest.importorskip("yaml", reason="PyYAML reads s.yaml (dev extra)")
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "s.yaml").read_text(encoding="utf-8"))
    args = cli._parser().parse_args(["backfill", "oss://b/videos/"])
    assert args.function == spec["resources"]["on_upload"]["props"]["functionName"]
    assert spec["resources"]["on_upload"]["props"]["handler"] == "index.on_upload"


@pytest.mark.parametrize("flags", [["--workers", "0"], ["--rate", "-1"], ["--limit", "0"], ["--resume"]])
def test_bad_flags_are_refused_before_any_request(flags, capsys):
    from autoanim import cli

    assert cli.main(["backfill", "oss://b/videos/", "--progress", "off", *flags]) == 2
    assert capsys.readouterr().err.startswith("autoanim: ")


@pytest.mark.parametrize("source", ["oss://", "oss:///videos/"])
def test_a_source_without_a_bucket_is_refused_in_one_line(source, capsys):
    from autoanim import cli

    assert cli.main(["backfill", source, "--progress", "off"]) == 2
    assert capsys.readouterr().err.startswith(f"autoanim: {source}: no bucket")
