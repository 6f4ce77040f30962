"""Materialization metadata shared by the normalized assets: what the UI shows for each run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import dagster as dg

from ingest_pipeline.domain.entities import REJECTED_RECORDS, Table
from ingest_pipeline.domain.touched_days import touched_days, touched_days_metadata
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sources.dlt_pipelines import raw_dataset

PREVIEW_ROWS = 10
MAX_PREVIEW_COLUMNS = 8


def raw_columns(wh: Warehouse, source_types: Iterable[str]) -> dict[str, list[str]]:
    """Column lists of every raw table: what the schema-drift check compares run to run."""
    return {
        f"{raw_dataset(t)}.{table}": names
        for t in source_types
        for table, names in wh.table_columns(raw_dataset(t)).items()
        if not table.startswith("_dlt")
    }


def preview_markdown(wh: Warehouse, table: Table, order_by: str) -> str:
    """The newest rows of a normalized table as a Markdown table."""
    columns = table.column_names[:MAX_PREVIEW_COLUMNS]
    rows = wh.fetch_all(
        f"SELECT {', '.join(columns)} FROM {table.qualified} ORDER BY {order_by} "
        f"LIMIT {PREVIEW_ROWS}"
    )
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = ("" if v is None else str(v)[:60].replace("|", "\\|") for v in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def normalized_metadata(
    wh: Warehouse,
    table: Table,
    source_types: Iterable[str],
    per_instance: Mapping[str, Mapping[str, int]],
    order_by: str,
    started: datetime,
) -> dict[str, Any]:
    """A normalized asset's metadata: this run's counts (in total and per `type:tenant.instance`),
    the table's and the rejects' sizes, the raw columns (for the schema-drift check), a preview,
    and the metrics days the rows written since `started` touched."""
    wrote = any(v["normalized"] or v["rejected"] for v in per_instance.values())
    days = touched_days(wh, [table.name], started, wrote)
    [(total,)] = wh.fetch_all(f"SELECT count(*) FROM {table.qualified}")
    [(rejected,)] = wh.fetch_all(f"SELECT count(*) FROM {REJECTED_RECORDS.qualified}")
    return {
        "rows_normalized": sum(v["normalized"] for v in per_instance.values()),
        "rows_rejected": sum(v["rejected"] for v in per_instance.values()),
        "per_instance": dg.MetadataValue.json(dict(per_instance)),
        "dagster/row_count": dg.MetadataValue.int(total),
        "rejected_records_total": dg.MetadataValue.int(rejected),
        "raw_columns": dg.MetadataValue.json(raw_columns(wh, source_types)),
        "preview": dg.MetadataValue.md(preview_markdown(wh, table, order_by)),
        **touched_days_metadata(days),
    }
