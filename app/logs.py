"""Logging with context bound to every record: the request id, and whatever ``log_context``
binds (``task_id``, ``provider``, ``stage``). Never secrets.

Two formats (``[server] log_format``): ``text``, one readable line with the context and any
``extra={...}`` fields as ``key=value`` at the end; ``json``, one JSON object per line for log
collectors. Context lives in contextvars, so an asyncio task started inside a bound block (the
pipeline's task for a new request) carries it too.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_context_var: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "request_id", "taskName"}
)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` to every record logged inside the block (and tasks started in it)."""
    current = _context_var.get() or {}
    token = _context_var.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context_var.reset(token)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context and the record's ``extra`` fields."""
    fields = dict(_context_var.get() or {})
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        for key, value in (_context_var.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        extras = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return f"{head} {extras}{sep}{tail}"


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (" " in text or not text) else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        body.update(record_fields(record))
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def make_handler(log_format: str = "text") -> logging.Handler:
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def setup_logging(level: str = "info", log_format: str = "text") -> None:
    root = logging.getLogger("app")
    root.handlers[:] = [make_handler(log_format)]
    root.setLevel(level.upper())
    root.propagate = False
