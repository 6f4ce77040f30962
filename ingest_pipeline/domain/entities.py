"""The normalized layer's entities, each declared once, and their tables (`ingest-pipeline init`).

An entity is one TypedDict: a type checker sees the row type, pydantic validates it (the
constraints are `Annotated` on its fields) and `entity()` derives the rest from its annotations,
in declaration order: the table's columns and their portable kinds, the Arrow schema, the DDL
for DuckDB and PostgreSQL, the key and the content columns.

Rules the declarations keep:
- A field's kind follows its Python type (str: text, datetime: timestamptz, int: integer,
  float: double, dict: json) unless a `Kind` in its `Annotated` says otherwise (`BigInt`,
  `JsonText`). JSON travels as text in Arrow.
- Column order is field order (base classes first): the tables keep the layout they always had.
- Content columns, those whose change makes a row "updated", are every column but the key and
  the lineage fields (`LoadId`, `IngestedAt`: they follow a real change but never count as one),
  unless `entity(content=...)` names them.
- dlt creates no keys on PostgreSQL, so these tables are ours: each has its natural key as a
  primary key, which makes upserts idempotent and duplicates impossible at the database level.
  Every table exists from day one (empty) so later layers can be built before a source delivers.
- Timestamps become timezone-aware UTC when they enter their Arrow `timestamp[us, UTC]` column
  (an offset converts, a naive value is taken as UTC already). A validated timestamp must be
  storable by both warehouses and readable back by Python: within years 1 to 9999 once in UTC
  (`0001-01-01T00:00:00+14:00` is year 0 in UTC, `9999-12-31T23:59:59-14:00` year 10000).
- The read API reads each table newest first by one time column (`READ_TIME_COLUMNS`), a null
  as the earliest time, ties by key; on PostgreSQL `init_warehouse` makes the indexes of those
  orders (`READ_INDEXES`), looked up first so that a second call takes no lock.
- Validation is pydantic-core native (lengths, patterns, datetime parsing): about 4x the rate
  of a BaseModel with Python validators, and it yields the dict we load anyway.
"""

import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, NamedTuple, NotRequired, Required, Union, get_args, get_origin

import pyarrow as pa
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict, get_type_hints

from ingest_pipeline.lib.dialects import Dialect
from ingest_pipeline.lib.warehouse import Warehouse

NORMALIZED_SCHEMA = "normalized"
METRICS_SCHEMA = "metrics"


# --------------------------------------------------------------------------- field types


@dataclass(frozen=True)
class Kind:
    """A field's portable column kind where its Python type does not say it."""

    name: str


class _Lineage:
    """Marks a lineage field: it follows a real change but never counts as one."""


LINEAGE = _Lineage()

BigInt = Annotated[int, Kind("bigint")]
JsonText = Annotated[str, Kind("json")]  # JSON already serialized
LoadId = Annotated[str, LINEAGE]  # the dlt load id (or upload id) of the raw row
IngestedAt = Annotated[datetime, LINEAGE]

HTTP_URL_PATTERN = r"^https?://[^\s/?#]+"
NonEmpty = Annotated[str, Field(min_length=1)]
HttpUrl = Annotated[str, Field(pattern=HTTP_URL_PATTERN)]
Rating = Annotated[int, Field(ge=1, le=5)]
EventId = Annotated[str, Field(min_length=1, max_length=256)]
EventType = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_.:-]*$", max_length=64)]


