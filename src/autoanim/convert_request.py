"""IMM's ``CreateMediaConvertTask`` request as a value, with IMM's wire names; only the parts autoanim uses.

The planner builds it; the IMM adapter sends it, the local engine runs it, ``autoanim plan`` prints it.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_USER_DATA = 2048  # bytes IMM keeps and returns in the notification

Format = Literal["gif", "webp"]
ScaleType = Literal["stretch", "crop", "fill", "fit"]


def _wire_name(field: str) -> str:
    """IMM's name for a field: ``start_time`` is ``StartTime``, ``uri`` is ``URI``."""
    return {"uri": "URI", "mns": "MNS"}.get(field) or field.title().replace("_", "")


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, alias_generator=_wire_name)


class Source(_Wire):
    uri: str
    start_time: float | None = None
    duration: float | None = None


class Animation(_Wire):
    format: Format
    frame_rate: float
    interval: float
    number: int
    width: float | None = None
    height: float | None = None
    scale_type: ScaleType = "fit"
    start_time: float | None = None
    uri: str


class Sprite(_Wire):
    """``TargetImage.Sprites[]``, a sheet of tiles (the ``start: auto`` probe): ``TileWidth``/``TileHeight``
    are tiles per row / column (IMM's names), ``ScaleWidth``/``ScaleHeight`` a tile's pixels (or a ratio < 1)."""

    format: Literal["jpg", "png"]
    start_time: float | None = None
    interval: float
    number: int
    mode: Literal["interval"] = "interval"
    tile_width: int
    tile_height: int
    scale_width: float
    scale_height: float
    scale_type: ScaleType = "stretch"
    margin: int = 0
    pad: int = 0
    uri: str


class TargetImage(_Wire):
    animations: list[Animation]
    sprites: list[Sprite] | None = None


class Target(_Wire):
    image: TargetImage  # Container and URI stay empty for animation-only targets (IMM gotcha)


class MNS(_Wire):
    topic_name: str


class Notification(_Wire):
    mns: MNS


class ConvertRequest(_Wire):
    project_name: str
    sources: list[Source]
    targets: list[Target]
    notification: Notification | None = None
    user_data: str | None = Field(None, max_length=MAX_USER_DATA)
    # Custom tags IMM keeps with the task and ListTasks filters on (TagSelector): the claim's
    # idempotency key and the attempt, so a task whose create answer was lost can be found.
    tags: dict[str, str] | None = None

    def wire(self) -> dict[str, Any]:
        """The request as IMM's JSON, unset fields left out; whole numbers as JSON integers, because IMM
        reads an integer ``Width`` as pixels and a decimal as a ratio (``480.0`` must go as ``480``)."""
        return json.loads(self.model_dump_json(by_alias=True, exclude_none=True), parse_float=_number)

    @property
    def animation(self) -> Animation:
        """The one animation of a planned request (or the one sprite sheet of a probe's, below)."""
        return self.targets[0].image.animations[0]

    @property
    def sprite(self) -> Sprite:
        return self.targets[0].image.sprites[0]

    @property
    def source(self) -> Source:
        return self.sources[0]


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value
