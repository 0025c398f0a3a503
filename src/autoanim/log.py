"""One JSON line per thing that happened, on the ``autoanim`` logger (stderr; in FC, SLS). Only the
fields passed are logged: no request, context or credential is ever dumped."""

from __future__ import annotations

import json
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # (annotations only: the command line logs before it imports pydantic)
    from pydantic import BaseModel

_logger = logging.getLogger("autoanim")


def setup(level: int | None = None) -> None:
    """One stderr handler printing the line as is; a later call without a level keeps the first one's."""
    if not _logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        _logger.addHandler(handler)
        _logger.propagate = False
        _logger.setLevel(logging.INFO if level is None else level)
    elif level is not None:
        _logger.setLevel(level)


def event(kind: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``{"event": kind, **fields}`` as one JSON line (fields that are None left out)."""
    record = {"event": kind, **{k: v for k, v in fields.items() if v is not None}}
    _logger.log(level, json.dumps(record, ensure_ascii=False, default=str))


def report(kind: str, model: BaseModel, level: int = logging.INFO) -> None:
    """Log one report model (``reports``) as the line of ``kind``."""
    event(kind, level, **model.model_dump(exclude={"event"}))
