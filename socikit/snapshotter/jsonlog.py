"""The daemon's log: one JSON object per line on stderr.

`{"time": "2024-05-01T12:00:00.123Z", "level": "info", "msg": "...", <fields>}`. Fields come from
`log(logger, level, msg, **fields)`. Never pass credentials as fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
          logging.CRITICAL: "fatal"}

LOGGER_NAME = "socikit.snapshotter"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        moment = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": _NAMES.get(record.levelno, record.levelname.lower()),
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            entry.setdefault("error", f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, *, stream: TextIO | None = None) -> logging.Logger:
    """Route the daemon's logger (and grpc's Python logger) to `stream` as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(LEVELS[level])
    logger.propagate = False
    grpc_logger = logging.getLogger("grpc")
    grpc_logger.handlers[:] = [handler]
    grpc_logger.setLevel(logging.WARNING)
    grpc_logger.propagate = False
    return logger


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
