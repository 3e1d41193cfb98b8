"""A daemon's log: one JSON object per line on stderr (the snapshotter and the podman store).

`{"time": "2024-05-01T12:00:00.123Z", "level": "info", "msg": "...", <fields>}`. Fields come from
`log(logger, level, msg, **fields)` (or `extra={"fields": {...}}`, as `socikit.lazy` logs). Never
pass credentials as fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
          "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error",
          logging.CRITICAL: "fatal"}


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


def configure(name: str, level: str, *, stream: TextIO | None = None,
              quiet: Iterable[str] = ()) -> logging.Logger:
    """Route logger `name` (and its children) to `stream` as JSON lines at `level`; the loggers
    named in `quiet` (libraries) too, at warning."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(LEVELS[level])
    logger.propagate = False
    for other in quiet:
        library = logging.getLogger(other)
        library.handlers[:] = [handler]
        library.setLevel(logging.WARNING)
        library.propagate = False
    return logger


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


__all__ = ["LEVELS", "JsonFormatter", "configure", "log"]
