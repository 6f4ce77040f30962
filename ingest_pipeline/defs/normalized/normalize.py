"""Raw → normalized: read raw loads not yet normalized, map, validate, upsert; reject the rest.

One engine for every entity (items, feedback, ...): an `Entity` names its table, its pydantic
adapter and the columns whose change makes a row "updated".

Each dlt load of a raw table is consumed once (tracked in `normalized.normalized_loads`); a replay
forgets that tracking and rebuilds the normalized rows from raw alone, without calling a source.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ingest_pipeline.defs.normalized.mappers import Mapper
from ingest_pipeline.defs.normalized.models import FEEDBACK, ITEM, blank_to_none
from ingest_pipeline.lib.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN, raw_dataset
from ingest_pipeline.lib.normalized_tables import FEEDBACK as FEEDBACK_TABLE
from ingest_pipeline.lib.normalized_tables import (
    ITEMS,
    NORMALIZED_LOADS,
    REJECTED_RECORDS,
    Table,
)
from ingest_pipeline.lib.tenants import SourceInstance
from ingest_pipeline.lib.warehouse import Warehouse

BATCH_ROWS = 50_000
REJECT_CONTENT_COLUMNS = ("reason", "payload")


@dataclass(frozen=True)
class Entity:
    name: str
    table: Table
    adapter: TypeAdapter


ENTITIES = {
    "items": Entity("items", ITEMS, ITEM),
    "feedback": Entity("feedback", FEEDBACK_TABLE, FEEDBACK),
}


@dataclass
class NormalizeStats:
    """Rows normalized and rejected, per `tenant.instance` of one source type."""

    normalized: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    loads: int = 0


def normalize_source_type(
    warehouse: Warehouse,
    entity: Entity,
    source_type: str,
    mapper: Mapper,
    instances: Iterable[SourceInstance],
    replay: bool = False,
) -> NormalizeStats:
    stats = NormalizeStats()
    by_key = {(i.tenant, i.name): i for i in instances}
    ingested_at = datetime.now(UTC)

    def normalize_batch(rows: list[dict[str, Any]], qualified: str) -> None:
        records, rejects = _validate(
            rows, qualified, entity, source_type, mapper, by_key, ingested_at
        )
        warehouse.upsert(
            entity.table.qualified,
            entity.table.to_arrow(records),
            entity.table.key,
            entity.table.content_columns,
        )
        upsert_rejects(warehouse, rejects)
        stats.normalized.update(f"{r['tenant_id']}.{r['source_instance']}" for r in records)
        stats.rejected.update(f"{r['tenant_id']}.{r['source_instance']}" for r in rejects)

    stats.loads = consume_pending_loads(warehouse, source_type, replay, normalize_batch)
    return stats


def consume_pending_loads(
    warehouse: Warehouse,
    source_type: str,
    replay: bool,
    normalize_batch: Callable[[list[dict[str, Any]], str], None],
) -> int:
    """Hand every row of the raw loads not yet normalized (every load, with `replay`) to
    `normalize_batch(rows, raw_table)` in batches of BATCH_ROWS, then record those loads as
    normalized. Returns how many loads were consumed."""
    loads = 0
    schema = raw_dataset(source_type)
    for table, columns in instance_tables(warehouse, schema).items():
        qualified = f"{schema}.{table}"
        load_ids = pending_loads(warehouse, qualified, replay)
        if not load_ids:
            continue
        query = raw_rows_query(qualified, columns, load_ids)
        for rows in warehouse.iter_dict_batches(query, BATCH_ROWS):
            normalize_batch(rows, qualified)
        mark_normalized(warehouse, qualified, load_ids)
        loads += len(load_ids)
    return loads


def instance_tables(warehouse: Warehouse, schema: str) -> dict[str, list[str]]:
    """Raw tables holding instance rows (dlt's own tables and child tables have no tenant)."""
    return {
        table: columns
        for table, columns in sorted(warehouse.table_columns(schema).items())
        if TENANT_COLUMN in columns and not table.startswith("_dlt")
    }


def raw_rows_query(qualified: str, columns: list[str], load_ids: list[str]) -> str:
    """Every row of these loads of a raw table, in load (and file line) order."""
    order = "_dlt_load_id, _file, _line" if "_file" in columns else "_dlt_load_id"
    in_list = ", ".join(f"'{load_id}'" for load_id in load_ids)  # dlt load ids are numeric
    return f"SELECT * FROM {qualified} WHERE _dlt_load_id IN ({in_list}) ORDER BY {order}"


def upsert_rejects(warehouse: Warehouse, rejects: list[dict[str, Any]]) -> None:
    """Write reject rows (a re-processed raw row rewrites its own reject)."""
    warehouse.upsert(
        REJECTED_RECORDS.qualified,
        REJECTED_RECORDS.to_arrow(dedupe_rejects(rejects)),
        REJECTED_RECORDS.key,
        REJECT_CONTENT_COLUMNS,
    )


def pending_loads(warehouse: Warehouse, qualified: str, replay: bool) -> list[str]:
    done = (
        ""
        if replay
        else (
            f" EXCEPT SELECT load_id FROM {NORMALIZED_LOADS.qualified} WHERE raw_table = '{qualified}'"
        )
    )
    rows = warehouse.fetch_all(f"SELECT DISTINCT _dlt_load_id FROM {qualified}{done}")
    return sorted(row[0] for row in rows)


def mark_normalized(warehouse: Warehouse, qualified: str, load_ids: list[str]) -> None:
    now = datetime.now(UTC)
    marks = [{"raw_table": qualified, "load_id": i, "normalized_at": now} for i in load_ids]
    warehouse.upsert(
        NORMALIZED_LOADS.qualified, NORMALIZED_LOADS.to_arrow(marks), NORMALIZED_LOADS.key, ()
    )


def _validate(
    rows: list[dict[str, Any]],
    qualified: str,
    entity: Entity,
    source_type: str,
    mapper: Mapper,
    instances: Mapping[tuple[str, str], SourceInstance],
    ingested_at: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # Keyed by natural key: the last version of a record within a batch wins (one upsert
    # statement cannot touch the same row twice).
    records: dict[tuple[str, ...], dict[str, Any]] = {}
    rejects: list[dict[str, Any]] = []
    for row in rows:
        tenant, name = row[TENANT_COLUMN], row[INSTANCE_COLUMN]
        instance = instances.get((tenant, name))
        try:
            if instance is None:
                raise ValueError(f"{source_type} source {tenant}.{name} is not in the tenants file")
            fields = blank_to_none(mapper(row, instance))
            record = entity.adapter.validate_python(
                {
                    **fields,
                    "tenant_id": tenant,
                    "source_type": source_type,
                    "source_instance": name,
                    "raw_load_id": row["_dlt_load_id"],
                    "ingested_at": ingested_at,
                }
            )
        except (ValidationError, ValueError, TypeError) as exc:
            rejects.append(reject_row(row, qualified, source_type, exc, ingested_at))
            continue
        records[tuple(record[k] for k in entity.table.key)] = record
    return list(records.values()), dedupe_rejects(rejects)


def reject_row(
    row: Mapping[str, Any], qualified: str, source_type: str, exc: Exception, at: datetime
) -> dict[str, Any]:
    payload = {k: v for k, v in row.items() if not k.startswith("_dlt")}
    return {
        "tenant_id": row[TENANT_COLUMN],
        "source_type": source_type,
        "source_instance": row[INSTANCE_COLUMN],
        "record_ref": f"{qualified}:{_row_ref(row)}",
        "reason": rejection_reason(exc),
        "payload": json.dumps(payload, default=str, sort_keys=True),
        "raw_load_id": row["_dlt_load_id"],
        "rejected_at": at,
    }


def _row_ref(row: Mapping[str, Any]) -> str:
    # A file line is stable across re-loads of the same file; otherwise dlt's row id.
    if "_file" in row and "_line" in row:
        return f"{row['_file']}:{row['_line']}"
    return str(row["_dlt_id"])


def dedupe_rejects(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({tuple(r[k] for k in REJECTED_RECORDS.key): r for r in rejects}.values())


def rejection_reason(exc: Exception) -> str:
    """Why a record was rejected: pydantic's errors as `field: message`, else the message."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