def storable(value: datetime) -> datetime:
    """The value, if it is within years 1..9999 in UTC (what Python reads back); else ValueError."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        aware.astimezone(UTC)  # overflows past year 1 or 9999
    except OverflowError:
        raise ValueError(
            "timestamp out of range: must fall within years 1 to 9999 in UTC"
        ) from None
    return value


Timestamp = Annotated[datetime, AfterValidator(storable)]


# --------------------------------------------------------------------------- tables


class Column(NamedTuple):
    name: str
    kind: str  # portable: text, timestamptz, integer, bigint, double, json
    lineage: bool


_KINDS: dict[Any, str] = {
    str: "text",
    datetime: "timestamptz",
    int: "integer",
    float: "double",
    dict: "json",
}

_ARROW_TYPES = {
    "text": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "json": pa.string(),
}


@dataclass(frozen=True)
class Table:
    """A normalized table: derived from its row type by `entity()`."""

    name: str
    row_type: type
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    content_columns: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{NORMALIZED_SCHEMA}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def text_columns(self) -> list[str]:
        """The columns that hold text (or JSON text): those a token can replace."""
        return [column.name for column in self.columns if column.kind in ("text", "json")]

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, _ARROW_TYPES[c.kind]) for c in self.columns])

    @cached_property
    def validator(self) -> TypeAdapter:
        """The pydantic validator of the row type (built on first use)."""
        return TypeAdapter(self.row_type)

    def to_arrow(
        self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows (dicts; missing keys are null) as an Arrow table of this table's columns (or of
        `columns` only, in that order)."""
        schema = self.arrow_schema
        if columns is not None:
            schema = pa.schema([schema.field(name) for name in columns])
        rows = rows if isinstance(rows, list) else list(rows)
        # Column by column: about twice the rate of building a dict per row for from_pylist.
        arrays = [
            pa.array([row.get(field.name) for row in rows], type=field.type) for field in schema
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    def ddl(self, dialect: Dialect) -> str:
        cols = ", ".join(f"{c.name} {dialect.sql_type(c.kind)}" for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.qualified} "
            f"({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        )


def entity(
    row_type: type, *, table: str, key: Sequence[str], content: Sequence[str] | None = None
) -> Table:
    """The table of a row type (a TypedDict): its fields, in order, are the columns."""
    hints = get_type_hints(row_type, include_extras=True)
    columns = tuple(_column(name, hint) for name, hint in hints.items())
    names = [c.name for c in columns]
    if missing := [k for k in (*key, *(content or ())) if k not in names]:
        raise ValueError(f"{table}: no such columns {missing}")
    if content is None:
        content = [c.name for c in columns if c.name not in key and not c.lineage]
    return Table(table, row_type, columns, tuple(key), tuple(content))


def _column(name: str, hint: Any) -> Column:
    """A field's column: the kind and lineage marks in its `Annotated`, else its Python type."""
    base, marks, _ = annotation_parts(hint)
    kind = next((m.name for m in marks if isinstance(m, Kind)), None)
    lineage = any(m is LINEAGE for m in marks)
    return Column(name, kind or _KINDS[get_origin(base) or base], lineage)


def annotation_parts(hint: Any) -> tuple[Any, list[Any], bool]:
    """A field's annotation taken apart: its base type, the marks of its `Annotated` (outer
    first) and whether it may be None (`X | None`); `Required`/`NotRequired` looked through."""
    marks: list[Any] = []
    nullable = False
    while True:
        origin = get_origin(hint)
        if origin in (Required, NotRequired):
            hint = get_args(hint)[0]
        elif origin is Annotated:
            hint, *more = get_args(hint)
            marks += more
        elif origin in (Union, types.UnionType):  # X | None: the column of X, nullable
            nullable = nullable or type(None) in get_args(hint)
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        else:
            return hint, marks, nullable


# --------------------------------------------------------------------------- the entities

# Names, ids and text are stripped; numbers where text is due become text; unknown fields fail.
_VALIDATION = ConfigDict(coerce_numbers_to_str=True, str_strip_whitespace=True, extra="forbid")


class SourceRecord(TypedDict):
    """Where a normalized row came from: the first columns of every source's entity."""

    __pydantic_config__ = _VALIDATION  # type: ignore[misc]

    tenant_id: NonEmpty
    source_type: NonEmpty
    source_instance: NonEmpty


class ExternalRecord(SourceRecord):
    """A source's record, identified by the source's own id."""

    external_id: NonEmpty


SOURCE_KEY = ("tenant_id", "source_type", "source_instance", "external_id")


class Item(ExternalRecord, total=False):
    title: str | None
    summary: str | None
    url: HttpUrl | None
    author: str | None
    published_at: Timestamp | None
    updated_at: Timestamp | None
    raw_load_id: Required[LoadId]
    ingested_at: Required[IngestedAt]


class Feedback(ExternalRecord, total=False):
    thread_id: str | None
    author_id: str | None
    author_name: str | None
    text: str | None
    rating: Rating | None
    language: str | None
    url: HttpUrl | None
    created_at: Timestamp | None
    updated_at: Timestamp | None
    raw_load_id: Required[LoadId]
    ingested_at: Required[IngestedAt]


class AppEvent(SourceRecord):
    """App events arrive as NDJSON/CSV batches in the landing bucket (events/<tenant>/...)."""

    event_id: EventId
    event_type: EventType
    occurred_at: Timestamp
    item_id: str | None
    author_id: str | None
    actor_id: str | None
    ip: str | None
    session_id: str | None
    properties: dict[str, Any] | None  # stored as JSON text
    raw_load_id: LoadId
    ingested_at: IngestedAt


class LogRecord(TypedDict, total=False):
    tenant_id: str
    upload_id: str
    object_key: str
    line_no: BigInt
    ts: datetime | None
    level: str | None
    service: str | None
    message: str | None
    attributes: JsonText | None
    ingested_at: IngestedAt


class Upload(TypedDict, total=False):
    upload_id: str
    tenant_id: str | None
    kind: str
    object_key: str
    etag: str | None  # the object version processed: the same bytes twice are skipped
    size_bytes: BigInt | None
    status: str
    reason: str | None
    rows_loaded: BigInt | None
    rows_rejected: BigInt | None
    created_at: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int | None  # runs launched for the upload (the retry bound counts these)
    run_key: str | None  # the run key of the last launch: a run dead before its step
    run_id: str | None  # the run that took it last: a dead run's uploads are found by it
    retry_after: datetime | None  # Queued again after a transient fault: not before this


class Payment(TypedDict, total=False):
    tenant_id: str
    payment_id: str
    author_id: str | None
    item_id: str | None
    amount: BigInt | None
    currency: str | None
    status: str | None
    created_at: datetime | None
    updated_at: datetime | None
    ingested_at: IngestedAt  # when this row last changed (what a metrics refresh looks for)


class RejectedRecord(SourceRecord):
    # Where the rejected row came from (raw table + dlt row id, or object key + line):
    # re-processing the same raw row rewrites its reject instead of adding another.
    record_ref: str
    reason: str
    payload: str
    raw_load_id: str | None  # not lineage here: a reject's load and time are content
    rejected_at: datetime


class NormalizedLoad(TypedDict):
    raw_table: str
    load_id: str
    normalized_at: datetime | None  # None: quarantined


class IngestedInput(TypedDict):
    """The input of a file source instance as its last whole `ingest` found it
    (`domain/input_fingerprints.py`): a re-run on the same files runs nothing."""

    tenant_id: str
    source_type: str
    source_instance: str
    fingerprint: str  # sha256 of the instance's options and its files' paths, sizes and times
    files: int
    bytes: BigInt
    run_id: str  # the raw run of that ingest
    recorded_at: datetime


class IntakeAudit(TypedDict, total=False):
    audit_id: str  # uuid4 hex
    received_at: datetime
    tenant_id: str | None
    provider: str | None  # intercom | stripe | uploads | null (health, metrics, ...)
    route: str  # e.g. "POST /webhooks/stripe/{tenant}"
    event_id: str | None  # webhook event id, or the upload id
    verdict: str  # accepted | duplicate | rejected | error
    status_code: int | None
    reason: str | None
    object_key: str | None  # the landed object (or the upload's key)


class MetricsBuild(TypedDict):
    """What a metrics run wrote: one row per (run, dbt model, day of its window)."""

    run_id: str
    model: str
    metric_date: str  # the partition key: the UTC day, YYYY-MM-DD
    rows_written: BigInt
    built_at: datetime


ITEMS = entity(Item, table="items", key=SOURCE_KEY)
FEEDBACK = entity(Feedback, table="feedback", key=SOURCE_KEY)
EVENTS = entity(AppEvent, table="events", key=("tenant_id", "event_id"))
LOG_RECORDS = entity(LogRecord, table="log_records", key=("object_key", "line_no"))
UPLOADS = entity(Upload, table="uploads", key=("upload_id",))
PAYMENTS = entity(Payment, table="payments", key=("tenant_id", "payment_id"))
REJECTED_RECORDS = entity(
    RejectedRecord,
    table="rejected_records",
    key=("tenant_id", "source_type", "source_instance", "record_ref"),
)
# Which raw loads have been normalized: the normalized layer consumes each dlt load once (a mark
# is written once: no content), and a replay simply forgets these rows.
NORMALIZED_LOADS = entity(
    NormalizedLoad, table="normalized_loads", key=("raw_table", "load_id"), content=()
)
# One row per request to the intake service (`ingest-pipeline serve-intake`): who, which route,
# what was decided and why. Never a secret, a token or a signature header.
INTAKE_AUDIT = entity(IntakeAudit, table="intake_audit", key=("audit_id",))
METRICS_BUILDS = entity(
    MetricsBuild, table="metrics_builds", key=("run_id", "model", "metric_date")
)
INGESTED_INPUTS = entity(
    IngestedInput, table="ingested_inputs", key=("tenant_id", "source_type", "source_instance")
)

ALL_TABLES = (
    ITEMS,
    FEEDBACK,
    EVENTS,
    LOG_RECORDS,
    UPLOADS,
    PAYMENTS,
    REJECTED_RECORDS,
    NORMALIZED_LOADS,
    INTAKE_AUDIT,
    METRICS_BUILDS,
    INGESTED_INPUTS,
)


# --------------------------------------------------------------------------- read order

# The read API (`ingest_pipeline/api`) pages a table newest first by one time column, ties by
# the key (all descending); a row without that time counts as the earliest possible one, so the
# order is total and keyset pagination returns every row once. On PostgreSQL the indexes below
# serve those orders (the same expression in the index and in the query) and the API's filters.
EARLIEST_TIME = "CAST('0001-01-01 00:00:00+00' AS TIMESTAMPTZ)"


def read_time(column: str) -> str:
    """The time a table's rows are read in order of: the column, a null as the earliest."""
    return f"COALESCE({column}, {EARLIEST_TIME})"


class ReadIndex(NamedTuple):
    """A PostgreSQL index of the read API: on `table` (schema.table), by `columns` (names or
    expressions). One on a metrics table is made once dbt has created the table."""

    name: str
    table: str
    columns: tuple[str, ...]


def _by_time(name: str, table: Table, time_column: str, *leading: str) -> ReadIndex:
    """Tenant, `leading` columns, the read time, the rest of the key: the list order, also
    when the API's filters fix the leading columns."""
    rest = [c for c in table.key if c not in ("tenant_id", *leading)]
    return ReadIndex(name, table.qualified, ("tenant_id", *leading, read_time(time_column), *rest))


READ_TIME_COLUMNS = {
    ITEMS.name: "updated_at",
    FEEDBACK.name: "created_at",
    EVENTS.name: "occurred_at",
    PAYMENTS.name: "updated_at",
    REJECTED_RECORDS.name: "rejected_at",
}
# Rows ingested per source instance and window, and the newest (the API's `stats`).
_INGESTED = ("tenant_id", "source_type", "source_instance", "ingested_at")
READ_INDEXES = (
    _by_time("api_items_by_time", ITEMS, "updated_at"),
    ReadIndex("api_items_by_ingested", ITEMS.qualified, _INGESTED),
    _by_time("api_feedback_by_time", FEEDBACK, "created_at"),
    _by_time("api_feedback_by_type_time", FEEDBACK, "created_at", "source_type"),
    ReadIndex("api_feedback_by_ingested", FEEDBACK.qualified, _INGESTED),
    _by_time("api_events_by_time", EVENTS, "occurred_at"),
    ReadIndex("api_events_by_ingested", EVENTS.qualified, _INGESTED),
    _by_time("api_payments_by_time", PAYMENTS, "updated_at"),
    _by_time("api_rejects_by_time", REJECTED_RECORDS, "rejected_at"),
    _by_time(
        "api_rejects_by_source_time",
        REJECTED_RECORDS,
        "rejected_at",
        "source_type",
        "source_instance",
    ),
    *(
        ReadIndex(
            f"api_event_metrics_{bucket}_by_time",
            f"{METRICS_SCHEMA}.event_metrics_{bucket}",
            ("tenant_id", "bucket_start"),
        )
        for bucket in ("minute", "hour", "day")
    ),
    *(
        ReadIndex(f"api_{entity}_metrics_by_{order}", f"{METRICS_SCHEMA}.{entity}_metrics_daily", c)
        for entity in ("item", "author")
        for order, c in [
            ("date", ("tenant_id", "metric_date", f"{entity}_id")),
            (entity, ("tenant_id", f"{entity}_id", "metric_date")),
        ]
    ),
    ReadIndex(
        "api_trending_by_date", f"{METRICS_SCHEMA}.trending_scores", ("tenant_id", "metric_date")
    ),
    ReadIndex(
        "api_leaderboards_by_date",
        f"{METRICS_SCHEMA}.leaderboard_snapshots",
        ("tenant_id", "window_name", "entity_type", "metric_date", "rank"),
    ),
)
assert all(len(index.name) <= 63 for index in READ_INDEXES)  # PostgreSQL's limit on names


def init_warehouse(warehouse: Warehouse) -> list[str]:
    """Create the schemas and every normalized table if missing, and on PostgreSQL the read
    API's indexes (those of the metrics tables once dbt has made them). Idempotent."""
    dialect = warehouse.sql_dialect
    with warehouse.connect() as con:
        for schema in (NORMALIZED_SCHEMA, METRICS_SCHEMA):
            dialect.execute(con, f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in ALL_TABLES:
            dialect.execute(con, table.ddl(dialect))
        _add_new_columns(con, dialect)
        if dialect.range_indexes:
            _create_read_indexes(con, dialect)
    return [table.qualified for table in ALL_TABLES]


def _create_read_indexes(con: Any, dialect: Dialect) -> None:
    """The read API's indexes that are missing, on the tables that exist. Looked up first: even
    `CREATE INDEX IF NOT EXISTS` takes a lock that waits for (and holds up) writers. DuckDB gets
    none: its indexes serve point lookups, not these range scans, and would slow its loads."""
    schemas = (NORMALIZED_SCHEMA, METRICS_SCHEMA)
    indexes = {
        f"{schema}.{name}"
        for schema, name in dialect.execute(
            con,
            "SELECT schemaname, indexname FROM pg_indexes WHERE schemaname IN (%s, %s)",
            schemas,
        ).fetchall()
    }
    tables = {
        f"{schema}.{name}"
        for schema, name in dialect.execute(
            con,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN (%s, %s)",
            schemas,
        ).fetchall()
    }
    for index in READ_INDEXES:
        schema = index.table.split(".", 1)[0]
        if f"{schema}.{index.name}" not in indexes and index.table in tables:
            dialect.execute(
                con,
                f"CREATE INDEX IF NOT EXISTS {index.name} ON {index.table} "
                f"({', '.join(index.columns)})",
            )


def _add_new_columns(con: Any, dialect: Dialect) -> None:
    """Columns added since a warehouse was created, added to its tables. Looked up first: an
    ALTER TABLE, even a no-op one, would take PostgreSQL's exclusive lock on every call."""
    existing = set(
        dialect.execute(
            con,
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s",
            (NORMALIZED_SCHEMA,),
        ).fetchall()
    )
    for table in ALL_TABLES:
        for column in table.columns:
            if (table.name, column.name) not in existing:
                dialect.execute(
                    con,
                    f"ALTER TABLE {table.qualified} ADD COLUMN {column.name} "
                    f"{dialect.sql_type(column.kind)}",
                )
