"""Structured logs of the long-running processes: one line per event, text or JSON.

Each line carries the time (UTC, ISO 8601), the level, the logger, and where a line is
about one event the bureau, the case number and the event id (passed as ``extra=`` by
the code that logs: :func:`event_fields`).  The message is masked as every other
output is (:func:`schemas.privacy.mask_text`): an applicant's name or ID number that
found its way into an error text is not written to a log file.

``XIEZHU_LOG_JSON=1`` (``xiezhu --log-json …``) makes every line a JSON object;
``XIEZHU_LOG_LEVEL`` sets the level (INFO by default).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from schemas.privacy import mask_text

ENV_LOG_JSON = "XIEZHU_LOG_JSON"
ENV_LOG_LEVEL = "XIEZHU_LOG_LEVEL"
#: The ``extra=`` keys a line about one event carries, in the order they are printed.
FIELDS = ("bureau", "number", "case", "event_id", "event_type")


def event_fields(bureau: str = "", *, number: str = "", case: str = "", event_id: str = "",
                 event_type: str = "") -> dict[str, str]:
    """The ``extra=`` of a log line about one event."""
    return {"bureau": bureau, "number": number, "case": case, "event_id": event_id, "event_type": event_type}


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name}
        for key in FIELDS:
            value = getattr(record, key, "")
            if value:
                line[key] = value
        line["message"] = mask_text(record.getMessage())
        if record.exc_info:
            line["error"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger [bureau number case event] message``."""

    def format(self, record: logging.LogRecord) -> str:
        where = " ".join(f"{key}={value}" for key in FIELDS if (value := getattr(record, key, "")))
        text = f"{_time(record)} {record.levelname:<7} {record.name}"
        if where:
            text += f" [{where}]"
        text += " " + mask_text(record.getMessage())
        if record.exc_info:
            text += "\n" + mask_text(self.formatException(record.exc_info))
        return text


def configure(*, as_json: bool | None = None, level: str | None = None) -> logging.Handler:
    """Send the process's logs to stderr, one line each (replacing a handler this function set before)."""
    if as_json is None:
        as_json = os.environ.get(ENV_LOG_JSON, "").lower() in ("1", "true", "yes")
    level = (level or os.environ.get(ENV_LOG_LEVEL) or "INFO").upper()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_xiezhu", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler._xiezhu = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries' chatter stays at warnings.
    for noisy in ("nats", "faststream", "uvicorn.access", "httpx", "eventsourcing"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
