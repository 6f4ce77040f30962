"""Keyset pagination cursors of the read API's lists.

A list is ordered newest first by its row time (`domain.entities.read_time`: a null is the
earliest time), ties by the rest of the table's key, all descending. A cursor is the position
after the last row of a page: that row's time and key values, as base64url JSON (opaque to
callers, and no secret: it names only a row the caller has just been shown). The next page is
the rows strictly after that position, so:
- a page is the same whatever was inserted before it (newer rows sort before the cursor);
- walking every page returns every row that existed throughout the walk exactly once;
- a cursor is tied to its route (one of `items` used on `events` is refused), not to the
  filters: with other filters it is still a well-defined position.

A cursor that does not decode to exactly that shape is a `CursorError` (the API's 400).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

VERSION = 1


class CursorError(ValueError):
    """The cursor is not one this route handed out."""


def encode_cursor(route: str, row_time: datetime, key: Sequence[Any]) -> str:
    """The position after a row: its time (aware) and its key values."""
    document = [VERSION, route, row_time.astimezone(UTC).isoformat(), *key]
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, route: str, key_size: int) -> tuple[datetime, list[str]]:
    """(row time, key values) of a cursor of `route` whose key has `key_size` columns."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CursorError("not a cursor this API handed out") from None
    if (
        not isinstance(document, list)
        or len(document) != 3 + key_size
        or document[0] != VERSION
        or not isinstance(document[2], str)
        or not all(isinstance(value, str) and "\x00" not in value for value in document[3:])
    ):
        raise CursorError("not a cursor this API handed out")
    if document[1] != route:
        raise CursorError(f"a cursor of another list ({str(document[1])[:40]!r}), not of {route}")
    try:
        row_time = datetime.fromisoformat(document[2])
        if row_time.tzinfo is None:
            raise ValueError("naive")
        row_time = row_time.astimezone(UTC)
    except (ValueError, OverflowError):
        raise CursorError("not a cursor this API handed out") from None
    return row_time, document[3:]
