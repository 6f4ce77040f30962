"""Which landed objects are new since the last sensor tick: a durable cursor over S3 listings.

S3's LastModified has one-second resolution, so a cursor on time alone would skip objects
written in the same second as the newest one already seen. The cursor therefore keeps that
second *and* the run keys (object key + ETag) already handed out within it; the next tick lists
from that second again (inclusive) and drops what it has seen. A re-uploaded object gets a new
ETag, so it is new again; the same bytes under the same key are not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")
S3Object = Mapping[str, Any]  # one `Contents` entry of list_objects_v2


def etag(obj: S3Object) -> str:
    """The object's ETag without S3's quotes: its content version."""
    return str(obj.get("ETag", "")).strip('"')


def run_key(obj: S3Object) -> str:
    """Dagster run key of an object: its key and content version."""
    return f"{obj['Key']}@{etag(obj)}"


@dataclass
class LandingCursor:
    last_modified: datetime | None = None
    seen_in_last_second: set[str] = field(default_factory=set)
    # When the sensor last looked for uploads to take again (Unix time).
    retries_checked_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_modified": self.last_modified.isoformat() if self.last_modified else None,
                "seen": sorted(self.seen_in_last_second),
                "retries_checked_at": self.retries_checked_at,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> LandingCursor:
        if not text:
            return cls()
        data = json.loads(text)
        stamp = data.get("last_modified")
        return cls(
            datetime.fromisoformat(stamp) if stamp else None,
            set(data.get("seen", [])),
            data.get("retries_checked_at"),
        )

    @property
    def list_since(self) -> datetime | None:
        """For a non-inclusive listing filter: just before the cursor's second, to re-read it."""
        return self.last_modified - timedelta(microseconds=1) if self.last_modified else None


def take_new(
    objects: Iterable[S3Object], cursor: LandingCursor, limit: int
) -> tuple[list[S3Object], LandingCursor]:
    """The objects not yet handed out (oldest first, at most `limit`) and the advanced cursor.

    With more than `limit` waiting, the cursor stops at the last one taken, so the next tick
    goes on from there: nothing is skipped and nothing is taken twice.
    """
    fresh = sorted(
        (o for o in objects if _is_new(o, cursor)),
        key=lambda o: (o["LastModified"], o["Key"]),
    )[:limit]
    if not fresh:
        return [], cursor
    newest = fresh[-1]["LastModified"]
    seen = {run_key(o) for o in fresh if o["LastModified"] == newest}
    if newest == cursor.last_modified:
        seen |= cursor.seen_in_last_second
    return fresh, LandingCursor(newest, seen, cursor.retries_checked_at)


def _is_new(obj: S3Object, cursor: LandingCursor) -> bool:
    if cursor.last_modified is None or obj["LastModified"] > cursor.last_modified:
        return True
    return obj["LastModified"] == cursor.last_modified and (
        run_key(obj) not in cursor.seen_in_last_second
    )


def batched(objects: Sequence[T], size: int) -> list[list[T]]:
    """Objects split into runs of at most `size`, so a backlog becomes a few runs, not thousands."""
    return [list(objects[i : i + size]) for i in range(0, len(objects), size)]
