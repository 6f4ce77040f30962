"""The normalized layer's tables, created by `ingest-pipeline init` on DuckDB or PostgreSQL.

dlt creates no keys on PostgreSQL, so these tables are ours: each has its natural key as a
primary key, which makes upserts idempotent and duplicates impossible at the database level.
Every table exists from day one (empty) so later layers can be built before a source delivers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ingest_pipeline.lib.warehouse import Warehouse

NORMALIZED_SCHEMA = "normalized"
METRICS_SCHEMA = "metrics"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, portable type)
    key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{NORMALIZED_SCHEMA}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def content_columns(self) -> list[str]:
        """The columns whose change makes a row "updated": neither key nor lineage (load ids
        and ingestion times follow a real change but never count as one)."""
        lineage = {name for name, _ in LINEAGE_COLUMNS}
        return [c for c in self.column_names if c not in self.key and c not in lineage]

    def to_arrow(
        self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Rows (dicts; missing keys are null) as an Arrow table of this table's columns (or of
        `columns` only, in that order)."""
        kinds = dict(self.columns)
        names = columns or [name for name, _ in self.columns]
        schema = pa.schema([(name, _ARROW_TYPES[kinds[name]]) for name in names])
        rows = rows if isinstance(rows, list) else list(rows)
        # Column by column: about twice the rate of building a dict per row for from_pylist.
        columns = [
            pa.array([row.get(field.name) for row in rows], type=field.type) for field in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)

    def upsert(self, warehouse: Warehouse, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert rows, replacing any with the same key (every non-key column compared)."""
        content = [c for c in self.column_names if c not in self.key]
        warehouse.upsert(self.qualified, self.to_arrow(rows), self.key, content)

    def ddl(self, dialect: str) -> str:
        cols = ", ".join(f"{name} {_sql_type(kind, dialect)}" for name, kind in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.qualified} "
            f"({cols}, PRIMARY KEY ({', '.join(self.key)}))"
        )


# Arrow types of the portable column kinds (JSON travels as text).
_ARROW_TYPES = {
    "text": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "json": pa.string(),
}


def _sql_type(kind: str, dialect: str) -> str:
    if kind == "json":
        return "JSONB" if dialect == "postgres" else "JSON"
    if kind == "double":
        return "DOUBLE PRECISION"
    return kind.upper()


SOURCE_COLUMNS = (("tenant_id", "text"), ("source_type", "text"), ("source_instance", "text"))
LINEAGE_COLUMNS = (("raw_load_id", "text"), ("ingested_at", "timestamptz"))
SOURCE_KEY = ("tenant_id", "source_type", "source_instance", "external_id")

ITEMS = Table(
    "items",
    (
        *SOURCE_COLUMNS,
        ("external_id", "text"),
        ("title", "text"),
        ("summary", "text"),
        ("url", "text"),
        ("author", "text"),
        ("published_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        *LINEAGE_COLUMNS,
    ),
    SOURCE_KEY,
)

FEEDBACK = Table(
    "feedback",
    (
        *SOURCE_COLUMNS,
        ("external_id", "text"),
        ("thread_id", "text"),
        ("author_id", "text"),
        ("author_name", "text"),
        ("text", "text"),
        ("rating", "integer"),
        ("language", "text"),
        ("url", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        *LINEAGE_COLUMNS,
    ),
    SOURCE_KEY,
)

EVENTS = Table(
    "events",
    (
        *SOURCE_COLUMNS,
        ("event_id", "text"),
        ("event_type", "text"),
        ("occurred_at", "timestamptz"),
        ("item_id", "text"),
        ("author_id", "text"),
        ("actor_id", "text"),
        ("ip", "text"),
        ("session_id", "text"),
        ("properties", "json"),
        *LINEAGE_COLUMNS,
    ),
    ("tenant_id", "event_id"),
)

LOG_RECORDS = Table(
    "log_records",
    (
        ("tenant_id", "text"),
        ("upload_id", "text"),
        ("object_key", "text"),
        ("line_no", "bigint"),
        ("ts", "timestamptz"),
        ("level", "text"),
        ("service", "text"),
        ("message", "text"),
        ("attributes", "json"),
        ("ingested_at", "timestamptz"),
    ),
    ("object_key", "line_no"),
)

UPLOADS = Table(
    "uploads",
    (
        ("upload_id", "text"),
        ("tenant_id", "text"),
        ("kind", "text"),
        ("object_key", "text"),
        ("etag", "text"),  # the object version processed: the same bytes twice are skipped
        ("size_bytes", "bigint"),
        ("status", "text"),
        ("reason", "text"),
        ("rows_loaded", "bigint"),
        ("rows_rejected", "bigint"),
        ("created_at", "timestamptz"),
        ("queued_at", "timestamptz"),
        ("started_at", "timestamptz"),
        ("finished_at", "timestamptz"),
        ("attempts", "integer"),  # runs launched for the upload (the retry bound counts these)
        ("run_key", "text"),  # the run key of the last launch: a run dead before its step
        ("run_id", "text"),  # the run that took it last: a dead run's uploads are found by it
        ("retry_after", "timestamptz"),  # Queued again after a transient fault: not before this
    ),
    ("upload_id",),
)

PAYMENTS = Table(
    "payments",
    (
        ("tenant_id", "text"),
        ("payment_id", "text"),
        ("author_id", "text"),
        ("item_id", "text"),
        ("amount", "bigint"),
        ("currency", "text"),
        ("status", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
    ),
    ("tenant_id", "payment_id"),
)

REJECTED_RECORDS = Table(
    "rejected_records",
    (
        *SOURCE_COLUMNS,
        # Where the rejected row came from (raw table + dlt row id, or object key + line):
        # re-processing the same raw row rewrites its reject instead of adding another.
        ("record_ref", "text"),
        ("reason", "text"),
        ("payload", "text"),
        ("raw_load_id", "text"),
        ("rejected_at", "timestamptz"),
    ),
    ("tenant_id", "source_type", "source_instance", "record_ref"),
)

# Which raw loads have been normalized: the normalized layer consumes each dlt load once,
# and a replay simply forgets these rows.
NORMALIZED_LOADS = Table(
    "normalized_loads",
    (("raw_table", "text"), ("load_id", "text"), ("normalized_at", "timestamptz")),
    ("raw_table", "load_id"),
)

# One row per request to the intake service (`ingest-pipeline serve-intake`): who, which route,
# what was decided and why. Never a secret, a token or a signature header.
INTAKE_AUDIT = Table(
    "intake_audit",
    (
        ("audit_id", "text"),  # uuid4 hex
        ("received_at", "timestamptz"),
        ("tenant_id", "text"),
        ("provider", "text"),  # intercom | stripe | uploads | null (health, metrics, ...)
        ("route", "text"),  # e.g. "POST /webhooks/stripe/{tenant}"
        ("event_id", "text"),  # webhook event id, or the upload id
        ("verdict", "text"),  # accepted | duplicate | rejected | error
        ("status_code", "integer"),
        ("reason", "text"),
        ("object_key", "text"),  # the landed object (or the upload's key)
    ),
    ("audit_id",),
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
)


def init_warehouse(warehouse: Warehouse) -> list[str]:
    """Create the schemas and every normalized table if missing. Idempotent."""
    with warehouse.connect() as con:
        cursor = con if warehouse.dialect == "duckdb" else con.cursor()
        for schema in (NORMALIZED_SCHEMA, METRICS_SCHEMA):
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for table in ALL_TABLES:
            cursor.execute(table.ddl(warehouse.dialect))
        _add_new_columns(cursor, warehouse.dialect)
    return [table.qualified for table in ALL_TABLES]


def _add_new_columns(cursor: Any, dialect: str) -> None:
    """Columns added since a warehouse was created, added to its tables. Looked up first: an
    ALTER TABLE, even a no-op one, would take PostgreSQL's exclusive lock on every call."""
    placeholder = "%s" if dialect == "postgres" else "?"
    cursor.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        f"WHERE table_schema = {placeholder}",
        (NORMALIZED_SCHEMA,),
    )
    existing = set(cursor.fetchall())
    for table in ALL_TABLES:
        for name, kind in table.columns:
            if (table.name, name) not in existing:
                cursor.execute(
                    f"ALTER TABLE {table.qualified} ADD COLUMN {name} {_sql_type(kind, dialect)}"
                )
