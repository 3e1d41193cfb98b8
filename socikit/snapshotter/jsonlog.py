"""The daemon's log: one JSON object per line on stderr (`socikit.jsonlog`).

`{"time": "2024-05-01T12:00:00.123Z", "level": "info", "msg": "...", <fields>}`. Fields come from
`log(logger, level, msg, **fields)`. Never pass credentials as fields.
"""

from __future__ import annotations

import logging
from typing import TextIO

from socikit import jsonlog
from socikit.jsonlog import LEVELS, JsonFormatter, log

LOGGER_NAME = "socikit.snapshotter"


def configure(level: str, *, stream: TextIO | None = None) -> logging.Logger:
    """Route the daemon's logger (and grpc's Python logger) to `stream` as JSON lines."""
    return jsonlog.configure(LOGGER_NAME, level, stream=stream, quiet=("grpc",))


__all__ = ["LEVELS", "LOGGER_NAME", "JsonFormatter", "configure", "log"]
