"""The lifecycle of a landed object in `normalized.uploads`.

Created (a presigned URL was issued) → Queued (a landing sensor saw the object) → Processing →
Completed (with row counts) or Failed (with the reason). An object that arrives without a URL
having been issued gets its row when the sensor sees it; its upload id is derived from the object
key and ETag, so seeing it again (a sensor tick replayed after a crash) finds the same row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest_pipeline.lib.landing import LandingKey, parse_object_key
from ingest_pipeline.lib.landing_cursor import S3Object, batched, etag, run_key
from ingest_pipeline.lib.normalized_tables import UPLOADS
from ingest_pipeline.lib.warehouse import Warehouse

KEY_LAYOUTS = {
    "logs": "logs/<tenant>/<name>",
    "events": "events/<tenant>/<name>",
    "crawl": "crawl/<tenant>/<partner>/<name>",
    "webhooks": "webhooks/<intercom|stripe>/<tenant>/<yyyy-mm-dd>/<event id>.json",
}
IN_LIST_SIZE = 1000  # keys per `IN (...)`: bounded statements for any backlog
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

    @property
    def version(self) -> str:
        """key@ETag, as the landing cursor's run keys name an object version."""
        return f"{self.key}@{self.etag}"

    def as_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class QueueOutcome:
    queued: list[LandedObject] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): Failed at once
    already_done: list[str] = field(default_factory=list)  # same key and bytes, Completed before


def derived_upload_id(version: str) -> str:
    """The upload id of an object version (key@ETag) that arrived without an issued URL."""
    return hashlib.sha1(version.encode()).hexdigest()[:32]


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
        key, version, size = obj["Key"], etag(obj), int(obj.get("Size", 0))
        landing_key = parse_object_key(key)
        upload_id = _upload_id(key, landing_key, run_key(obj), known)
        previous = known.get(upload_id)
        if previous and previous["etag"] == version and previous["status"] == "Completed":
            outcome.already_done.append(key)
            continue
        row = {
            **(previous or {"created_at": now}),
            "upload_id": upload_id,
            "tenant_id": landing_key.tenant if landing_key else None,
            "kind": kind,
            "object_key": key,
            "etag": version,
            "size_bytes": size,
            "queued_at": now,
            "started_at": None,
            "finished_at": None,
            "rows_loaded": None,
            "rows_rejected": None,
        }
        reason = _refusal(kind, landing_key, size, tenants)
        if reason:
            outcome.refused.append((key, reason))
            rows.append({**row, "status": "Failed", "reason": reason, "finished_at": now})
            continue
        assert landing_key is not None  # _refusal checked the layout
        tenant, channel = landing_key.tenant, landing_key.channel
        outcome.queued.append(LandedObject(upload_id, tenant, kind, key, version, size, channel))
        rows.append({**row, "status": "Queued", "reason": None})
    UPLOADS.upsert(warehouse, rows)
    return outcome


def _refusal(kind: str, landing_key: LandingKey | None, size: int, tenants: set[str]) -> str | None:
    if landing_key is None or landing_key.kind != kind:
        return f"key outside the layout {KEY_LAYOUTS[kind]}"
    if kind == "crawl" and not landing_key.channel:
        return f"crawl batches belong under {KEY_LAYOUTS['crawl']}"
    if landing_key.tenant not in tenants:
        return f"unknown tenant {landing_key.tenant!r} (not in the tenants file)"
    if size == 0:
        return "empty object (0 bytes)"
    return None


def _upload_id(
    key: str, landing_key: LandingKey | None, version: str, known: dict[str, dict[str, Any]]
) -> str:
    """The id minted with the presigned URL when the key carries one we issued for this very
    key; otherwise one derived from the key and ETag (a new version is a new upload)."""
    match = _ISSUED_KEY.match(landing_key.rest) if landing_key else None
    if match and known.get(match["upload_id"], {}).get("object_key") == key:
        return match["upload_id"]
    return derived_upload_id(version)


def _known_uploads(warehouse: Warehouse, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    if not keys:
        return {}
    columns = UPLOADS.column_names
    found: dict[str, dict[str, Any]] = {}
    for chunk in batched(keys, IN_LIST_SIZE):
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
    for chunk in batched(upload_ids, IN_LIST_SIZE):
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


# What a run decides; the rest of each row stays as the sensor and the URL left it.
_RESULT_COLUMNS = ["upload_id", "status", "reason", "rows_loaded", "rows_rejected", "finished_at"]


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
    table = UPLOADS.to_arrow(rows, _RESULT_COLUMNS)
    warehouse.upsert(UPLOADS.qualified, table, UPLOADS.key, _RESULT_COLUMNS[1:])
