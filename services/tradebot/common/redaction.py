"""Secrets out of logs and heartbeats: every configured secret value, and every long part of one.

A log line may hold a secret whole (a URL with `apiKey=`), or only a part of it: the
websockets library shortens a long frame to its start and end at DEBUG, which cut
ALPACA_SECRET in two. So any run of RUN or more characters of a secret is replaced too, and
the same run as websockets prints a binary frame (bytes in hex: Alpaca speaks msgpack).
Values shorter than SHORTEST are not secrets worth the name and are left alone (they would
blank common words).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
RUN = 8
SHORTEST = 4
STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class Redactor:
    """Pure: text with every secret (or a run of RUN of its characters) replaced by MASK."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        pieces: set[str] = set()
        for secret in {s for s in secrets if s and len(s) >= SHORTEST}:
            runs = [secret[i : i + RUN] for i in range(max(1, len(secret) - RUN + 1))]
            pieces.update(runs)
            pieces.update(" ".join(f"{byte:02x}" for byte in run.encode()) for run in runs)
        alternatives = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
        # A lookahead finds every occurrence, overlapping ones too; their union is what goes.
        self._pattern = re.compile(f"(?=({alternatives}))") if pieces else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        spans: list[list[int]] = []
        for match in self._pattern.finditer(text):
            start, end = match.start(), match.start() + len(match.group(1))
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            return text
        parts, last = [], 0
        for start, end in spans:
            parts += [text[last:start], MASK]
            last = end
        parts.append(text[last:])
        return "".join(parts)


class SecretFilter(logging.Filter):
    """The one log filter: it rewrites a record's message, extras and traceback with the
    secrets redacted. `install` runs it on every record as it is made, whichever handler
    takes it then (some libraries bring their own, polygon-api-client's prints to stdout),
    and on the service's handler, for the extras a logger adds after making the record."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor.redact
        record.msg, record.args = redact(record.getMessage()), None
        for name, value in list(record.__dict__.items()):
            if name not in STANDARD_ATTRS and not isinstance(value, int | float | bool | None):
                text = value if isinstance(value, str) else str(value)
                if (cleaned := redact(text)) != text:
                    record.__dict__[name] = cleaned
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

    def install(self, handler: logging.Handler) -> None:
        handler.addFilter(self)
        make = _MAKE_RECORD

        def made(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            self.filter(record)
            return record

        logging.setLogRecordFactory(made)


_MAKE_RECORD = logging.getLogRecordFactory()  # the standard one, wrapped once however often installed
