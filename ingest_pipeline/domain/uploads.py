"""The lifecycle of a landed object in `normalized.uploads`.

Created (a presigned URL was issued) → Queued (a landing sensor saw the object) → Processing →
Completed (with row counts) or Failed (with the reason). An object that arrives without a URL
having been issued gets its row when the sensor sees it; its upload id is derived from the object
key and ETag, so seeing it again (a sensor tick replayed after a crash) finds the same row.

Only an object that is itself bad is Failed at once. One that could not be read for a transient
reason (connection, timeout, 5xx, throttling; botocore has already retried it with backoff) goes
back to Queued with `retry_after`, and one whose run failed or died (it stays Processing under a
run that ended, or Queued under the run key of a run that ended before taking it) goes back to
Queued at once: the landing sensor takes both again. `attempts` counts the runs launched for an
upload (`run_key` the last one's key, `run_id` the last run that took it); after MAX_ATTEMPTS
it is Failed with the last reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ingest_pipeline.domain.entities import UPLOADS
from ingest_pipeline.domain.landing import LandingKey, key_layout, parse_object_key
from ingest_pipeline.domain.landing_cursor import S3Object, batched, etag, run_key
from ingest_pipeline.lib.warehouse import Warehouse

IN_LIST_SIZE = 1000  # keys per `IN (...)`: bounded statements for any backlog
MAX_ATTEMPTS = 5  # runs that may take one upload before it is Failed for good
FIRST_RETRY_SECONDS = 30  # doubled per attempt: 30 s, 1, 2, 4 min

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
            "run_key": None,
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
    warehouse.upsert(UPLOADS, rows)
    return outcome


def _refusal(kind: str, landing_key: LandingKey | None, size: int, tenants: set[str]) -> str | None:
    layout = key_layout(kind)
    if landing_key is None or landing_key.kind != kind:
        return f"key outside the layout {layout.pattern}"
    if layout.partner_folder and not landing_key.channel:
        return f"{kind} batches belong under {layout.pattern}"
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
    """A run took these uploads: Processing, with the time it started and the run. Returns
    the attempts (launches) so far per upload id."""
    now = datetime.now(UTC)
    attempts: dict[str, int] = {}
    for chunk in batched(upload_ids, IN_LIST_SIZE):
        in_list = f"upload_id IN ({', '.join(['%s'] * len(chunk))})"
        warehouse.execute(
            f"UPDATE {UPLOADS.qualified} SET status = 'Processing', started_at = %s, "
            "finished_at = NULL, reason = NULL, retry_after = NULL, run_id = %s, "
            # A run launched by hand (the UI, the CLI) was not counted at launch.
            f"attempts = GREATEST(COALESCE(attempts, 0), 1) WHERE {in_list}",
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
    # Only these columns are written, so only they are compared.
    warehouse.upsert(UPLOADS, UPLOADS.to_arrow(rows, _RESULT_COLUMNS), compare=_RESULT_COLUMNS[1:])


@dataclass
class RetryOutcome:
    retry: list[LandedObject] = field(default_factory=list)  # launch these again
    given_up: list[tuple[str, str]] = field(default_factory=list)  # (key, reason): now Failed


@dataclass(frozen=True)
class RunStates:
    """What Dagster knows of the runs uploads wait on: status names by run id, and by run key
    (the key a sensor launched a batch under)."""

    by_run_id: dict[str, str]
    by_run_key: dict[str, str]


_ENDED = {"FAILURE", "CANCELED", "SUCCESS"}  # an upload still waiting on such a run was let down
LAUNCH_SETTLE_SECONDS = 30  # a batch's run is looked for this long after its tick
LAUNCH_GRACE_SECONDS = 600  # no run under a batch's key after this long: its tick was lost


class _Waiting(NamedTuple):
    upload_id: str
    tenant_id: str
    object_key: str
    etag: str
    size_bytes: int | None
    status: str
    attempts: int | None
    run_id: str | None
    run_key: str | None
    queued_at: datetime | None
    retry_after: datetime | None


def uploads_to_retry(
    warehouse: Warehouse,
    kind: str,
    run_states: Callable[[list[str], list[str]], RunStates],
    now: datetime | None = None,
) -> RetryOutcome:
    """The uploads of `kind` to launch again:
    - Queued after a transient fault, once past their `retry_after`;
    - Processing under a run that ended (or that Dagster no longer has): it died or failed;
    - Queued under a run key whose run ended without taking them (it died before its step
      started), or that no run carries LAUNCH_GRACE_SECONDS after the tick (the tick was lost).
    `run_states(run_ids, run_keys)` says what Dagster knows of those runs. An upload launched
    MAX_ATTEMPTS times already is Failed with the reason instead."""
    now = now or datetime.now(UTC)
    rows = [
        _Waiting(*row)
        for row in warehouse.fetch_all(
            f"SELECT {', '.join(_Waiting._fields)} FROM {UPLOADS.qualified} "
            "WHERE kind = %s AND etag IS NOT NULL AND ("
            "  status = 'Processing' AND run_id IS NOT NULL"
            "  OR status = 'Queued' AND retry_after <= %s"
            "  OR status = 'Queued' AND retry_after IS NULL AND run_key IS NOT NULL"
            "     AND queued_at < %s"
            ") ORDER BY queued_at, object_key",
            (kind, now, now - timedelta(seconds=LAUNCH_SETTLE_SECONDS)),
        )
    ]
    run_ids = sorted({r.run_id for r in rows if r.status == "Processing" and r.run_id})
    run_keys = sorted({r.run_key for r in rows if r.status == "Queued" and r.run_key})
    states = run_states(run_ids, run_keys) if rows else RunStates({}, {})
    outcome, results = RetryOutcome(), []
    for row in rows:
        # A transient fault's reason stays until the retry runs; the others say what let them down.
        why = None if row.retry_after is not None else _let_down(row, states, now)
        if row.retry_after is None and why is None:
            continue  # its run may still take it
        if (row.attempts or 0) >= MAX_ATTEMPTS:
            reason = f"gave up after {row.attempts} attempts: {why or 'the store kept failing'}"
            results.append(UploadResult(row.upload_id, "Failed", 0, 0, reason, now))
            outcome.given_up.append((row.object_key, reason))
            continue
        outcome.retry.append(
            LandedObject.from_key(
                row.upload_id, row.tenant_id, kind, row.object_key, row.etag, row.size_bytes or 0
            )
        )
        if why:
            results.append(UploadResult(row.upload_id, "Queued", 0, 0, f"{why}; taken again", now))
    if results:
        record_results(warehouse, results)
    return outcome


def _let_down(row: _Waiting, states: RunStates, now: datetime) -> str | None:
    """Why an upload waiting on a run must be taken again, or None while that run may still
    take it."""
    if row.status == "Processing":
        state = states.by_run_id.get(row.run_id or "", "gone")
        if state in _ENDED or state == "gone":
            return f"run {row.run_id} ended {state} while processing it"
        return None
    state = states.by_run_key.get(row.run_key or "")
    if state in _ENDED:
        return f"its run ({row.run_key}) ended {state} before taking it"
    grace = now - timedelta(seconds=LAUNCH_GRACE_SECONDS)
    if state is None and row.queued_at and row.queued_at < grace:
        return f"no run was launched for it ({row.run_key})"
    return None


def record_launches(
    warehouse: Warehouse, batches: dict[str, Sequence[str]], now: datetime | None = None
) -> None:
    """The run key each upload was launched under, and one more attempt: Queued with no
    `retry_after`, so it is not taken again while that run may still take it."""
    now = now or datetime.now(UTC)
    for launch_key, upload_ids in batches.items():
        for chunk in batched(list(upload_ids), IN_LIST_SIZE):
            warehouse.execute(
                f"UPDATE {UPLOADS.qualified} SET status = 'Queued', retry_after = NULL, "
                "run_key = %s, queued_at = %s, attempts = COALESCE(attempts, 0) + 1 "
                f"WHERE upload_id IN ({', '.join(['%s'] * len(chunk))})",
                [launch_key, now, *chunk],
            )
