"""Shared dlt plumbing: one pipeline per source instance, instance columns on every raw row."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.runtime.collector import LogCollector

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import Settings

# Every raw row carries the instance it came from, so raw tables can be shared between
# tenants without their rows mixing, and the normalized layer knows whose row it reads.
TENANT_COLUMN = "_tenant_id"
INSTANCE_COLUMN = "_source_instance"


LOG_PROGRESS = LogCollector(log_period=10.0, logger=sys.stderr, dump_system_stats=False)


def raw_dataset(source_type: str) -> str:
    return f"raw_{source_type}"


def instance_pipeline(
    instance: SourceInstance, settings: Settings, run_log: logging.Logger | None = None
) -> dlt.Pipeline:
    """The dlt pipeline of one source instance: its own name, so its own incremental state.
    `run_log`: the log of the run it loads in (Dagster's `context.log`), for its progress."""
    # Arrow batches skip dlt's row normalizer; the load id is what lineage and the normalized
    # layer's bookkeeping stand on, so have dlt add it to Arrow rows too.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    return dlt.pipeline(
        pipeline_name=instance.pipeline_name,
        pipelines_dir=str((settings.data_dir / "dlt").resolve()),
        destination=Warehouse(settings.resolved_warehouse_url).dlt_destination(),
        dataset_name=raw_dataset(instance.type),
        progress=_progress(settings, run_log),
    )


def _progress(settings: Settings, run_log: logging.Logger | None) -> Any:
    """dlt's progress: a bar on a terminal, plain lines otherwise (dlt's own collectors). With
    INGEST_LOG_FORMAT=json, messages of the run's log: each one JSON line with the run's
    context (defs/run_logs.py), not lines of text among them."""
    if settings.log_format == "json" and run_log is not None:
        return LogCollector(log_period=10.0, logger=run_log, dump_system_stats=False)
    return "tqdm" if sys.stderr.isatty() else LOG_PROGRESS


def spec_pipeline(source_type: str) -> dlt.Pipeline:
    """A destination-less pipeline used only to describe assets at definition time."""
    return dlt.pipeline(pipeline_name=f"{source_type}__spec", dataset_name=raw_dataset(source_type))


def instance_columns(instance: SourceInstance) -> Callable[[Any], Any]:
    """A dlt map step adding tenant and instance columns to dict rows or Arrow batches, and
    pseudonymizing what the instance's privacy rules name unless its tenant keeps raw as sent
    (domain/privacy.py)."""
    private = raw_privacy(instance)

    def add(item: Any) -> Any:
        if isinstance(item, pa.Table | pa.RecordBatch):
            n = item.num_rows
            item = item.append_column(TENANT_COLUMN, pa.array([instance.tenant] * n, pa.string()))
            item = item.append_column(INSTANCE_COLUMN, pa.array([instance.name] * n, pa.string()))
        else:
            item = {**item, TENANT_COLUMN: instance.tenant, INSTANCE_COLUMN: instance.name}
        return private(item) if private else item

    return add


def raw_privacy(instance: SourceInstance) -> Callable[[Any], Any] | None:
    """The instance's raw rows as raw may keep them: each mapped as the normalizer maps it,
    then the values that became personal fields pseudonymized where they are (Pseudonymizer.
    raw_row, raw_table). None when nothing is personal or the tenant keeps raw as sent. The
    key is read here: an unset one fails the instance's run before anything is loaded."""
    rules = instance.privacy
    if rules is None or rules.keep_raw:
        return None
    pseudonymizer = rules.pseudonymizer()
    kind = SOURCE_TYPES[instance.type]
    mapper, batch_mapper = kind.mapper, kind.batch_mapper

    def row(raw: dict[str, Any]) -> dict[str, Any]:
        try:
            mapped = mapper(raw, instance)
        except Exception:  # a row its mapper cannot read: a reject later; addresses still go
            mapped = {}
        return pseudonymizer.raw_row(raw, mapped)

    def scrub(item: Any) -> Any:
        if not isinstance(item, pa.Table | pa.RecordBatch):
            return row(item)
        table = pa.Table.from_batches([item]) if isinstance(item, pa.RecordBatch) else item
        mapped = batch_mapper(table, instance) if batch_mapper else None
        if mapped is not None:
            return pseudonymizer.raw_table(table, mapped)
        return pa.Table.from_pylist([row(r) for r in table.to_pylist()], schema=table.schema)

    return scrub


def instance_key(*columns: str) -> tuple[str, ...]:
    """A raw table's primary key: the instance columns plus the platform's own id."""
    return (TENANT_COLUMN, INSTANCE_COLUMN, *columns)


def for_instance(resource: Any, instance: SourceInstance | None) -> Any:
    """The resource with instance columns on its rows (untouched for the definition-time spec)."""
    return resource if instance is None else resource.add_map(instance_columns(instance))
