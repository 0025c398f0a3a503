"""IMM ``CreateMediaConvertTask`` request as a value, with IMM's wire names.

The planner builds these; the IMM adapter sends them through the SDK, the local
engine executes them, ``autoanim plan`` prints them. Only the parts this
product uses are modelled; ``wire()`` gives the JSON-ready dict IMM expects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_USER_DATA = 2048  # bytes IMM keeps and returns in the notification

Format = Literal["gif", "webp"]
ScaleType = Literal["stretch", "crop", "fill", "fit"]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Source(_Wire):
    uri: str = Field(alias="URI")
    start_time: float | None = Field(None, alias="StartTime")
    duration: float | None = Field(None, alias="Duration")


class Animation(_Wire):
    format: Format = Field(alias="Format")
    frame_rate: float = Field(alias="FrameRate")
    interval: float = Field(alias="Interval")
    number: int = Field(alias="Number")
    width: float | None = Field(None, alias="Width")
    height: float | None = Field(None, alias="Height")
    scale_type: ScaleType = Field("fit", alias="ScaleType")
    start_time: float | None = Field(None, alias="StartTime")
    uri: str = Field(alias="URI")


class Sprite(_Wire):
    """``TargetImage.Sprites[]``: one sheet of small tiles (the ``start: auto`` probe).

    ``TileWidth``/``TileHeight`` are tiles per row / column (IMM's names);
    ``ScaleWidth``/``ScaleHeight`` the tile size in pixels (or a ratio < 1).
    """

    format: Literal["jpg", "png"] = Field(alias="Format")
    start_time: float | None = Field(None, alias="StartTime")
    interval: float = Field(alias="Interval")
    number: int = Field(alias="Number")
    mode: Literal["interval"] = Field("interval", alias="Mode")
    tile_width: int = Field(alias="TileWidth")
    tile_height: int = Field(alias="TileHeight")
    scale_width: float = Field(alias="ScaleWidth")
    scale_height: float = Field(alias="ScaleHeight")
    scale_type: ScaleType = Field("stretch", alias="ScaleType")
    margin: int = Field(0, alias="Margin")
    pad: int = Field(0, alias="Pad")
    uri: str = Field(alias="URI")


class TargetImage(_Wire):
    animations: list[Animation] = Field(alias="Animations")
    sprites: list[Sprite] | None = Field(None, alias="Sprites")


class Target(_Wire):
    # Container and URI stay empty for animation-only targets (IMM gotcha).
    image: TargetImage = Field(alias="Image")


class MNS(_Wire):
    topic_name: str = Field(alias="TopicName")


class Notification(_Wire):
    mns: MNS = Field(alias="MNS")


class ConvertRequest(_Wire):
    project_name: str = Field(alias="ProjectName")
    sources: list[Source] = Field(alias="Sources")
    targets: list[Target] = Field(alias="Targets")
    notification: Notification | None = Field(None, alias="Notification")
    user_data: str | None = Field(None, alias="UserData", max_length=MAX_USER_DATA)
    # Custom tags IMM keeps with the task and ListTasks filters on (TagSelector): the claim's
    # idempotency key and the attempt, so a task whose create answer was lost can be found.
    tags: dict[str, str] | None = Field(None, alias="Tags")

    def wire(self) -> dict[str, Any]:
        """The request as IMM's JSON field names, unset fields left out.

        Whole numbers go out as JSON integers: IMM reads an integer ``Width`` as
        pixels and a decimal as a ratio, so ``480.0`` must be sent as ``480``.
        """
        return _integral(self.model_dump(by_alias=True, exclude_none=True, mode="json"))

    @property
    def animation(self) -> Animation:
        """The one animation of a planned request (the planner makes one per request)."""
        return self.targets[0].image.animations[0]

    @property
    def sprite(self) -> Sprite:
        """The one sprite sheet of a ``start: auto`` probe request."""
        return self.targets[0].image.sprites[0]

    @property
    def source(self) -> Source:
        return self.sources[0]


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value
