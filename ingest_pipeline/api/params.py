"""The read API's query parameters: their types, as FastAPI validates them and as the OpenAPI
document describes them.

Rules they keep:
- A time bound (`since`, `updated_since`, `from`, `to`) is a date (`2026-01-10`: that day's
  00:00 UTC) or an ISO 8601 timestamp WITH an offset (`2026-01-10T08:30:00Z`,
  `...+02:00`); a timestamp without one is refused rather than guessed. It becomes an aware
  UTC datetime within years 1..9999 (what both warehouses store and Python reads back).
  `since`, `updated_since` and `from` are inclusive, `to` exclusive.
- A `date` is a day, `YYYY-MM-DD`, nothing else.
- Text filters are at most 256 characters without NUL (PostgreSQL refuses NUL in text: such a
  value could only fail the query).
- Parsing is strict and by our own code, not pydantic's lax coercions (which would take
  `1700000000` as a time): every refusal is a 400 naming the parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TEXT = 256

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Date, 'T' (or a space), hh:mm[:ss[.fraction]], then Z or ±hh:mm: the offset is required.
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})"
)


def parse_day(value: object) -> date:
    """`YYYY-MM-DD` as a date; ValueError otherwise."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("must be a date, YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a valid date") from None


def parse_time_bound(value: object) -> datetime:
    """A date (its 00:00 UTC) or a timestamp with an offset, as an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp needs an offset (Z or +hh:mm)")
        return _utc(value)
    if not isinstance(value, str):
        raise ValueError("must be a date or an ISO 8601 timestamp with an offset")
    if _DATE.fullmatch(value):
        return datetime.combine(parse_day(value), time(), UTC)
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError(
            "must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with an offset"
            " (2026-01-10T08:30:00Z)"
        )
    try:
        parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("not a valid timestamp") from None
    return _utc(parsed)


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: must fall within years 1 to 9999 in UTC") from None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def first_day_from(bound: datetime) -> date:
    """The first day whose start is at or after `bound` (a day is in [from, to) when its
    start is)."""
    day = bound.date()
    return day if bound == day_start(day) else day + timedelta(days=1)


_TIME_SCHEMA = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]
}

TimeBound = Annotated[
    datetime,
    BeforeValidator(parse_time_bound),
    WithJsonSchema(_TIME_SCHEMA),
]
Day = Annotated[
    date, BeforeValidator(parse_day), WithJsonSchema({"type": "string", "format": "date"})
]
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=r"^[^\x00]*$")]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str, Field(max_length=2048)]
Bucket = Literal["minute", "hour", "day"]
Window = Literal["daily", "weekly", "monthly", "all_time"]
Entity = Literal["item", "author"]
Rating = Annotated[int, Field(ge=1, le=5)]
