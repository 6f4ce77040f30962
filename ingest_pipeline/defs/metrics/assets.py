"""dbt_metrics as Dagster assets `metrics/<model>`, daily-partitioned, a range in one run.

The partition window reaches dbt as the vars `min_date`/`max_date`; each mart deletes and
re-inserts exactly those days. dbt's YAML tests run in the same `dbt build` and show up as
asset checks. Each model's materialization carries its table's row count (`dagster/row_count`,
dagster-dbt's `fetch_row_counts`; views are not counted). On DuckDB dagster-dbt waits for the dbt
process to end (and release the file) before counting, so counts come after the build, not
during it. The step writes the warehouse: it is in the warehouse pool.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.lib.dbt_env import dbt_env_vars
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool


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
        invocation = dbt.cli(["build", "--vars", json.dumps(variables)], context=context)
        yield from invocation.stream().fetch_row_counts()
