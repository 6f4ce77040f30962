"""dbt's connection, derived from INGEST_WAREHOUSE_URL (dbt_metrics/profiles.yml reads DBT_*)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ingest_pipeline.lib.warehouse import Warehouse


def dbt_environment(warehouse: Warehouse) -> dict[str, str]:
    """The DBT_* variables of the warehouse's own database (its dialect knows them)."""
    return warehouse.sql_dialect.dbt_environment()


@contextlib.contextmanager
def dbt_env_vars(warehouse: Warehouse) -> Iterator[None]:
    """Set the DBT_* variables for the dbt subprocesses started inside, then restore them."""
    values = dbt_environment(warehouse)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
