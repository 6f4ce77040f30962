"""dbt_metrics as Dagster assets `metrics/<model>`, daily-partitioned, a range in one run.

The partition window reaches dbt as the vars `min_date`/`max_date`; each mart deletes and
re-inserts exactly those days. dbt's YAML tests run in the same `dbt build` and show up as
asset checks. The step writes the warehouse: it is in the warehouse pool, or on PostgreSQL in
the metrics pool (one build at a time either way).

Any subset of the models can be built on a fresh warehouse: the relations a selected model reads
that were never built are created first (staging views as they are, marts empty).

Each table model's materialization carries its row count (`dagster/row_count`; views are not
counted, as dagster-dbt does) and the rows it wrote per day of the window (`rows_written`,
`rows_by_day`), which also go to `normalized.metrics_builds`, one row per run, model and day. The count is ours, not dagster-dbt's `fetch_row_counts()`, which
fails on both targets here: it counts `relation_name` from the manifest parsed at load time
(database "warehouse", the default DuckDB file's stem), which PostgreSQL refuses as a
cross-database reference and another DuckDB file does not have; and on DuckDB its in-process
dbt adapter opens the file with dbt's settings, after which this process cannot open it with
ours ("different configuration"). We count `metrics.<model>` through the warehouse: on
PostgreSQL as each model finishes, on DuckDB after dbt has ended (dbt holds the file until then).
"""

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.domain.entities import METRICS_BUILDS, METRICS_SCHEMA, init_warehouse
from ingest_pipeline.lib.dbt_env import dbt_env_vars
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool
from ingest_pipeline.lib.warehouse import Warehouse

# One metrics build at a time, whoever started it (a sensor, the schedule, a person): two runs
# over the same days would delete and insert each other's rows. On DuckDB the warehouse's own
# pool (one writer) already does it. dagster.yaml gives every pool one slot.
METRICS_POOL = "metrics_build"
# A run of up to this many days records a materialization per day and model (Dagster's own
# way: the UI shows each day built) with the day's row counts; a longer one (a backfill) one
# per model carrying its range (see one_materialization_per_model).
MAX_DAYS_RECORDED_PER_DAY = 31


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
    pool=warehouse_pool() or METRICS_POOL,
)
def metrics_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    variables = window_vars(context)
    context.log.info(f"dbt window {variables['min_date']} .. {variables['max_date']} (exclusive)")
    wh = warehouse.get()
    init_warehouse(wh)  # the dbt sources, on a warehouse nothing was loaded into yet
    with dbt_env_vars(wh):
        create_missing_upstream(context, dbt, wh)
        events = dbt.cli(["build", "--vars", json.dumps(variables)], context=context).stream()
        events = with_build_counts(wh, events, variables, context.run_id)
        if len(context.partition_keys) > MAX_DAYS_RECORDED_PER_DAY:
            events = one_materialization_per_model(context, events)
        yield from events


def one_materialization_per_model(
    context: dg.AssetExecutionContext, events: Iterable[Any]
) -> Iterator[Any]:
    """A long range run's dbt outputs as one materialization per model carrying the range.

    Dagster turns an Output of a range run into one materialization per day and model (365
    days x 16 models = 5,840 event-log writes, about 8.5 ms each on SQLite): that, not dbt,
    was most of a year's backfill (120 s beside dbt's 13-23 s). One event per model names the
    range it rebuilt instead; the price is that the UI's partition view does not count those
    days as materialized (the rows per day are in normalized.metrics_builds)."""
    keys = context.partition_keys
    first, last = keys[0], keys[-1]
    for event in events:
        if isinstance(event, dg.Output):
            yield dg.AssetMaterialization(
                asset_key=context.asset_key_for_output(event.output_name),
                description=f"dbt rebuilt partitions {first} .. {last} ({len(keys)} days)",
                metadata={
                    **event.metadata,
                    "partition_range_start": first,
                    "partition_range_end": last,
                    "partition_count": len(keys),
                },
            )
        else:
            yield event


