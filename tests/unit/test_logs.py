"""Structured logs: one JSON object per line with the service and any extra fields."""

from __future__ import annotations

import logging

import orjson

from tradebot.common.logs import ConsoleFormatter, JsonFormatter


def record(**extra) -> logging.LogRecord:
    entry = logging.makeLogRecord(
        {"name": "tradebot.test", "levelname": "WARNING", "msg": "%s done", "args": ("batch",)}
    )
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_service_message_and_extras():
    line = JsonFormatter("storage").format(record(stream="ticks", count=3))
    entry = orjson.loads(line)
    assert entry["service"] == "storage" and entry["level"] == "warning"
    assert entry["message"] == "batch done"
    assert (entry["stream"], entry["count"]) == ("ticks", 3)


def test_console_lines_are_readable():
    line = ConsoleFormatter("strategy").format(record(symbol="AAPL"))
    assert "[strategy] batch done symbol=AAPL" in line
