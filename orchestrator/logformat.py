"""How every motion process writes its log: one line per record on standard error, JSON when that
is not a terminal (or when asked), readable text when it is.

A JSON line has ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``service`` (api, worker, beat,
agent, up, cli), ``msg``, the fields of ``orchestrator.logcontext`` that concern it (``job``,
``volume``, ``vm``, ``host``, ``dest_host``, ``pool``, ``src_pool``), any other ``extra`` the call
passed (``command``, ``code``, ``candidates``, ...), and ``exc`` with the traceback of an
exception. The text form is ``time LEVEL logger: message [job=... volume=...]``.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

from .logcontext import FIELDS, ContextFilter

# Attributes every LogRecord has; anything else on a record came from ``extra`` or a filter.
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}
_MARK = "_motion_handler"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def __init__(self, service: str | None = None):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
               .replace("+00:00", "Z"),
               "level": record.levelname, "logger": record.name}
        if self.service:
            out["service"] = self.service
        out["msg"] = record.getMessage()
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_") and name not in out:
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [job=... volume=...]`` for people at a terminal."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(f"{name}={_short(getattr(record, name))}" for name in FIELDS
                           if getattr(record, name, None) not in (None, ""))
        if not context:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{context}]{newline}{rest}"


def _short(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def wants_json(fmt: str, stream: TextIO) -> bool:
    if fmt in ("json", "text"):
        return fmt == "json"
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def configure(service: str, level: str | int = "INFO", fmt: str = "auto",
              stream: TextIO | None = None) -> logging.Handler:
    """Install motion's handler on the root logger (replacing one installed before) and set the
    level. ``fmt``: ``json``, ``text`` or ``auto`` (JSON unless ``stream`` is a terminal)."""
    stream = stream or sys.stderr
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(service) if wants_json(fmt, stream) else TextFormatter())
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def configured() -> bool:
    """True when motion's handler is installed on the root logger."""
    return any(getattr(h, _MARK, False) for h in logging.getLogger().handlers)


def ensure_configured(service: str, level: str | int = "INFO") -> None:
    """Configure logging only if nobody has (gunicorn workers, ``celery -A workers.app worker``);
    a process whose root logger already has handlers (the CLI, pytest) is left alone."""
    if not logging.getLogger().handlers:
        configure(service, level)
