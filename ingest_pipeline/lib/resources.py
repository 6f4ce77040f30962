"""Dagster resources shared by every source: the warehouse, resolved from settings at run time."""

from __future__ import annotations

import dagster as dg

from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse named by `INGEST_WAREHOUSE_URL` (empty: the embedded DuckDB default)."""

    url: str = ""

    def get(self, lock_wait_seconds: float | None = None) -> Warehouse:
        """The warehouse; `lock_wait_seconds` bounds a wait for a busy DuckDB file (a sensor
        tick must end well within Dagster's evaluation timeout)."""
        return Warehouse(self.url or get_settings().resolved_warehouse_url, lock_wait_seconds)


# DuckDB takes one writer at a time: every step that writes the warehouse is in this Dagster
# concurrency pool (dagster.yaml gives pools a limit of 1), so runs wait for each other instead
# of colliding on the file lock. PostgreSQL keeps its parallelism: no pool.
DUCKDB_POOL = "duckdb_warehouse"


# Run monitoring ends a run that exceeds its job's maximum runtime (dagster.yaml has the
# monitoring on): the default run launcher cannot see a killed run process, so this is what ends
# a dead run and frees its slots. Loads and landings take seconds to minutes; a metrics backfill
# of a year a few minutes; the caps are generous multiples of that.
LOAD_MAX_RUNTIME_SECONDS = 600
METRICS_MAX_RUNTIME_SECONDS = 3600


# A run in one of these has not ended: it still holds (or waits for) a slot.
UNFINISHED_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def max_runtime_tags(seconds: int) -> dict[str, str]:
    return {"dagster/max_runtime": str(seconds)}


def warehouse_pool() -> str | None:
    """The pool of warehouse-writing steps under the current settings (read at load time)."""
    warehouse = Warehouse(get_settings().resolved_warehouse_url)
    return DUCKDB_POOL if warehouse.sql_dialect.single_process else None


def normalize_pool(entity: str) -> str:
    """The pool of `normalized/<entity>`'s step: the warehouse pool on DuckDB, else one pool per
    entity (`normalize_<entity>`, limit 1 in dagster.yaml). A normalize run takes every pending
    raw load of its entity, so two at once would read the same loads and redo each other's
    work; in the pool the second waits and finds nothing left to do."""
    return warehouse_pool() or f"normalize_{entity}"
