"""dbt source freshness of the normalized tables, as Dagster checks, hourly; a stale table alerts.

Rules kept here:
- The expectations are dbt's own, beside the sources they describe
  (`dbt_metrics/models/staging/_sources.yml`: each table's `loaded_at_field` and `warn_after` /
  `error_after`); a table whose freshness is null (the rejects) is not checked.
- `dbt_source_freshness` runs `dbt source freshness` once and records one check
  `dbt_source_fresh` per checked table on its normalized asset: passed, or failed with the
  severity dbt gives (WARN for `warn`, ERROR for `error` or a runtime error), with the newest
  load time and its age. A table still empty passes: nothing was expected of it yet (dbt would
  call it stale since year 1).
- The checks run hourly by declarative automation (their condition: a cron tick at :45 passed;
  `dbt_source_freshness_sensor` evaluates it), in a run of their own, never riding along with a
  normalize or landing run (a check with a condition of its own does not). The job
  `dbt_source_freshness` runs them by hand. A failed check is alerted by `alert_check_sensor` like
  every check. They read the warehouse, so on DuckDB they wait for the writers' pool.
"""

import json
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource

from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.lib.dbt_env import dbt_env_vars
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool

CHECK_NAME = "dbt_source_fresh"
CRON = "45 * * * *"
SEVERITY = {"warn": dg.AssetCheckSeverity.WARN}  # anything else failed is an ERROR


def checked_sources() -> list[str]:
    """The normalized tables dbt has a freshness expectation for (from the manifest)."""
    manifest = json.loads(dbt_project.manifest_path.read_text(encoding="utf-8"))
    return sorted(
        source["name"]
        for source in manifest["sources"].values()
        if source["source_name"] == "normalized"
        and source.get("loaded_at_field")
        and _has_expectation(source.get("freshness"))
    )


def _has_expectation(freshness: dict[str, Any] | None) -> bool:
    return bool(freshness) and any(
        (freshness.get(bound) or {}).get("count") for bound in ("warn_after", "error_after")
    )


def source_check_result(result: dict[str, Any]) -> dg.AssetCheckResult:
    """One table's check from its entry of dbt's sources.json."""
    table = result["unique_id"].rsplit(".", 1)[-1]
    status = result["status"]
    loaded = result.get("max_loaded_at")
    empty = bool(loaded) and datetime.fromisoformat(loaded).year == 1
    age = result.get("max_loaded_at_time_ago_in_s")
    passed = status == "pass" or (empty and status in ("warn", "error"))
    if empty:
        description = "no rows yet"
    elif status in ("pass", "warn", "error"):
        description = f"{status}: newest row {round(age / 3600, 1)} h old (loaded at {loaded})"
    else:
        description = f"dbt could not check it: {result.get('message') or status}"
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["normalized", table]),
        check_name=CHECK_NAME,
        passed=passed,
        severity=SEVERITY.get(status, dg.AssetCheckSeverity.ERROR),
        description=description,
        metadata={
            "dbt_status": status,
            "max_loaded_at": None if empty else loaded,
            "age_hours": None if empty or age is None else round(age / 3600, 2),
        },
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=dg.AssetKey(["normalized", table]),
            description="dbt source freshness: the newest row within the expectation of "
            "dbt_metrics/models/staging/_sources.yml (hourly at :45).",
            automation_condition=dg.AutomationCondition.cron_tick_passed(CRON, "UTC"),
        )
        for table in checked_sources()
    ],
    name="dbt_source_freshness_checks",  # the op; its job is dbt_source_freshness
    pool=warehouse_pool(),
)
def dbt_source_freshness_checks(dbt: DbtCliResource, warehouse: WarehouseResource) -> Any:
    wh = warehouse.get()
    init_warehouse(wh)  # the sources exist (empty) on a warehouse nothing was loaded into yet
    with dbt_env_vars(wh):
        invocation = dbt.cli(["source", "freshness"], raise_on_error=False).wait()
    for result in invocation.get_artifact("sources.json")["results"]:
        yield source_check_result(result)


dbt_source_freshness_job = dg.define_asset_job(
    "dbt_source_freshness",
    selection=dg.AssetSelection.checks(dbt_source_freshness_checks),
    description="dbt source freshness of the normalized tables, as their dbt_source_fresh checks.",
)

dbt_source_freshness_sensor = dg.AutomationConditionSensorDefinition(
    "dbt_source_freshness_sensor",
    target=dg.AssetSelection.checks(dbt_source_freshness_checks),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Runs the dbt source freshness checks of the normalized tables hourly (:45).",
)
