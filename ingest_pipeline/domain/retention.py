"""Retention: a tenant's rows deleted once they are older than the tenant's window for them.

Rules kept here:
- Windows per tenant in the tenants file, `retention: {raw: 90d, rejects: 30d, audit: 30d,
  events: 365d, log_records: 30d}` (durations `12h`, `7d`); a window not given is the setting's
  (`INGEST_RETENTION_<NAME>`), and a tenant without the block has every default.
- What each window deletes, by which time (only the tenant's own rows):
  `raw`: rows of every raw dlt table holding the tenant column, by their load's time
  (`_dlt_load_id` is the load's epoch seconds); then the rows of dlt's child tables (nested
  lists: no tenant column of their own) whose root row is gone (`_dlt_root_id`), all tenants at
  once, counted apart (`raw_child_rows`);
  `rejects`: normalized.rejected_records by `rejected_at`; `audit`: normalized.intake_audit by
  `received_at`; `events`: normalized.events by `occurred_at`; `log_records`:
  normalized.log_records by the line's own time, else when it was ingested.
- Deletes go in batches of BATCH_ROWS rows, each a statement and transaction of its own: a year of
  rows never holds one long lock over a table the loads write. A run that stops half way leaves
  the rest for the next; running again deletes nothing more (idempotent).
- Landing objects are never deleted here: the bucket's lifecycle rule does (README).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ingest_pipeline.domain.tenants import tenant_blocks, tenant_names
from ingest_pipeline.lib.durations import Duration, parse_duration
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import Settings

BATCH_ROWS = 10_000


class TenantRetention(BaseModel):
    """One tenant's `retention:` block; a window not given is None (the setting's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    raw: Duration | None = None
    rejects: Duration | None = None
    audit: Duration | None = None
    events: Duration | None = None
    log_records: Duration | None = None


@dataclass(frozen=True)
class RetainedTable:
    """A normalized table whose rows a window deletes: by which tenant column and time."""

    window: str
    table: str
    time: str


NORMALIZED = (
    RetainedTable("rejects", "normalized.rejected_records", "rejected_at"),
    RetainedTable("audit", "normalized.intake_audit", "received_at"),
    RetainedTable("events", "normalized.events", "occurred_at"),
    RetainedTable("log_records", "normalized.log_records", "coalesce(ts, ingested_at)"),
)


def tenant_windows(path: Path, settings: Settings) -> dict[str, dict[str, timedelta]]:
    """{tenant: {window name: duration}} for every tenant of the file, defaults filled in."""
    blocks = tenant_blocks(path, "retention", TenantRetention)
    defaults = {
        name: parse_duration(getattr(settings, f"retention_{name}"))
        for name in TenantRetention.model_fields
    }
    windows = {}
    for tenant in sorted(tenant_names(path)):
        given = blocks.get(tenant, TenantRetention()).model_dump(exclude_none=True)
        windows[tenant] = {**defaults, **given}
    return windows


def delete_in_batches(wh: Warehouse, table: str, condition: str, params: tuple[Any, ...]) -> int:
    """Delete the rows of `table` matching `condition`, BATCH_ROWS at a time; how many."""
    row_id = wh.sql_dialect.row_id
    removed = 0
    while True:
        deleted = wh.fetch_all(
            f"DELETE FROM {table} WHERE {row_id} IN (SELECT {row_id} FROM {table} "
            f"WHERE {condition} LIMIT {BATCH_ROWS}) RETURNING 1",
            params,
        )
        removed += len(deleted)
        if len(deleted) < BATCH_ROWS:
            return removed


def delete_orphans(wh: Warehouse, children: dict[str, str]) -> int:
    """Delete the rows of each child table (schema.table: its root table) whose root row is
    gone, in batches; how many."""
    return sum(
        delete_in_batches(wh, child, f"_dlt_root_id NOT IN (SELECT _dlt_id FROM {root})", ())
        for child, root in children.items()
    )


def child_tables(tables: dict[str, list[str]]) -> dict[str, str]:
    """{child table: its root table} of one dlt dataset's {table: columns}: a child has
    `_dlt_root_id`; its root is the longest table name, without it, that prefixes `<root>__`."""
    roots = [name for name, columns in tables.items() if "_dlt_root_id" not in columns]
    found = {}
    for name, columns in tables.items():
        if "_dlt_root_id" in columns:
            candidates = [root for root in roots if name.startswith(f"{root}__")]
            if candidates:
                found[name] = max(candidates, key=len)
    return found


def apply_retention(
    wh: Warehouse,
    windows: dict[str, dict[str, timedelta]],
    raw_tables: list[str],
    tenant_column: str,
) -> dict[str, dict[str, int]]:
    """Delete every tenant's rows older than its windows; {tenant: {window: rows removed}}.
    `raw_tables`: the raw dlt tables (schema.table) that hold `tenant_column`."""
    now = datetime.now(UTC)
    removed: dict[str, dict[str, int]] = {}
    for tenant, window in windows.items():
        counts = {}
        for retained in NORMALIZED:
            cutoff = now - window[retained.window]
            counts[retained.window] = delete_in_batches(
                wh, retained.table, f"tenant_id = %s AND {retained.time} < %s", (tenant, cutoff)
            )
        cutoff_epoch = (now - window["raw"]).timestamp()
        counts["raw"] = sum(
            delete_in_batches(
                wh,
                table,
                f"{tenant_column} = %s AND CAST(_dlt_load_id AS DOUBLE PRECISION) < %s",
                (tenant, cutoff_epoch),
            )
            for table in raw_tables
        )
        removed[tenant] = counts
    return removed
