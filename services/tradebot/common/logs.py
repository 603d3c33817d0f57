"""Structured logs: one JSON object per line (LOG_FORMAT=json) or readable console lines."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from tradebot.common.redaction import STANDARD_ATTRS, Redactor, SecretFilter


class JsonFormatter(logging.Formatter):
    def __init__(self, service_id: str) -> None:
        super().__init__()
        self.service_id = service_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service_id,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRS})
        # exc_text: the traceback as SecretFilter left it (redacted).
        exception = record.exc_text or (self.formatException(record.exc_info) if record.exc_info else "")
        if exception:
            entry["exception"] = exception
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def __init__(self, service_id: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s [{service_id}] %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRS}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def configure_logging(
    service_id: str, level: str = "INFO", fmt: str = "console", secrets: Iterable[str | None] = ()
) -> None:
    """Every record (the libraries' too) through one handler, with `secrets` redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_id) if fmt == "json" else ConsoleFormatter(service_id))
    SecretFilter(Redactor(secrets)).install(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx", "kopf.objects"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
