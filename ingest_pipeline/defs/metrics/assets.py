"""dbt_metrics as Dagster assets `metrics/<model>`, daily-partitioned, a range in one run.

The partition window reaches dbt as the vars `min_date`/`max_date`; each mart deletes and
re-inserts exactly those days. dbt's YAML tests run in the same `dbt build` and show up as
asset checks. The step writes the warehouse: it is in the warehouse pool.

Each table model's materialization carries its row count (`dagster/row_count`; views are not
counted, as dagster-dbt does). The count is ours, not dagster-dbt's `fetch_row_counts()`, which
fails on both targets here: it counts `relation_name` from the manifest parsed at load time
(database "warehouse", the default DuckDB file's stem), which PostgreSQL refuses as a
cross-database reference and another DuckDB file does not have; and on DuckDB its in-process
dbt adapter opens the file with dbt's settings, after which this process cannot open it with
ours ("different configuration"). We count `metrics.<model>` through the warehouse: on
PostgreSQL as each model finishes, on DuckDB after dbt has ended (dbt holds the file until then).
"""

import json
from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.lib.dbt_env import dbt_env_vars
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool
from ingest_pipeline.lib.warehouse import Warehouse

METRICS_SCHEMA = "metrics"


class MetricsTranslator(DagsterDbtTranslator):
    """Models are `metrics/<model>`; the dbt sources are the normalized assets they read."""

    def get_asset_key(self, dbt_resource_props: dict[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["normalized", dbt_resource_props["name"]])
        return dg.AssetKey(["metrics", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: dict[str, Any]) -> str:
        return "metrics"

    def get_description(self, dbt_resource_props: dict[str, Any]) -> str:
        # dagster-dbt falls back to the model's SQL, which is not a description.
        own = (dbt_resource_props.get("description") or "").strip()
        if own:
            return own
        name = dbt_resource_props["name"]
        layer = (dbt_resource_props.get("fqn") or ["", name])[-2]
        materialized = dbt_resource_props.get("config", {}).get("materialized", "model")
        return f"dbt {layer} {materialized} `{name}` (dbt_metrics/models/{dbt_resource_props['path']})."


def window_vars(context: dg.AssetExecutionContext) -> dict[str, str]:
    window = context.partition_time_window
    return {"min_date": window.start.date().isoformat(), "max_date": window.end.date().isoformat()}


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    name="dbt_metrics",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=MetricsTranslator(),
    pool=warehouse_pool(),
)
def metrics_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    variables = window_vars(context)
    context.log.info(f"dbt window {variables['min_date']} .. {variables['max_date']} (exclusive)")
    with dbt_env_vars(warehouse.get()):
        events = dbt.cli(["build", "--vars", json.dumps(variables)], context=context).stream()
        yield from with_row_counts(warehouse.get(), events)


def with_row_counts(wh: Warehouse, events: Iterable[Any]) -> Iterator[Any]:
    """dbt's events, each table model's materialization with `dagster/row_count` added."""
    if wh.sql_dialect.single_process:
        events = list(events)  # dbt releases the DuckDB file only when it exits
    for event in events:
        if isinstance(event, dg.Output | dg.AssetMaterialization):
            count = table_row_count(wh, METRICS_SCHEMA, _model_name(event))
            if count is not None:
                event = event.with_metadata({**event.metadata, "dagster/row_count": count})
        yield event


def table_row_count(wh: Warehouse, schema: str, name: str) -> int | None:
    """Rows of `schema.name` if it is a table (None for a view or no relation at all).

    Asked per model, as each finishes: on a first build the marts appear one after another."""
    [(is_table,)] = wh.fetch_all(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = %s AND table_name = %s AND table_type = 'BASE TABLE'",
        (schema, name),
    )
    if not is_table:
        return None
    [(count,)] = wh.fetch_all(f'SELECT count(*) FROM {schema}."{name}"')
    return int(count)


def _model_name(event: dg.Output | dg.AssetMaterialization) -> str:
    """The dbt model's name, from the unique id dagster-dbt puts on every event of a node."""
    unique_id = event.metadata.get("unique_id")
    value = getattr(unique_id, "value", unique_id)
    return str(value).rsplit(".", 1)[-1] if value else ""
