"""The ``start: auto`` probe as a value: one cheap IMM request, then the start it picks.

Step 1 (on_upload): ``plan_probe`` gives a CreateMediaConvertTask whose only
target is one ``Image.Sprites`` sheet of small tiles sampled at a fixed
interval from the start of the video, written under the output prefix's
private folder (``<OUTPUT_PREFIX>.autoanim/probes/``), with UserData naming
the claim and the probe's attempt (``planner.PROBE``). Step 2 (on_task_result, the probe's
result): read the sheet (at most ``Params.max_sheet_bytes``), then
``pick_start`` splits it and scores the windows (``autoanim.activity``), and
``with_start`` gives the rule its StartTime; ``planner.plan`` then makes the
animation request under the same claim (the pick is not part of the rule's
identity, so the idempotency key and claim are the same for both steps).

Pure: no I/O here. The local engine makes the same sheet from the same
``Sprite`` (``autoanim.engine.probe``), so both backends score the same tiles.
Why Sprites and not Snapshots: docs/engine.md ("start: auto").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .config import Settings
from .convert_request import MNS, ConvertRequest, Notification, Source, Sprite, Target, TargetImage
from .objects import SourceObject, uri
from .planner import CLAIMS_FOLDER, PROBE, TaskUserData, idempotency_key, task_tags
from .rules import AutoStart, Rule

PROBES_FOLDER = ".autoanim/probes/"
SHEET_FORMAT = "jpg"


class PlannedProbe(BaseModel):
    """The probe request of one auto rule plus what we know of it before it runs."""

    model_config = ConfigDict(frozen=True)

    source: SourceObject
    rule: Rule
    request: ConvertRequest
    sheet_bucket: str
    sheet_key: str
    interval: float  # seconds between tiles; tile k shows the video at k * interval
    tiles: int  # at most (IMM's Number); a shorter video gives fewer
    span: float  # seconds scanned from the start: tiles * interval
    idempotency_key: str  # the same as the animation's
    claim_key: str  # the same as the animation's
    max_sheet_bytes: int

    @property
    def sheet_uri(self) -> str:
        return uri(self.sheet_bucket, self.sheet_key)

    @property
    def sprite(self) -> Sprite:
        return self.request.sprite


def plan_probe(source: SourceObject, rule: Rule, settings: Settings, params=None) -> PlannedProbe:
    """The probe request for an auto rule (``rule.start_auto``)."""
    from . import activity

    params = params or activity.PARAMS
    if not rule.start_auto:
        raise ValueError("plan_probe is for rules whose start is auto")
    window = rule.duration or 0.0
    interval = activity.sampling_interval(window, params)
    tiles = params.columns * params.rows
    span = round(tiles * interval, 6)
    out_bucket = settings.output_bucket or source.bucket
    idem = idempotency_key(source, rule)
    claim = f"{settings.output_prefix}{CLAIMS_FOLDER}{idem}.json"
    sheet_key = f"{settings.output_prefix}{PROBES_FOLDER}{idem}.{SHEET_FORMAT}"
    sprite = Sprite(
        Format=SHEET_FORMAT, StartTime=0, Interval=interval, Number=tiles, Mode="interval",
        TileWidth=params.columns, TileHeight=params.rows, ScaleWidth=params.tile_width,
        ScaleHeight=params.tile_height, ScaleType="stretch", Margin=0, Pad=0,
        URI=uri(out_bucket, sheet_key),
    )
    notification = (
        Notification(MNS=MNS(TopicName=settings.imm_notify_topic)) if settings.imm_notify_topic else None
    )
    request = ConvertRequest(
        ProjectName=settings.imm_project or "local",
        Sources=[Source(URI=source.uri, Duration=span)],
        Targets=[Target(Image=TargetImage(Animations=[], Sprites=[sprite]))],
        Notification=notification,
        UserData=TaskUserData(claim=uri(out_bucket, claim), attempt=PROBE, src=source.uri, etag=source.etag,
                              rule=rule.name or rule.origin).dump(),
        Tags=task_tags(idem, PROBE),
    )
    return PlannedProbe(source=source, rule=rule, request=request, sheet_bucket=out_bucket, sheet_key=sheet_key,
                        interval=interval, tiles=tiles, span=span, idempotency_key=idem, claim_key=claim,
                        max_sheet_bytes=params.max_sheet_bytes)


def is_probe_user_data(user_data: str) -> bool:
    """True for the UserData of a probe task (the result function's switch between the two steps)."""
    data = TaskUserData.parse(user_data)
    return data is not None and data.attempt == PROBE


def pick_start(sheet: bytes, probe: PlannedProbe, params=None) -> AutoStart:
    """Split the probe's sheet, score the windows, and say where the animation starts.

    Raises ``ValueError`` when the sheet is too large or unreadable (a permanent failure
    of the probe: the caller records it).
    """
    return score_sheet(sheet, probe.sprite, probe.rule.duration or probe.interval, uri=probe.sheet_uri,
                       max_bytes=probe.max_sheet_bytes, params=params)


def score_sheet(sheet: bytes, sprite: Sprite, window: float, *, uri: str = "", max_bytes: int | None = None,
                params=None) -> AutoStart:
    """``pick_start`` from the probe request's own ``Sprite`` (e.g. as a claim stored it) and the window."""
    from . import activity

    params = params or activity.PARAMS
    tiles = activity.split_sheet(sheet, columns=sprite.tile_width, rows=sprite.tile_height,
                                 tile_width=int(sprite.scale_width), tile_height=int(sprite.scale_height),
                                 margin=sprite.margin, pad=sprite.pad,
                                 max_bytes=params.max_sheet_bytes if max_bytes is None else max_bytes)
    if sprite.number > 0:
        tiles = tiles[: sprite.number]
    first = sprite.start_time or 0.0
    times = [round(first + k * sprite.interval, 6) for k in range(len(tiles))]
    choice = activity.choose_window(tiles, times, window, params=params)
    return AutoStart(start=choice.start, score=choice.score, why=choice.why, tiles=choice.tiles, sheet=uri)


def with_start(rule: Rule, auto: AutoStart) -> Rule:
    """The rule with its start picked; ``planner.plan`` sends ``auto.start`` as StartTime."""
    return rule.model_copy(update={"auto": auto, "notes": (*rule.notes, f"start auto: {auto.start:g} s ({auto.why})")})
