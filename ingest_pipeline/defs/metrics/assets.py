"""dbt_metrics as Dagster assets `metrics/<model>`, daily-partitioned, a range in one run.

The partition window reaches dbt as the vars `min_date`/`max_date`; each mart deletes and
re-inserts exactly those days. dbt's YAML tests run in the same `dbt build` and show up as
asset checks.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.lib.dbt_env import dbt_env_vars
from ingest_pipeline.lib.resources import WarehouseResource


class MetricsTranslator(DagsterDbtTranslator):
    """Models are `metrics/<model>`; the dbt sources are the normalized assets they read."""

    def get_asset_key(self, dbt_resource_props: dict[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(["normalized", dbt_resource_props["name"]])
        return dg.AssetKey(["metrics", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: dict[str, Any]) -> str:
        return "metrics"


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
)
def metrics_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    variables = window_vars(context)
    context.log.info(f"dbt window {variables['min_date']} .. {variables['max_date']} (exclusive)")
    with dbt_env_vars(warehouse.get()):
        yield from dbt.cli(["build", "--vars", json.dumps(variables)], context=context).stream()
