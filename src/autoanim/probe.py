"""The ``start: auto`` probe as a value: one cheap IMM request (a sprite sheet), then the start it picks.
Pure; the local engine makes the same sheet. Both steps, and why Sprites: docs/engine.md ("start: auto")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from . import activity
from .activity import PARAMS
from .config import Settings
from .convert_request import ConvertRequest, Source, Sprite, TargetImage
from .objects import SourceObject, uri
from .planner import PROBE, claim_request, idempotency_key
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

    @property
    def sheet_uri(self) -> str:
        return uri(self.sheet_bucket, self.sheet_key)

    @property
    def sprite(self) -> Sprite:
        return self.request.sprite


def plan_probe(source: SourceObject, rule: Rule, settings: Settings) -> PlannedProbe:
    """The probe request for an auto rule (``rule.start_auto``): a sheet of the video's first ``span`` s."""
    if not rule.start_auto:
        raise ValueError("plan_probe is for rules whose start is auto")
    interval = activity.sampling_interval(rule.duration or 0.0)
    tiles = PARAMS.columns * PARAMS.rows
    span = round(tiles * interval, 6)
    out_bucket = settings.output_bucket or source.bucket
    idem = idempotency_key(source, rule)
    sheet_key = f"{settings.output_prefix}{PROBES_FOLDER}{idem}.{SHEET_FORMAT}"
    sprite = Sprite(
        Format=SHEET_FORMAT, StartTime=0, Interval=interval, Number=tiles, Mode="interval",
        TileWidth=PARAMS.columns, TileHeight=PARAMS.rows, ScaleWidth=PARAMS.tile_width,
        ScaleHeight=PARAMS.tile_height, ScaleType="stretch", Margin=0, Pad=0,
        URI=uri(out_bucket, sheet_key),
    )
    request = claim_request(source, rule, settings, idem, Source(URI=source.uri, Duration=span),
                            TargetImage(Animations=[], Sprites=[sprite]), attempt=PROBE)
    return PlannedProbe(source=source, rule=rule, request=request, sheet_bucket=out_bucket,
                        sheet_key=sheet_key, interval=interval, tiles=tiles, span=span)


def pick_start(sheet: bytes, probe: PlannedProbe) -> AutoStart:
    """``score_sheet`` of the probe's sheet."""
    return score_sheet(sheet, probe.sprite, probe.rule)


def score_sheet(sheet: bytes, sprite: Sprite, rule: Rule) -> AutoStart:
    """Split the sheet ``sprite`` asked for (as a claim stored it) and score ``rule``'s windows;
    ``ValueError`` when the sheet is too large or unreadable."""
    tiles = activity.split_sheet(sheet, columns=sprite.tile_width, rows=sprite.tile_height,
                                 tile_width=int(sprite.scale_width), tile_height=int(sprite.scale_height),
                                 margin=sprite.margin, pad=sprite.pad)
    if sprite.number > 0:
        tiles = tiles[: sprite.number]
    first = sprite.start_time or 0.0
    times = [round(first + k * sprite.interval, 6) for k in range(len(tiles))]
    choice = activity.choose_window(tiles, times, rule.duration or sprite.interval)
    return AutoStart(start=choice.start, score=choice.score, why=choice.why, tiles=choice.tiles,
                     sheet=sprite.uri)


def with_start(rule: Rule, auto: AutoStart) -> Rule:
    """The rule with its start picked; ``planner.plan`` sends ``auto.start`` as StartTime."""
    return rule.model_copy(update={"auto": auto, "notes": (*rule.notes, f"start auto: {auto.start:g} s ({auto.why})")})