def create_missing_upstream(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, wh: Warehouse
) -> None:
    """Create the relations the selected models read but that were never built (a subset
    selected on a fresh warehouse): staging views as they are, upstream marts empty (`--empty`,
    their days are not built by this run). A no-op once every relation exists."""
    manifest = json.loads(dbt_project.manifest_path.read_text())
    selected = {
        unique_id
        for unique_id, props in manifest["nodes"].items()
        if props["resource_type"] == "model"
        and MetricsTranslator().get_asset_key(props) in context.selected_asset_keys
    }
    existing = relations(wh, METRICS_SCHEMA)
    missing = [
        props
        for unique_id in upstream_models(manifest, selected) - selected
        if (props := manifest["nodes"][unique_id])["config"]["materialized"] != "ephemeral"
        and props["name"] not in existing
    ]
    views = sorted(p["name"] for p in missing if p["config"]["materialized"] == "view")
    tables = sorted(p["name"] for p in missing if p["config"]["materialized"] != "view")
    for names, flags in ((views, []), (tables, ["--empty"])):
        if names:
            context.log.info(f"creating upstream relations never built: {names}")
            dbt.cli(["run", *flags, "--select", *names], manifest=manifest).wait()


def upstream_models(manifest: dict[str, Any], models: set[str]) -> set[str]:
    """Every model the given ones read, directly or not."""
    found: set[str] = set()
    todo = list(models)
    while todo:
        for parent in manifest["nodes"][todo.pop()]["depends_on"]["nodes"]:
            if parent.startswith("model.") and parent not in found:
                found.add(parent)
                todo.append(parent)
    return found


def relations(wh: Warehouse, schema: str) -> set[str]:
    """The names of the tables and views in `schema`."""
    rows = wh.fetch_all(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    return {name for (name,) in rows}


def with_build_counts(
    wh: Warehouse, events: Iterable[Any], window: dict[str, str], run_id: str
) -> Iterator[Any]:
    """dbt's events, each table model's materialization with its rows (in all, and written per
    day of the window) added; the rows per day also go to normalized.metrics_builds."""
    if wh.sql_dialect.single_process:
        events = list(events)  # dbt releases the DuckDB file only when it exits
    built: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for event in events:
        if isinstance(event, dg.Output | dg.AssetMaterialization):
            model = _model_name(event)
            counts = table_counts(wh, METRICS_SCHEMA, model, window)
            if counts is not None:
                total, by_day = counts
                event = event.with_metadata({**event.metadata, **build_metadata(total, by_day)})
                built += [
                    {
                        "run_id": run_id,
                        "model": model,
                        "metric_date": day,
                        "rows_written": rows,
                        "built_at": now,
                    }
                    for day, rows in by_day.items()
                ]
        yield event
    wh.upsert(METRICS_BUILDS, built)


def build_metadata(total: int, by_day: dict[str, int]) -> dict[str, Any]:
    """The row counts a model's materialization shows; the per-day counts of a long range only
    in normalized.metrics_builds (Dagster copies the metadata to every partition of the range)."""
    metadata: dict[str, Any] = {
        "dagster/row_count": total,
        "rows_written": sum(by_day.values()),
    }
    if len(by_day) <= MAX_DAYS_RECORDED_PER_DAY:
        metadata["rows_by_day"] = dg.MetadataValue.json(by_day)
    return metadata


def table_counts(
    wh: Warehouse, schema: str, name: str, window: dict[str, str]
) -> tuple[int, dict[str, int]] | None:
    """The rows of `schema.name` in all and per day of the window, if it is a table (None for
    a view or no relation at all). Asked per model, as each finishes: on a first build the
    marts appear one after another."""
    [(is_table,)] = wh.fetch_all(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = %s AND table_name = %s AND table_type = 'BASE TABLE'",
        (schema, name),
    )
    if not is_table:
        return None
    [(total,)] = wh.fetch_all(f'SELECT count(*) FROM {schema}."{name}"')
    rows = wh.fetch_all(
        f'SELECT metric_date, count(*) FROM {schema}."{name}" '
        "WHERE metric_date >= CAST(%s AS DATE) AND metric_date < CAST(%s AS DATE) "
        "GROUP BY metric_date ORDER BY metric_date",
        (window["min_date"], window["max_date"]),
    )
    return int(total), {str(day): int(count) for day, count in rows}


def _model_name(event: dg.Output | dg.AssetMaterialization) -> str:
    """The dbt model's name, from the unique id dagster-dbt puts on every event of a node."""
    unique_id = event.metadata.get("unique_id")
    value = getattr(unique_id, "value", unique_id)
    return str(value).rsplit(".", 1)[-1] if value else ""
