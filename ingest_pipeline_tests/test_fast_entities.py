"""Fast tier: each entity declared once; its row type, Arrow schema, DDL, key and content columns
agree; the warehouse URL chooses its dialect (no warehouse)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pytest
from pydantic import ValidationError
from typing_extensions import TypedDict

from ingest_pipeline.domain.entities import (
    ALL_TABLES,
    EVENTS,
    ITEMS,
    LOG_RECORDS,
    NORMALIZED_LOADS,
    REJECTED_RECORDS,
    UPLOADS,
    BigInt,
    IngestedAt,
    Kind,
    LoadId,
    entity,
)
from ingest_pipeline.lib.dbt_env import dbt_environment
from ingest_pipeline.lib.dialects import DuckDBDialect, PostgresDialect
from ingest_pipeline.lib.warehouse import Warehouse

DIALECTS = [DuckDBDialect(Path("unused.duckdb")), PostgresDialect("postgresql://unused/db")]


@pytest.mark.parametrize("table", ALL_TABLES, ids=lambda t: t.name)
def test_row_type_arrow_schema_and_ddl_name_the_same_columns_in_order(table) -> None:
    fields = list(table.row_type.__annotations__)
    assert table.column_names == fields
    assert table.arrow_schema.names == fields
    assert table.to_arrow([]).schema == table.arrow_schema
    assert set(table.key) <= set(fields) and set(table.content_columns) <= set(fields)
    for dialect in DIALECTS:
        ddl = table.ddl(dialect)
        listed = ddl[ddl.index("(") + 1 : ddl.index(", PRIMARY KEY")]
        assert [c.split()[0] for c in listed.split(", ")] == fields
        assert ddl.endswith(f"PRIMARY KEY ({', '.join(table.key)}))")


def test_kinds_follow_the_python_type_unless_annotated() -> None:
    kinds = {c.name: c.kind for c in EVENTS.columns}
    assert (kinds["event_id"], kinds["occurred_at"], kinds["properties"]) == (
        "text",
        "timestamptz",
        "json",
    )
    assert EVENTS.arrow_schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")
    assert {c.name: c.kind for c in LOG_RECORDS.columns}["line_no"] == "bigint"
    assert {c.name: c.kind for c in UPLOADS.columns}["attempts"] == "integer"
    duck, postgres = DIALECTS
    assert "properties JSON," in EVENTS.ddl(duck)
    assert "properties JSONB," in EVENTS.ddl(postgres)
    assert "line_no BIGINT" in LOG_RECORDS.ddl(postgres)


def test_content_columns_are_neither_key_nor_lineage_unless_declared() -> None:
    assert ITEMS.key == ("tenant_id", "source_type", "source_instance", "external_id")
    assert ITEMS.content_columns == (
        "title",
        "summary",
        "url",
        "author",
        "published_at",
        "updated_at",
    )
    assert "ingested_at" not in LOG_RECORDS.content_columns
    # A reject's load id is not lineage: every non-key column of a reject is content.
    assert REJECTED_RECORDS.content_columns == ("reason", "payload", "raw_load_id", "rejected_at")
    assert NORMALIZED_LOADS.content_columns == ()  # a mark is written once


def test_the_validator_is_the_row_type_with_its_constraints() -> None:
    record = {
        "tenant_id": "acme",
        "source_type": "rss",
        "source_instance": "blog",
        "external_id": 7,
        "raw_load_id": "1",
        "ingested_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert ITEMS.validator.validate_python(record)["external_id"] == "7"
    for broken in ({"external_id": ""}, {"url": "mailto:x"}, {"extra": 1}):
        with pytest.raises(ValidationError):
            ITEMS.validator.validate_python(record | broken)
    without_lineage = {k: v for k, v in record.items() if k != "raw_load_id"}
    with pytest.raises(ValidationError, match="raw_load_id"):
        ITEMS.validator.validate_python(without_lineage)


def test_entity_derives_a_table_from_any_typed_dict() -> None:
    class Thing(TypedDict, total=False):
        id: str
        size: BigInt | None
        score: float | None
        tags: Annotated[str, Kind("json")] | None
        seen: datetime | None
        raw_load_id: LoadId
        ingested_at: IngestedAt

    things = entity(Thing, table="things", key=("id",))
    assert [(c.name, c.kind) for c in things.columns] == [
        ("id", "text"),
        ("size", "bigint"),
        ("score", "double"),
        ("tags", "json"),
        ("seen", "timestamptz"),
        ("raw_load_id", "text"),
        ("ingested_at", "timestamptz"),
    ]
    assert things.content_columns == ("size", "score", "tags", "seen")
    assert "score DOUBLE PRECISION" in things.ddl(DIALECTS[1])
    with pytest.raises(ValueError, match="no such columns"):
        entity(Thing, table="things", key=("missing",))


def test_the_warehouse_url_chooses_its_dialect() -> None:
    duck = Warehouse("duckdb:///data/wh.duckdb", lock_wait_seconds=3)
    assert duck.sql_dialect == DuckDBDialect(Path("data/wh.duckdb"), 3)
    assert duck.dialect == "duckdb"
    assert dbt_environment(duck) == {"DBT_TARGET": "duckdb", "DBT_DUCKDB_PATH": "data/wh.duckdb"}
    postgres = Warehouse("postgresql+psycopg2://u:p%40ss@db.test:6543/wh")
    assert postgres.sql_dialect == PostgresDialect("postgresql://u:p%40ss@db.test:6543/wh")
    assert dbt_environment(postgres) == {
        "DBT_TARGET": "postgres",
        "DBT_PG_HOST": "db.test",
        "DBT_PG_PORT": "6543",
        "DBT_PG_USER": "u",
        "DBT_PG_PASSWORD": "p@ss",
        "DBT_PG_DBNAME": "wh",
    }
    with pytest.raises(ValueError, match="unsupported warehouse URL scheme"):
        _ = Warehouse("sqlite:///x.db").dialect
