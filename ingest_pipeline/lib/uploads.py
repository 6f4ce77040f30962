"""The lifecycle of a landed object in `normalized.uploads`.

Created (a presigned URL was issued) → Queued (a landing sensor saw the object) → Processing →
Completed (with row counts) or Failed (with the reason). An object that arrives without a URL
having been issued gets its row when the sensor sees it; its upload id is derived from the object
key and ETag, so seeing it again (a sensor tick replayed after a crash) finds the same row.

Only an object that is itself bad is Failed at once. One that could not be read for a transient
reason (connection, timeout, 5xx, throttling; botocore has already retried it with backoff) goes
back to Queued with `retry_after`, and one whose run failed or died (it stays Processing under a
run that ended) goes back to Queued at once: the landing sensor takes both again. `attempts`
counts the runs that took an upload; after MAX_ATTEMPTS it is Failed with the last reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
MAX_ATTEMPTS = 5  # runs that may take one upload before it is Failed for good
FIRST_RETRY_SECONDS = 30  # doubled per attempt: 30 s, 1, 2, 4 min
# A retry launched but never started (its run canceled while queued, a tick lost after launching)
# is launched again after this long.
STALE_RETRY_SECONDS = 3600
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
            "attempts": 0,
            "run_id": None,
            "retry_after": None,
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


def mark_processing(
    warehouse: Warehouse, upload_ids: Sequence[str], run_id: str | None = None
) -> dict[str, int]:
    """A run took these uploads: Processing, with the time it started and the run; one more
    attempt each. Returns the attempts so far per upload id."""
    now = datetime.now(UTC)
    attempts: dict[str, int] = {}
    for chunk in batched(upload_ids, IN_LIST_SIZE):
        in_list = f"upload_id IN ({', '.join(['%s'] * len(chunk))})"
        warehouse.execute(
            f"UPDATE {UPLOADS.qualified} SET status = 'Processing', started_at = %s, "
            "finished_at = NULL, reason = NULL, retry_after = NULL, run_id = %s, "
            f"attempts = COALESCE(attempts, 0) + 1 WHERE {in_list}",
            [now, run_id, *chunk],
        )
        rows = warehouse.fetch_all(
            f"SELECT upload_id, attempts FROM {UPLOADS.qualified} WHERE {in_list}", chunk
        )
        attempts.update(dict(rows))
    return attempts


def retry_or_fail(
    upload_id: str, reason: str, attempts: int, now: datetime, counts: tuple[int, int] = (0, 0)
) -> UploadResult:
    """The result for an upload that met a transient fault: Queued again after a backoff, or
    Failed once it has had MAX_ATTEMPTS runs."""
    loaded, rejected = counts
    if attempts >= MAX_ATTEMPTS:
        reason = f"gave up after {attempts} attempts: {reason}"
        return UploadResult(upload_id, "Failed", loaded, rejected, reason, now)
    delay = timedelta(seconds=FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0))
    reason = f"attempt {attempts} of {MAX_ATTEMPTS} failed, retried: {reason}"
    return UploadResult(upload_id, "Queued", loaded, rejected, reason, now, now + delay)


@dataclass(frozen=True)
class UploadResult:
    upload_id: str
    status: str  # Completed, Failed, or Queued again (a transient fault)
    rows_loaded: int
    rows_rejected: int
    reason: str | None
    finished_at: datetime
    retry_after: datetime | None = None


# What a run decides; the rest of each row stays as the sensor and the URL left it.
_RESULT_COLUMNS = [
    "upload_id",
    "status",
    "reason",
    "rows_loaded",
    "rows_rejected",
    "finished_at",
    "retry_after",
]


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
            "retry_after": r.retry_after,
        }
        for r in results
    ]
    table = UPLOADS.to_arrow(rows, _RESULT_COLUMNS)
    warehouse.upsert(UPLOADS.qualified, table, UPLOADS.key, _RESULT_COLUMNS[1:])


@dataclass
class RetryOutcome:
    retry: list[LandedObject] = field(default_factory=list)  # launch these again
    given_up: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): now Failed


_DEAD_RUN_STATUSES = {"FAILURE", "CANCELED", "SUCCESS"}  # ended, yet left its uploads Processing


def uploads_to_retry(
    warehouse: Warehouse,
    kind: str,
    run_statuses: Callable[[list[str]], dict[str, str]],
    now: datetime | None = None,
) -> RetryOutcome:
    """The uploads of `kind` to launch again: Queued after a transient fault and past their
    `retry_after`, Processing under a run that ended (`run_statuses` maps run ids to Dagster run
    status names; a run it does not know is gone too), and retries launched but not started for
    an hour. They are marked launched (Queued, no `retry_after`); a dead run's uploads that used
    up their attempts are Failed instead."""
    now = now or datetime.now(UTC)
    stale = now - timedelta(seconds=STALE_RETRY_SECONDS)
    columns = ["upload_id", "tenant_id", "object_key", "etag", "size_bytes", "status"]
    rows = warehouse.fetch_all(
        f"SELECT {', '.join(columns)}, attempts, run_id FROM {UPLOADS.qualified} "
        "WHERE kind = %s AND etag IS NOT NULL AND ("
        "  status = 'Processing' AND run_id IS NOT NULL"
        "  OR status = 'Queued' AND attempts > 0 AND retry_after <= %s"
        "  OR status = 'Queued' AND attempts > 0 AND retry_after IS NULL AND queued_at < %s"
        ") ORDER BY queued_at, object_key",
        (kind, now, stale),
    )
    processing_runs = sorted({r[7] for r in rows if r[5] == "Processing"})
    statuses = run_statuses(processing_runs) if processing_runs else {}
    outcome, results = RetryOutcome(), []
    for upload_id, tenant, key, version, size, status, attempts, run_id in rows:
        landed = LandedObject.from_key(upload_id, tenant, kind, key, version, size or 0)
        if status == "Queued":  # after a transient fault: the reason stays until the retry runs
            outcome.retry.append(landed)
            continue
        run_status = statuses.get(run_id, "gone")
        if run_status not in _DEAD_RUN_STATUSES | {"gone"}:
            continue  # its run is still going
        why = f"run {run_id} ended {run_status} while processing it"
        result = retry_or_fail(upload_id, why, attempts or 0, now)
        if result.status == "Failed":
            outcome.given_up.append((key, result.reason or why))
        else:  # launched now, not after a backoff: the run, not the object, was at fault
            result = dataclasses.replace(result, retry_after=None)
            outcome.retry.append(landed)
        results.append(result)
    if results:
        record_results(warehouse, results)
    _mark_retry_launched(warehouse, [o.upload_id for o in outcome.retry], now)
    return outcome


def _mark_retry_launched(warehouse: Warehouse, upload_ids: Sequence[str], now: datetime) -> None:
    """Queued with no `retry_after`: not taken again by the next tick, only by the run (or, if
    it never starts, after STALE_RETRY_SECONDS)."""
    for chunk in batched(upload_ids, IN_LIST_SIZE):
        warehouse.execute(
            f"UPDATE {UPLOADS.qualified} SET status = 'Queued', retry_after = NULL, "
            f"queued_at = %s WHERE upload_id IN ({', '.join(['%s'] * len(chunk))})",
            [now, *chunk],
        )
