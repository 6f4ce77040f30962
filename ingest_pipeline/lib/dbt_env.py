"""dbt's connection, derived from INGEST_WAREHOUSE_URL (dbt_metrics/profiles.yml reads DBT_*)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from ingest_pipeline.lib.warehouse import Warehouse


def dbt_environment(warehouse: Warehouse) -> dict[str, str]:
    if warehouse.dialect == "duckdb":
        return {"DBT_TARGET": "duckdb", "DBT_DUCKDB_PATH": str(warehouse.duckdb_path)}
    parts = urlsplit(warehouse.postgres_dsn)
    return {
        "DBT_TARGET": "postgres",
        "DBT_PG_HOST": parts.hostname or "127.0.0.1",
        "DBT_PG_PORT": str(parts.port or 5432),
        "DBT_PG_USER": unquote(parts.username or "postgres"),
        "DBT_PG_PASSWORD": unquote(parts.password or ""),
        "DBT_PG_DBNAME": parts.path.lstrip("/") or "postgres",
    }


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
