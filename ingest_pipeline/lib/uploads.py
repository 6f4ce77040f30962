"""The lifecycle of a landed object in `normalized.uploads`.

Created (a presigned URL was issued) → Queued (a landing sensor saw the object) → Processing →
Completed (with row counts) or Failed (with the reason). An object that arrives without a URL
having been issued gets its row when the sensor sees it; its upload id is derived from the object
key and ETag, so seeing it again (a sensor tick replayed after a crash) finds the same row.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ingest_pipeline.lib.landing import parse_object_key
from ingest_pipeline.lib.landing_cursor import S3Object
from ingest_pipeline.lib.normalized_tables import UPLOADS
from ingest_pipeline.lib.warehouse import Warehouse

KEY_LAYOUTS = {
    "logs": "logs/<tenant>/<name>",
    "events": "events/<tenant>/<name>",
    "crawl": "crawl/<tenant>/<partner>/<name>",
    "webhooks": "webhooks/<intercom|stripe>/<tenant>/<yyyy-mm-dd>/<event id>.json",
}
# Keys minted by `upload-url`: <kind>/<tenant>/<yyyy-mm-dd>/<upload id>-<name>
_ISSUED_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}/(?P<upload_id>[0-9a-f]{32})-")


@dataclass(frozen=True)
class LandedObject:
    """One object handed to a processing run (what travels in the run config)."""

    upload_id: str
    tenant_id: str
    kind: str
    key: str
    etag: str
    size_bytes: int
    channel: str | None = None  # the crawl partner, or the webhook provider

    @classmethod
    def from_key(
        cls, upload_id: str, tenant_id: str, kind: str, key: str, etag: str, size_bytes: int
    ) -> LandedObject:
        landing_key = parse_object_key(key)
        channel = landing_key.channel if landing_key else None
        return cls(upload_id, tenant_id, kind, key, etag, size_bytes, channel)

    def as_config(self) -> dict[str, Any]:
        return {
            "upload_id": self.upload_id,
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "key": self.key,
            "etag": self.etag,
            "size_bytes": self.size_bytes,
            "channel": self.channel,
        }


@dataclass
class QueueOutcome:
    queued: list[LandedObject] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): Failed at once
    already_done: list[str] = field(default_factory=list)  # same key and bytes, Completed before


def etag_of(obj: S3Object) -> str:
    return str(obj.get("ETag", "")).strip('"')


def derived_upload_id(key: str, etag: str) -> str:
    return hashlib.sha1(f"{key}@{etag}".encode()).hexdigest()[:32]


def queue_objects(
    warehouse: Warehouse,
    kind: str,
    objects: Sequence[S3Object],
    tenants: set[str],
    now: datetime | None = None,
) -> QueueOutcome:
    """Record what a sensor saw: Queued for objects to process, Failed (with the reason) for
    objects that cannot be (empty, outside the key layout, unknown tenant). Objects whose same
    version already completed are left alone, so a duplicate upload is not processed twice."""
    now = now or datetime.now(UTC)
    known = _known_uploads(warehouse, [o["Key"] for o in objects])
    outcome, rows = QueueOutcome(), []
    for obj in objects:
        key, etag, size = obj["Key"], etag_of(obj), int(obj.get("Size", 0))
        landing_key = parse_object_key(key)
        upload_id = _upload_id(key, etag, known)
        previous = known.get(upload_id)
        if previous and previous["etag"] == etag and previous["status"] == "Completed":
            outcome.already_done.append(key)
            continue
        row = {
            **(previous or {"created_at": now}),
            "upload_id": upload_id,
            "tenant_id": landing_key.tenant if landing_key else None,
            "kind": kind,
            "object_key": key,
            "etag": etag,
            "size_bytes": size,
            "queued_at": now,
            "started_at": None,
            "finished_at": None,
            "rows_loaded": None,
            "rows_rejected": None,
        }
        reason = _refusal(kind, key, size, tenants)
        if reason:
            outcome.refused.append((key, reason))
            rows.append({**row, "status": "Failed", "reason": reason, "finished_at": now})
            continue
        assert landing_key is not None  # _refusal checked the layout
        outcome.queued.append(
            LandedObject.from_key(upload_id, landing_key.tenant, kind, key, etag, size)
        )
        rows.append({**row, "status": "Queued", "reason": None})
    UPLOADS.upsert(warehouse, rows)
    return outcome


def _refusal(kind: str, key: str, size: int, tenants: set[str]) -> str | None:
    landing_key = parse_object_key(key)
    if landing_key is None or landing_key.kind != kind:
        return f"key outside the layout {KEY_LAYOUTS[kind]}"
    if kind == "crawl" and not landing_key.channel:
        return f"crawl batches belong under {KEY_LAYOUTS['crawl']}"
    if landing_key.tenant not in tenants:
        return f"unknown tenant {landing_key.tenant!r} (not in the tenants file)"
    if size == 0:
        return "empty object (0 bytes)"
    return None


def _upload_id(key: str, etag: str, known: dict[str, dict[str, Any]]) -> str:
    """The id minted with the presigned URL when the key carries one we issued for this very
    key; otherwise one derived from the key and ETag (a new version is a new upload)."""
    landing_key = parse_object_key(key)
    match = _ISSUED_KEY.match(landing_key.rest) if landing_key else None
    if match and known.get(match["upload_id"], {}).get("object_key") == key:
        return match["upload_id"]
    return derived_upload_id(key, etag)


def _known_uploads(warehouse: Warehouse, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not keys:
        return {}
    columns = UPLOADS.column_names
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 1000):  # bounded IN lists
        chunk = keys[start : start + 1000]
        placeholders = ", ".join(["%s"] * len(chunk))
        for row in warehouse.fetch_all(
            f"SELECT {', '.join(columns)} FROM {UPLOADS.qualified} "
            f"WHERE object_key IN ({placeholders})",
            chunk,
        ):
            record = dict(zip(columns, row, strict=True))
            found[record["upload_id"]] = record
    return found


def mark_processing(warehouse: Warehouse, upload_ids: Sequence[str]) -> None:
    """A run took these uploads: Processing, with the time it started."""
    now = datetime.now(UTC)
    for start in range(0, len(upload_ids), 1000):
        chunk = list(upload_ids[start : start + 1000])
        warehouse.execute(
            f"UPDATE {UPLOADS.qualified} SET status = 'Processing', started_at = %s, "
            f"finished_at = NULL, reason = NULL WHERE upload_id IN ({', '.join(['%s'] * len(chunk))})",
            [now, *chunk],
        )


@dataclass(frozen=True)
class UploadResult:
    upload_id: str
    status: str  # Completed or Failed
    rows_loaded: int
    rows_rejected: int
    reason: str | None
    finished_at: datetime


_RESULT_SCHEMA = pa.schema(
    [
        ("upload_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("rows_loaded", pa.int64()),
        ("rows_rejected", pa.int64()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
    ]
)


def record_results(warehouse: Warehouse, results: Sequence[UploadResult]) -> None:
    """Completed or Failed, with counts and reason, for every upload of a run in one statement
    (only these columns change: the rest of each row stays as the sensor and URL left it)."""
    rows = [
        {
            "upload_id": r.upload_id,
            "status": r.status,
            "reason": r.reason[:2000] if r.reason else None,
            "rows_loaded": r.rows_loaded,
            "rows_rejected": r.rows_rejected,
            "finished_at": r.finished_at,
        }
        for r in results
    ]
    table = pa.Table.from_pylist(rows, schema=_RESULT_SCHEMA)
    warehouse.upsert(UPLOADS.qualified, table, UPLOADS.key, _RESULT_SCHEMA.names[1:])
