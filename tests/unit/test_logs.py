"""Structured logs: one JSON object per line with the service and any extra fields."""

from __future__ import annotations

import logging
import sys

import orjson

from tradebot.common.logs import ConsoleFormatter, JsonFormatter
from tradebot.common.redaction import Redactor, SecretFilter


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


SECRET = "canary-Zq8vN3xK7pL2mW9rT4yB"


def redacted(*secrets: str) -> SecretFilter:
    return SecretFilter(Redactor(secrets))


def test_a_secret_whole_or_in_part_is_redacted_everywhere_in_a_record():
    entry = logging.makeLogRecord({"msg": "> TEXT %r [%d bytes]", "args": (f"{{'params': '{SECRET}'}}", 40)})
    entry.__dict__["url"] = f"wss://x/?apiKey={SECRET}"
    entry.__dict__["frame"] = {"key": SECRET}
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        entry.exc_info = sys.exc_info()
    assert redacted(SECRET).filter(entry)
    for line in (JsonFormatter("feed").format(entry), ConsoleFormatter("feed").format(entry)):
        assert "Zq8vN3xK" not in line and "***" in line and "40 bytes" in line, line
    # websockets shortens a long frame to its start and end: both parts of the secret go.
    cut = f'\'{{"params":"{SECRET[:14]}...{SECRET[-10:]}"}}\''
    assert Redactor([SECRET]).redact(cut) == '\'{"params":"***...***"}\''


def test_only_secrets_are_redacted():
    redactor = Redactor([SECRET, "", None, "pw"])  # empty, unset and too short: nothing to hide
    assert redactor.redact("password pw anary-Z") == "password pw anary-Z"  # a run of 7
    assert not Redactor([None, ""])


def test_a_binary_frame_shows_no_part_of_a_secret_in_hex():
    tail = " ".join(f"{byte:02x}" for byte in SECRET[-8:].encode())
    assert Redactor([SECRET]).redact(f"> BINARY 81 a6 61 63 ... {tail} [90 bytes]") == (
        "> BINARY 81 a6 61 63 ... *** [90 bytes]"
    )
