"""The shapes of the read API's answers, as its OpenAPI document states them.

The row models of the normalized tables are derived from the entities' declarations
(`domain/entities.py`): a field per column, by its name and in its order, typed by its
portable kind (text: string, timestamptz: date-time, integer/bigint: integer, double: number,
json: any JSON value). Only the key columns are required non-null: the tables enforce nothing
else, and the document must hold for every row a table can hold. The metrics rows follow the
dbt marts' columns (`dbt_metrics/models/marts/*.sql`).

These models document; the routes write their JSON themselves (`queries.json_value`), and the
schemathesis test checks that every answer matches this document.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ingest_pipeline.api.queries import UPLOAD_COLUMNS
from ingest_pipeline.domain.entities import (
    EVENTS,
    FEEDBACK,
    ITEMS,
    PAYMENTS,
    REJECTED_RECORDS,
    UPLOADS,
    Table,
)

_TYPES: dict[str, Any] = {
    "text": str,
    "timestamptz": datetime,
    "integer": int,
    "bigint": int,
    "double": float,
    "json": Any,
}


def row_model(name: str, table: Table, columns: tuple[str, ...] | None = None) -> type[BaseModel]:
    """A model of a table's rows (or of some of its columns, in that order)."""
    kinds = {c.name: c.kind for c in table.columns}
    fields: dict[str, Any] = {}
    for column in columns or tuple(kinds):
        kind = _TYPES[kinds[column]]
        if column in table.key:
            fields[column] = (kind, ...)
        else:
            fields[column] = (kind | None if kind is not Any else Any, ...)
    doc = f"A row of {table.qualified}: its columns by their names."
    return create_model(name, __doc__=doc, **fields)


ItemRow = row_model("ItemRow", ITEMS)
FeedbackRow = row_model("FeedbackRow", FEEDBACK)
EventRow = row_model("EventRow", EVENTS)
PaymentRow = row_model("PaymentRow", PAYMENTS)
RejectRow = row_model("RejectRow", REJECTED_RECORDS)
UploadInfo = row_model("Upload", UPLOADS, UPLOAD_COLUMNS)


def page_model(name: str, row: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        name,
        __doc__="One page, newest first; `next_cursor` continues it (null: the last page).",
        data=(list[row], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, ...),
    )


ItemsPage, FeedbackPage, EventsPage, PaymentsPage, RejectsPage = (
    page_model(f"{name}Page", row)
    for name, row in [
        ("Items", ItemRow),
        ("Feedback", FeedbackRow),
        ("Events", EventRow),
        ("Payments", PaymentRow),
        ("Rejects", RejectRow),
    ]
)


class Error(BaseModel):
    """Every refusal and failure: what went wrong, and for a 400 which parameters and why."""

    error: str
    detail: Any = None


class EventMetric(BaseModel):
    """A row of metrics.event_metrics_<bucket>."""

    tenant_id: str
    source_type: str | None
    source_instance: str | None
    event_type: str | None
    bucket_start: datetime | None = Field(description="Start of the bucket, UTC.")
    metric_date: date | None
    events: int | None
    distinct_actors: int | None


class _Activity(BaseModel):
    metric_date: date | None
    raw_views: int | None
    views: int | None = Field(description="Views counted after the anti-gaming rules.")
    copies: int | None
    saves: int | None
    forks: int | None
    votes: int | None


class ItemMetric(_Activity):
    """A row of metrics.item_metrics_daily."""

    tenant_id: str
    item_id: str | None


class AuthorMetric(_Activity):
    """A row of metrics.author_metrics_daily."""

    tenant_id: str
    author_id: str | None
    donation_count: int | None
    donation_amount: int | None = Field(description="In minor units of the currency.")


class TrendingScore(BaseModel):
    """A row of metrics.trending_scores."""

    tenant_id: str
    item_id: str | None
    metric_date: date | None
    trending_score: float | None


class LeaderboardEntry(BaseModel):
    """A row of metrics.leaderboard_snapshots."""

    tenant_id: str
    metric_date: date | None
    window_name: str | None
    entity_type: str | None
    item_id: str | None
    author_id: str | None
    rank: int | None
    score: float | None


def data_model(name: str, row: type[BaseModel]) -> type[BaseModel]:
    return create_model(name, data=(list[row], ...))  # type: ignore[valid-type]


EventMetrics, ItemMetrics, AuthorMetrics, Trending, Leaderboard = (
    data_model(name, row)
    for name, row in [
        ("EventMetrics", EventMetric),
        ("ItemMetrics", ItemMetric),
        ("AuthorMetrics", AuthorMetric),
        ("Trending", TrendingScore),
        ("Leaderboard", LeaderboardEntry),
    ]
)


class LastRun(BaseModel):
    """The instance's newest Dagster run (ingest runs carry the tag ingest/instance)."""

    run_id: str
    status: str = Field(description="Dagster's run status: QUEUED, STARTED, SUCCESS, FAILURE, ...")
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None


class InstanceStats(BaseModel):
    """One source instance: configured in the tenants file, or seen in the data."""

    model_config = ConfigDict(title="InstanceStats")

    source_type: str
    source_instance: str
    configured: bool = Field(description="Named in the tenants file.")
    last_run: LastRun | None
    rows_loaded_24h: int = Field(description="Rows written (ingested_at) in the last 24 hours.")
    rows_loaded_7d: int
    rows_rejected_24h: int = Field(description="Rows rejected in the last 24 hours.")
    rows_rejected_7d: int
    newest_ingested_at: datetime | None


class Stats(BaseModel):
    as_of: datetime = Field(description="The time the windows end at.")
    data: list[InstanceStats]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, str]
