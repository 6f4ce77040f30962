"""The SQL of each read API route, written once for DuckDB and PostgreSQL, and its rows as JSON
values.

Rules it keeps:
- Every statement is bound to one tenant (`tenant_id = %s` first in every WHERE, subqueries
  included) and takes the caller's values as parameters, never as SQL text.
- Lists page by keyset (see `cursor`): `WHERE (time, key...) < (cursor)` `ORDER BY time DESC,
  key DESC` `LIMIT n + 1` (the extra row says whether there is a next page). The time is
  `read_time(column)` (`domain.entities`), the expression the PostgreSQL indexes are built
  on; a time filter is written on the column (exact) and again on that expression (so the
  index bounds the scan). Key columns an equality filter fixes are left out of the keyset
  comparison, which then matches the index of those filters.
- Rows come out as the table's columns by their names: timestamps ISO 8601 in UTC with an
  offset (a metrics bucket, a UTC wall-clock time in the table, gets +00:00), dates
  `YYYY-MM-DD`, JSON columns as JSON values, integral decimals as integers, and a float
  that is not finite as null (JSON has no NaN).
- On PostgreSQL a list page's rows are JSON objects written by the database
  (`json_build_object`, in a UTC session); elsewhere Python writes them (`iso_utc`,
  `json_value`) in the same form, so both warehouses answer the same text for the same rows.
- Metrics rows are written by PostgreSQL as well (`PG_JSON_VALUE`), elsewhere by orjson in C
  from the rows as the driver returns them (`rows_json`): converting each value in Python was
  a third of the service's CPU under load. The same values as `json_value` gives, except that
  a timestamp with a fraction would keep all six digits (metrics tables have none).
- Metrics tables are dbt's: before the first build they do not exist, and the metrics routes
  answer no rows (`MissingTable` is caught there); a missing normalized table is an error
  the API answers 503 ("not initialized").
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from ingest_pipeline.api.cursor import decode_cursor, encode_cursor
from ingest_pipeline.api.reader import MissingTable, Reader, Result
from ingest_pipeline.domain.entities import (
    EVENTS,
    FEEDBACK,
    ITEMS,
    METRICS_SCHEMA,
    PAYMENTS,
    READ_TIME_COLUMNS,
    REJECTED_RECORDS,
    UPLOADS,
    Table,
    read_time,
)

EARLIEST = datetime(1, 1, 1, tzinfo=UTC)  # entities.EARLIEST_TIME: where a null time sorts

JsonRow = dict[str, Any]


# --------------------------------------------------------------------------- values


def json_value(value: Any) -> Any:
    """A warehouse value as a JSON value (see the module's rules)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict | list):
        return value
    return str(value)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with the offset, as PostgreSQL writes a timestamptz in JSON: seconds
    always, a fraction only as long as it needs (`08:00:00.5+00:00`). A naive value is UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    text = aware.astimezone(UTC).replace(tzinfo=None).isoformat()
    return (text.rstrip("0") if "." in text else text) + "+00:00"


def _rows(result: Result, json_columns: frozenset[str] = frozenset()) -> list[JsonRow]:
    names = result.columns
    out = []
    for row in result.rows:
        record = {name: json_value(value) for name, value in zip(names, row, strict=True)}
        for name in json_columns:
            text = record.get(name)
            if isinstance(text, str):
                with contextlib.suppress(ValueError):  # not JSON after all: the text as stored
                    record[name] = json.loads(text)
        out.append(record)
    return out


# --------------------------------------------------------------------------- lists


@dataclass(frozen=True)
class ListRoute:
    """One paged list: a normalized table read newest first by its row time, ties by key."""

    name: str
    table: Table
    time_column: str = field(init=False)
    key: tuple[str, ...] = field(init=False)
    json_columns: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_column", READ_TIME_COLUMNS[self.table.name])
        object.__setattr__(self, "key", tuple(c for c in self.table.key if c != "tenant_id"))
        json_columns = frozenset(c.name for c in self.table.columns if c.kind == "json")
        object.__setattr__(self, "json_columns", json_columns)

    @property
    def select_list(self) -> str:
        return ", ".join(
            f"CAST({c} AS TEXT) AS {c}" if c in self.json_columns else c
            for c in self.table.column_names
        )

    @property
    def json_object(self) -> str:
        """PostgreSQL: the row as one JSON object (text), its columns in order. PostgreSQL
        writes it in C; the API then only joins the rows (a third of the CPU of converting
        each value in Python). A session in UTC writes timestamps as `iso_utc` does."""
        pairs = ", ".join(f"'{c}', {c}" for c in self.table.column_names)
        return f"CAST(json_build_object({pairs}) AS TEXT)"


ITEMS_LIST = ListRoute("items", ITEMS)
FEEDBACK_LIST = ListRoute("feedback", FEEDBACK)
EVENTS_LIST = ListRoute("events", EVENTS)
PAYMENTS_LIST = ListRoute("payments", PAYMENTS)
REJECTS_LIST = ListRoute("rejects", REJECTED_RECORDS)


@dataclass(frozen=True)
class Page:
    data_json: str  # the rows, a JSON array
    next_cursor: str | None

    @property
    def data(self) -> list[JsonRow]:
        return json.loads(self.data_json)


def page_query(
    route: ListRoute,
    tenant: str,
    *,
    equal: dict[str, Any] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int,
    as_json: bool = False,
) -> tuple[str, list[Any]]:
    """The SQL and parameters of one page of `route` (LIMIT `limit` + 1): rows of `tenant`
    whose columns equal `equal` (None values left out), whose time is in [since, until),
    after `cursor`. CursorError for a cursor this route did not hand out. `as_json`
    (PostgreSQL): each row as its JSON object, then its time and key (for the cursor)."""
    equal = {column: value for column, value in (equal or {}).items() if value is not None}
    time_column, ordered = route.time_column, read_time(route.time_column)
    where, params = ["tenant_id = %s"], [tenant]
    for column, value in equal.items():
        where.append(f"{column} = %s")
        params.append(value)
    # A bound leaves out the rows without a time; it is written on the ordered expression alone
    # (the index's), so the planner estimates the range once: with the raw column compared as
    # well it multiplied the two and, 100x short, sorted the whole range instead of reading the
    # index backwards for one page (82 ms against about 1 for 1M events).
    if since is not None or until is not None:
        where.append(f"{time_column} IS NOT NULL")
    if since is not None:
        where.append(f"{ordered} >= %s")
        params.append(since)
    if until is not None:
        where.append(f"{ordered} < %s")
        params.append(until)
    if cursor is not None:
        after_time, after_key = decode_cursor(cursor, route.name, len(route.key))
        free = [(c, v) for c, v in zip(route.key, after_key, strict=True) if c not in equal]
        columns = ", ".join([ordered, *(c for c, _ in free)])
        where.append(f"({columns}) < ({', '.join(['%s'] * (1 + len(free)))})")
        params += [after_time, *(v for _, v in free)]
    order = ", ".join(f"{c} DESC" for c in [ordered, *route.key])
    select = route.select_list
    if as_json:
        select = ", ".join([route.json_object, time_column, *route.key])
    sql = (
        f"SELECT {select} FROM {route.table.qualified} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s"
    )
    return sql, [*params, limit + 1]


def list_page(reader: Reader, route: ListRoute, tenant: str, *, limit: int, **filters: Any) -> Page:
    """One page of `route` for `tenant` (`page_query`'s filters), with the cursor of the next
    one when there is more."""
    as_json = reader.dialect == "postgres"
    sql, params = page_query(route, tenant, limit=limit, as_json=as_json, **filters)
    result = reader.query(sql, params)
    rows = result.rows[:limit]
    if as_json:
        data_json = "[" + ",".join(row[0] for row in rows) + "]"
        last = rows[-1][1:] if rows else None
    else:
        records = _rows(Result(result.columns, rows), route.json_columns)
        data_json = json.dumps(records, separators=(",", ":"))
        index = [result.columns.index(c) for c in (route.time_column, *route.key)]
        last = tuple(rows[-1][i] for i in index) if rows else None
    next_cursor = None
    if len(result.rows) > limit and last is not None:
        row_time, *key = last
        next_cursor = encode_cursor(route.name, EARLIEST if row_time is None else row_time, key)
    return Page(data_json, next_cursor)


# --------------------------------------------------------------------------- uploads

UPLOAD_COLUMNS = (
    "upload_id",
    "tenant_id",
    "kind",
    "object_key",
    "size_bytes",
    "status",
    "reason",
    "rows_loaded",
    "rows_rejected",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
)


def upload(reader: Reader, tenant: str, upload_id: str) -> JsonRow | None:
    """The tenant's upload, or None (unknown, or another tenant's: the same answer)."""
    result = reader.query(
        f"SELECT {', '.join(UPLOAD_COLUMNS)} FROM {UPLOADS.qualified} "
        "WHERE upload_id = %s AND tenant_id = %s",
        [upload_id, tenant],
    )
    rows = _rows(result)
    return rows[0] if rows else None


# --------------------------------------------------------------------------- metrics

EVENT_METRICS_COLUMNS = (
    "tenant_id",
    "source_type",
    "source_instance",
    "event_type",
    "bucket_start",
    "metric_date",
    "events",
    "distinct_actors",
)
ACTIVITY_COLUMNS = ("raw_views", "views", "copies", "saves", "forks", "votes")
ITEM_METRICS_COLUMNS = ("tenant_id", "item_id", "metric_date", *ACTIVITY_COLUMNS)
AUTHOR_METRICS_COLUMNS = (
    "tenant_id",
    "author_id",
    "metric_date",
    *ACTIVITY_COLUMNS,
    "donation_count",
    "donation_amount",
)
TRENDING_COLUMNS = ("tenant_id", "item_id", "metric_date", "trending_score")
LEADERBOARD_COLUMNS = (
    "tenant_id",
    "metric_date",
    "window_name",
    "entity_type",
    "item_id",
    "author_id",
    "rank",
    "score",
)


# PostgreSQL writes a metrics row as JSON itself (as a list page's): these columns need an
# expression to come out as `json_value` writes them. A bucket is a UTC wall-clock time (out
# with +00:00); a score that is not finite is null (JSON has no NaN).
PG_JSON_VALUE = {
    "bucket_start": "bucket_start AT TIME ZONE 'UTC'",
    **{
        column: f"NULLIF(NULLIF(NULLIF({column}, 'NaN'), 'Infinity'), '-Infinity')"
        for column in ("score", "trending_score")
    },
}


def _metrics(reader: Reader, columns: Sequence[str], rest: str, params: Sequence[Any]) -> str:
    """`SELECT columns <rest>` (FROM, WHERE, ORDER BY, LIMIT) as a JSON array of rows (text);
    none while dbt has not built the table yet. On PostgreSQL the database writes each row."""
    if reader.dialect == "postgres":
        pairs = ", ".join(f"'{c}', {PG_JSON_VALUE.get(c, c)}" for c in columns)
        sql = f"SELECT CAST(json_build_object({pairs}) AS TEXT) {rest}"
    else:
        sql = f"SELECT {', '.join(columns)} {rest}"
    try:
        result = reader.query(sql, params)
    except MissingTable:
        return "[]"
    if reader.dialect == "postgres":
        return "[" + ",".join(row[0] for row in result.rows) + "]"
    return rows_json(result)


def rows_json(result: Result) -> str:
    """The rows as a JSON array of objects, the columns by name (see the module's rules)."""
    names = result.columns
    records = [dict(zip(names, row, strict=True)) for row in result.rows]
    return orjson.dumps(records, default=_orjson_default, option=orjson.OPT_NAIVE_UTC).decode()


def _orjson_default(value: Any) -> Any:
    """What orjson does not write itself (a Decimal, mostly: PostgreSQL's sums)."""
    converted = json_value(value)
    if converted is value:  # json_value keeps it as it is: orjson could not write it
        return str(value)
    return converted


def event_metrics(
    reader: Reader,
    tenant: str,
    bucket: str,
    start: datetime,
    end: datetime,
    event_type: str | None = None,
    source: str | None = None,
) -> str:
    """Buckets of `event_metrics_<bucket>` starting in [start, end) (aware), in time order, as
    a JSON array. `source` is the source instance."""
    where, params = ["tenant_id = %s", "bucket_start >= %s", "bucket_start < %s"], [tenant]
    # bucket_start is a UTC wall-clock timestamp: compare it with naive UTC times.
    params += [start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None)]
    for column, value in (("event_type", event_type), ("source_instance", source)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    rest = (
        f"FROM {METRICS_SCHEMA}.event_metrics_{bucket} WHERE {' AND '.join(where)} "
        "ORDER BY bucket_start, source_type, source_instance, event_type"
    )
    return _metrics(reader, EVENT_METRICS_COLUMNS, rest, params)


def daily_metrics(
    reader: Reader,
    tenant: str,
    entity: str,
    days: tuple[date, date] | None,
    entity_id: str | None,
    limit: int,
) -> str:
    """`<entity>_metrics_daily` for the days [first, end) or, with `days` None, the tenant's
    latest built day; one entity or all, by day then id, at most `limit` rows."""
    id_column = f"{entity}_id"
    columns = ITEM_METRICS_COLUMNS if entity == "item" else AUTHOR_METRICS_COLUMNS
    table = f"{METRICS_SCHEMA}.{entity}_metrics_daily"
    where, params = ["tenant_id = %s"], [tenant]
    if entity_id is not None:
        where.append(f"{id_column} = %s")
        params.append(entity_id)
    if days is None:
        latest = f"SELECT max(metric_date) FROM {table} WHERE {' AND '.join(where)}"
        where.append(f"metric_date = ({latest})")
        params = [*params, *params]
    else:
        where += ["metric_date >= %s", "metric_date < %s"]
        params += list(days)
    rest = f"FROM {table} WHERE {' AND '.join(where)} ORDER BY metric_date, {id_column} LIMIT %s"
    return _metrics(reader, columns, rest, [*params, limit])


def trending(reader: Reader, tenant: str, day: date | None, limit: int) -> str:
    """The day's (default: the latest built day's) trending scores, highest first."""
    table = f"{METRICS_SCHEMA}.trending_scores"
    if day is None:
        when = f"metric_date = (SELECT max(metric_date) FROM {table} WHERE tenant_id = %s)"
        params: list[Any] = [tenant, tenant]
    else:
        when, params = "metric_date = %s", [tenant, day]
    rest = (
        f"FROM {table} WHERE tenant_id = %s AND {when} "
        "ORDER BY trending_score DESC, item_id LIMIT %s"
    )
    return _metrics(reader, TRENDING_COLUMNS, rest, [*params, limit])


def leaderboard(
    reader: Reader, tenant: str, window: str, entity: str, day: date | None, limit: int
) -> str:
    """The snapshot of one window and entity type on a day (default: the latest), by rank."""
    table = f"{METRICS_SCHEMA}.leaderboard_snapshots"
    board = "tenant_id = %s AND window_name = %s AND entity_type = %s"
    params: list[Any] = [tenant, window, entity]
    if day is None:
        when = f"metric_date = (SELECT max(metric_date) FROM {table} WHERE {board})"
        params += params
    else:
        when = "metric_date = %s"
        params.append(day)
    rest = f"FROM {table} WHERE {board} AND {when} ORDER BY rank LIMIT %s"
    return _metrics(reader, LEADERBOARD_COLUMNS, rest, [*params, limit])


# --------------------------------------------------------------------------- stats

# The tables whose rows carry `ingested_at` per source instance.
INGESTED_TABLES = (ITEMS, FEEDBACK, EVENTS)


@dataclass
class InstanceCounts:
    rows_loaded_24h: int = 0
    rows_loaded_7d: int = 0
    rows_rejected_24h: int = 0
    rows_rejected_7d: int = 0
    newest_ingested_at: datetime | None = None


def instance_counts(
    reader: Reader, tenant: str, now: datetime
) -> dict[tuple[str, str], InstanceCounts]:
    """{(source_type, source_instance): counts} of every instance with rows in items, feedback
    or events (ever) or rejects in the last 7 days: rows (re)written and rejected over the last
    24 hours and 7 days, and the newest `ingested_at`.

    On PostgreSQL the instances are found by a loose index scan and counted per instance on
    `api_<table>_by_ingested` (cost: instances x log rows + the rows of the window), never by
    reading the tenant's whole table; DuckDB aggregates its columns directly."""
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    counts: dict[tuple[str, str], InstanceCounts] = {}
    for table in INGESTED_TABLES:
        if reader.dialect == "postgres":
            sql = _pg_ingested_sql(table.qualified)
            params = [tenant, tenant, tenant, day, tenant, week, tenant]
        else:
            sql = (
                "SELECT source_type, source_instance, "
                "count(*) FILTER (WHERE ingested_at >= %s), "
                "count(*) FILTER (WHERE ingested_at >= %s), max(ingested_at) "
                f"FROM {table.qualified} WHERE tenant_id = %s GROUP BY source_type, source_instance"
            )
            params = [day, week, tenant]
        for source_type, instance, last_day, last_week, newest in reader.query(sql, params).rows:
            entry = counts.setdefault((source_type, instance), InstanceCounts())
            entry.rows_loaded_24h += int(last_day)
            entry.rows_loaded_7d += int(last_week)
            if newest is not None and (
                entry.newest_ingested_at is None or newest > entry.newest_ingested_at
            ):
                entry.newest_ingested_at = newest
    ordered = read_time("rejected_at")
    rejects = reader.query(
        "SELECT source_type, source_instance, count(*) FILTER (WHERE rejected_at >= %s), count(*) "
        f"FROM {REJECTED_RECORDS.qualified} "
        f"WHERE tenant_id = %s AND rejected_at >= %s AND {ordered} >= %s "
        "GROUP BY source_type, source_instance",
        [day, tenant, week, week],
    )
    for source_type, instance, last_day, last_week in rejects.rows:
        entry = counts.setdefault((source_type, instance), InstanceCounts())
        entry.rows_rejected_24h, entry.rows_rejected_7d = int(last_day), int(last_week)
    return counts


def _pg_ingested_sql(table: str) -> str:
    """Instances of the tenant in `table` by a loose index scan (a recursive step per
    instance), then each one's window counts and newest row on the same index."""
    return f"""
        WITH RECURSIVE instances AS (
            (SELECT source_type, source_instance FROM {table} WHERE tenant_id = %s
             ORDER BY source_type, source_instance LIMIT 1)
            UNION ALL
            SELECT later.source_type, later.source_instance FROM instances, LATERAL (
                SELECT source_type, source_instance FROM {table}
                WHERE tenant_id = %s AND (source_type, source_instance)
                    > (instances.source_type, instances.source_instance)
                ORDER BY source_type, source_instance LIMIT 1
            ) AS later
        )
        SELECT i.source_type, i.source_instance,
            (SELECT count(*) FROM {table} AS c WHERE c.tenant_id = %s
                AND c.source_type = i.source_type AND c.source_instance = i.source_instance
                AND c.ingested_at >= %s),
            (SELECT count(*) FROM {table} AS c WHERE c.tenant_id = %s
                AND c.source_type = i.source_type AND c.source_instance = i.source_instance
                AND c.ingested_at >= %s),
            (SELECT max(ingested_at) FROM {table} AS m WHERE m.tenant_id = %s
                AND m.source_type = i.source_type AND m.source_instance = i.source_instance)
        FROM instances AS i
    """
