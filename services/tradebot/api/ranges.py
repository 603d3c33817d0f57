"""Pure checks of what a caller asks for: time ranges, bar counts and page cursors.

Everything a query needs from the request is validated here first, so the SQL
only ever receives typed parameters and the caller gets a 422 that says what
is accepted.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from tradebot.api.models import Interval

INTERVALS: dict[Interval, timedelta] = {
    Interval.M1: timedelta(minutes=1),
    Interval.M5: timedelta(minutes=5),
    Interval.M15: timedelta(minutes=15),
    Interval.H1: timedelta(hours=1),
    Interval.D1: timedelta(days=1),
}
MAX_BARS = 10_000
DEFAULT_BARS = 1_440
MAX_TICKS_PER_PAGE = 10_000
MAX_ROWS = 1_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class RequestProblem(ValueError):
    """A request that cannot be answered as asked; the message says what is accepted.

    `loc` names the offending parameter the way FastAPI's own validation errors do,
    so every 422 has the same documented shape.
    """

    def __init__(self, message: str, loc: tuple[str, ...] = ("query",)) -> None:
        super().__init__(message)
        self.loc = loc


def as_utc(moment: datetime) -> datetime:
    """Naive times are taken as UTC; aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def time_range(
    start: datetime | None, end: datetime | None, default_span: timedelta, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) with defaults (end = now, start = end - default_span); start must precede end."""
    end = as_utc(end) if end is not None else now
    start = as_utc(start) if start is not None else end - default_span
    if not EARLIEST <= start <= LATEST or not EARLIEST <= end <= LATEST:
        raise RequestProblem(
            f"times must lie between {EARLIEST.date()} and {LATEST.date()}", ("query", "start")
        )
    if start >= end:
        raise RequestProblem(
            f"start ({start.isoformat()}) must be before end ({end.isoformat()})", ("query", "start")
        )
    return start, end


def bar_range(
    start: datetime | None, end: datetime | None, interval: Interval, now: datetime
) -> tuple[datetime, datetime]:
    """A bar range holding at most MAX_BARS buckets; defaults to the last DEFAULT_BARS of them."""
    width = INTERVALS[interval]
    start, end = time_range(start, end, width * DEFAULT_BARS, now)
    buckets = (end - start) / width
    if buckets > MAX_BARS:
        raise RequestProblem(
            f"the range covers {buckets:.0f} {interval.value} bars; at most {MAX_BARS} are served per "
            f"request: narrow the range or choose a wider interval ({', '.join(i.value for i in Interval)})",
            ("query", "start"),
        )
    return start, end


def encode_cursor(time: datetime, tick_id: str) -> str:
    """An opaque position after the tick (time, id), for keyset pagination."""
    return base64.urlsafe_b64encode(f"{time.isoformat()}|{tick_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        moment, tick_id = raw.split("|", 1)
        if "\x00" in tick_id or len(tick_id) > 128:
            raise ValueError("not a tick id")
        return as_utc(datetime.fromisoformat(moment)), tick_id
    except (binascii.Error, UnicodeError, ValueError):
        raise RequestProblem(
            "cursor is not one this API returned; pass `next_cursor` unchanged", ("query", "cursor")
        ) from None
