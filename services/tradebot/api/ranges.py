"""Pure checks of what a caller asks for: time ranges, bar counts and page cursors.

Everything a query needs from the request is settled here first, so the SQL only
ever receives typed parameters. The rules are those the OpenAPI document declares,
so a request the document allows is always answered: any ISO 8601 time is
accepted (times before 1970 or after 2200 mean "unbounded"), a backwards range is
empty, and a range of too many bars is served its newest MAX_BARS.
"""

from __future__ import annotations

import re
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
CURSOR_PATTERN = r"^[0-9]{1,16}:[^\u0000]{1,128}$"
"""A page cursor: microseconds since 1970 and a tick id, the (time, id) position to continue after."""


class RequestProblem(ValueError):
    """A request that cannot be answered as asked; the message says what is accepted.

    `loc` names the offending parameter the way FastAPI's own validation errors do,
    so every 422 has the same documented shape.
    """

    def __init__(self, message: str, loc: tuple[str, ...] = ("query",)) -> None:
        super().__init__(message)
        self.loc = loc


def as_utc(moment: datetime) -> datetime:
    """In UTC (naive means UTC), within [EARLIEST, LATEST]: anything outside means unbounded.

    Converting 0001-01-01T00:00+14:00 or 9999-12-31T23:59-14:00 to UTC leaves the
    range datetime can hold; such a time is clamped like any other extreme one.
    """
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        return EARLIEST if moment.year < EARLIEST.year else LATEST
    return min(max(utc, EARLIEST), LATEST)


def time_range(
    start: datetime | None, end: datetime | None, default_span: timedelta, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end) in UTC with defaults (end = now, start = end - default_span); empty when backwards."""
    end = as_utc(end) if end is not None else now
    start = as_utc(start) if start is not None else max(end - default_span, EARLIEST)
    return start, end


def bar_range(
    start: datetime | None, end: datetime | None, interval: Interval, now: datetime
) -> tuple[datetime, datetime]:
    """A bar range of at most MAX_BARS buckets (the newest, when more were asked for);
    by default the last DEFAULT_BARS of them."""
    width = INTERVALS[interval]
    start, end = time_range(start, end, width * DEFAULT_BARS, now)
    # MAX_BARS - 1 widths: the bucket holding `start` is served whole, which adds at most one.
    return max(start, end - width * (MAX_BARS - 1)), end


def encode_cursor(time: datetime, tick_id: str) -> str:
    """The position after the tick (time, id), for keyset pagination (see CURSOR_PATTERN)."""
    return f"{max(0, (as_utc(time) - EARLIEST) // timedelta(microseconds=1))}:{tick_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise RequestProblem(
            "cursor is not one this API returned; pass `next_cursor` unchanged", ("query", "cursor")
        )
    micros, _, tick_id = cursor.partition(":")
    return EARLIEST + timedelta(microseconds=int(micros)), tick_id
