"""The metrics days a write touched: what a metrics refresh must re-build after it.

Rules kept here:
- A row's metrics day is the UTC date of its own time, by the same expression the staging model
  reading its table uses (`dbt_metrics/models/staging/stg_<table>.sql`; a fast test keeps the
  two in step). A row without that time counts on no day, as in the staging model.
- The rows a run wrote are those whose `ingested_at` is at or after the run's start: upserts set
  it only on a row that is new or changed, so re-sending the same data touches no event day.
- Any write at all touches today as well: `pipeline_stats` counts rows loaded and rejected by the
  day they were written.
- Days are read back from the warehouse, after the write, whichever writer path (record, bulk,
  landing) wrote them. A row moved to another day by an update leaves its old day to the daily
  closing build.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

from ingest_pipeline.domain.entities import NORMALIZED_SCHEMA
from ingest_pipeline.lib.warehouse import Warehouse

# The metrics day of each table the rollups read by day (stg_<table>.sql's `utc_day(...)`).
DAY_EXPRESSIONS = {
    "events": "occurred_at",
    "feedback": "coalesce(created_at, updated_at, ingested_at)",
    "payments": "created_at",
    "log_records": "ts",
}


def touched_days(
    wh: Warehouse, tables: Iterable[str], since: datetime, wrote_rows: bool
) -> list[date]:
    """The metrics days of the rows of `tables` written since `since`, sorted; with today's
    date added when the run wrote any row (`wrote_rows`: loaded or rejected)."""
    days = {datetime.now(UTC).date()} if wrote_rows else set()
    for table in tables:
        expression = DAY_EXPRESSIONS.get(table)
        if expression is None:
            continue
        rows = wh.fetch_all(
            f"SELECT DISTINCT CAST(({expression}) AT TIME ZONE 'UTC' AS DATE) "
            f"FROM {NORMALIZED_SCHEMA}.{table} WHERE ingested_at >= %s AND ({expression}) IS NOT NULL",
            (since,),
        )
        days.update(_as_date(day) for (day,) in rows)
    return sorted(days)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# The materialization metadata entry a writing asset records them in (the metrics freshness
# sensor reads it): ISO dates, a list Dagster shows as JSON.
TOUCHED_DAYS = "touched_days"


def touched_days_metadata(days: Iterable[date]) -> dict[str, list[str]]:
    return {TOUCHED_DAYS: [day.isoformat() for day in days]}
