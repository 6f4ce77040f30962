"""Dagster resources shared by every source: the warehouse, resolved from settings at run time."""

from __future__ import annotations

import dagster as dg

from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse named by `INGEST_WAREHOUSE_URL` (empty: the embedded DuckDB default)."""

    url: str = ""

    def get(self) -> Warehouse:
        return Warehouse(self.url or get_settings().resolved_warehouse_url)
