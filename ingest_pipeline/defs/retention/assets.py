"""`operations/retention`: each tenant's rows older than its retention windows, deleted daily.

The asset is the act of applying retention (domain/retention.py): its materialization records
what it removed, per tenant and window, so the UI shows what each day's run deleted. The job
`retention_daily` runs it at 02:00 UTC under the daemon; it writes the warehouse, so it is in the
warehouse pool.
"""

from __future__ import annotations

import dagster as dg

from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.retention import (
    apply_retention,
    child_tables,
    delete_orphans,
    tenant_windows,
)
from ingest_pipeline.lib.resources import (
    LOAD_MAX_RUNTIME_SECONDS,
    WarehouseResource,
    max_runtime_tags,
    warehouse_pool,
)
from ingest_pipeline.lib.source_types import type_names
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.dlt_pipelines import TENANT_COLUMN, raw_dataset


def raw_child_tables(wh: Warehouse) -> dict[str, str]:
    """dlt's child tables of the raw datasets (schema.table): their root tables."""
    return {
        f"{raw_dataset(source_type)}.{child}": f"{raw_dataset(source_type)}.{root}"
        for source_type in type_names()
        for child, root in child_tables(wh.table_columns(raw_dataset(source_type))).items()
    }


def raw_tables_with_tenant(wh: Warehouse) -> list[str]:
    """The raw dlt tables (schema.table) that hold the tenant column and the load id."""
    return [
        f"{raw_dataset(source_type)}.{table}"
        for source_type in type_names()
        for table, columns in wh.table_columns(raw_dataset(source_type)).items()
        if TENANT_COLUMN in columns and "_dlt_load_id" in columns
    ]


@dg.asset(
    key=["operations", "retention"],
    group_name="operations",
    kinds={"python"},
    pool=warehouse_pool(),
    description="Deletes each tenant's rows older than its retention windows (raw 90d, rejects "
    "30d, audit 30d, events 365d, log records 30d unless its `retention:` block says otherwise),"
    " in bounded batches; records what it removed.",
)
def retention(warehouse: WarehouseResource) -> dg.MaterializeResult:
    settings = get_settings()
    wh = warehouse.get()
    init_warehouse(wh)
    windows = tenant_windows(settings.tenants_file, settings)
    removed = apply_retention(wh, windows, raw_tables_with_tenant(wh), TENANT_COLUMN)
    orphans = delete_orphans(wh, raw_child_tables(wh))
    return dg.MaterializeResult(
        metadata={
            "rows_removed": sum(sum(counts.values()) for counts in removed.values()) + orphans,
            "removed": dg.MetadataValue.json(removed),
            "raw_child_rows": dg.MetadataValue.int(orphans),
            "windows": dg.MetadataValue.json(
                {tenant: {k: str(v) for k, v in w.items()} for tenant, w in windows.items()}
            ),
        }
    )


retention_daily_job = dg.define_asset_job(
    "retention_daily",
    selection=[retention.key],
    tags=max_runtime_tags(LOAD_MAX_RUNTIME_SECONDS),
    description="Delete what each tenant's retention windows no longer keep.",
)

retention_daily_schedule = dg.ScheduleDefinition(
    job=retention_daily_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
