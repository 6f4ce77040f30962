"""One instance's failure is its own: the shared normalized asset runs apart, by itself.

Real Dagster runs in a temporary instance, real DuckDB and PostgreSQL, the feed sandbox on
loopback. The declarative automation is evaluated with Dagster's own evaluator, tick by tick.
"""

from typing import Any

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import REJECTED_RECORDS
from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_items_sources import write_csv

ITEMS = dg.AssetKey(["normalized", "items"])
REJECTS = dg.AssetKey(["normalized", "rejected_records"])
ITEMS_CHECKS = ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous")


def feeds(url: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "acme": [{"type": "rss", "name": "dead", "url": f"{url}/broken.xml"}],
        "globex": [{"type": "rss", "name": "blog", "url": f"{url}/feed.xml"}],
    }


def test_a_dead_feed_beside_a_good_one_leaves_normalized_items_green(env, feed_server):
    env.write_tenants(feeds(feed_server.server.url))
    dead, good = env.ingest()
    assert dead.status == "failed" and "cannot be parsed" in dead.error
    assert good.status == "ok" and good.rows_normalized == 3

    # The dead feed's run was its raw partition only: it never planned normalized/items.
    dead_run = env.instance.get_run_by_id(dead.run_id)
    assert dead_run.status == dg.DagsterRunStatus.FAILURE
    assert ITEMS not in (dead_run.asset_selection or set())
    planned = env.instance.get_latest_planned_materialization_info(ITEMS)
    assert env.instance.get_run_by_id(planned.run_id).status == dg.DagsterRunStatus.SUCCESS

    # Latest materialization: the good instance's rows, from a successful run.
    latest = env.instance.get_latest_materialization_event(ITEMS)
    assert env.instance.get_run_by_id(latest.run_id).status == dg.DagsterRunStatus.SUCCESS
    metadata = latest.asset_materialization.metadata
    assert metadata["per_instance"].value == {"rss:globex.blog": {"normalized": 3, "rejected": 0}}
    assert metadata["dagster/row_count"].value == 3
    records = env.instance.fetch_materializations(ITEMS, limit=10).records
    assert len(records) == 1  # one normalize run: none for the dead feed

    # Its checks ran with that materialization and passed (not "Execution failed").
    for name in ITEMS_CHECKS:
        record = env.instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(ITEMS, name)
        )
        assert record.run_id == latest.run_id
        assert record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        assert record.evaluation.passed, name

    # The rejects' counts were recorded in the same run.
    rejects = env.instance.get_latest_materialization_event(REJECTS)
    assert rejects.run_id == latest.run_id
    assert rejects.asset_materialization.metadata["dagster/row_count"].value == 0


def test_automation_follows_raw_updates_and_is_not_blocked_by_a_dead_partition(
    duck_env, feed_server
):
    env = duck_env
    env.write_tenants(feeds(feed_server.server.url))
    sync_partitions(env.instance)
    raw_job = env.defs.resolve_job_def("ingest_rss")
    tick = Ticks(env)
    assert tick() == {}  # the first evaluation takes its bearings

    # A failed raw run is no update: nothing to normalize.
    dead = raw_job.execute_in_process(
        instance=env.instance, partition_key="acme.dead", raise_on_error=False
    )
    assert not dead.success
    assert tick() == {}

    # One good partition is enough; the dead one, missing for good, blocks nothing.
    assert raw_job.execute_in_process(instance=env.instance, partition_key="globex.blog").success
    assert tick() == {"normalized/items": 1, "normalized/rejected_records": 1}
    assert tick() == {}  # requested once, not again on every tick

    # What the sensor would launch: the requested assets with their checks, in one run.
    result = env.defs.resolve_job_def("normalize_items").execute_in_process(instance=env.instance)
    assert result.success
    checks = {e.check_name for e in result.get_asset_check_evaluations()}
    assert checks == set(ITEMS_CHECKS)
    assert env.rows("SELECT count(*) FROM normalized.items") == [(3,)]
    # Nothing new for items. A job run by hand records no asset selection, so Dagster cannot
    # tell that rejected_records ran in the same run: it re-reads its counts once, then rests.
    assert tick() == {"normalized/rejected_records": 1}
    assert tick() == {}


def test_a_landing_update_triggers_the_normalized_assets_that_share_its_table(duck_env):
    env = duck_env
    env.write_tenants({"acme": []})
    tick = Ticks(env)
    tick()
    env.instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=dg.AssetKey(["landing", "webhooks"]))
    )
    assert tick() == {
        "normalized/feedback": 1,
        "normalized/payments": 1,
        "normalized/rejected_records": 1,
    }


def test_an_update_between_the_request_and_the_next_tick_is_not_lost(duck_env):
    """The tick after a request sees the request (newly_requested) and, when a parent updated
    meanwhile, that update too: the update came later, so it asks for one more run. It was
    dropped before (the request's reset won), and the load stayed pending until the next one;
    seen under the daemon when a raw run ended seconds after a normalize request."""
    env = duck_env
    env.write_tenants({"acme": []})
    tick = Ticks(env)
    tick()
    webhooks = dg.AssetMaterialization(asset_key=dg.AssetKey(["landing", "webhooks"]))
    requested = {
        "normalized/feedback": 1,
        "normalized/payments": 1,
        "normalized/rejected_records": 1,
    }
    env.instance.report_runless_asset_event(webhooks)
    assert tick() == requested
    env.instance.report_runless_asset_event(webhooks)  # after the request, before the next tick
    assert tick() == requested
    assert tick() == {}  # and no more than that


def test_rejected_records_counts_per_source_type_and_instance(env):
    landing = env.tmp_path / "landing"
    write_csv(landing, "a.csv", "sku,name,link,updated\n1,One,,2026-01-01\n,NoSku,,2026-01-02\n")
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    assert outcome.status == "ok" and outcome.rows_rejected == 1
    env.warehouse.execute(
        f"INSERT INTO {REJECTED_RECORDS.qualified} (tenant_id, source_type, source_instance, "
        "record_ref, reason, payload) VALUES ('acme', 'crawl', 'partner-x', 'k:1', 'bad', '{}')"
    )
    result = env.defs.resolve_job_def("normalize_items").execute_in_process(instance=env.instance)
    assert result.success
    metadata = env.instance.get_latest_materialization_event(REJECTS).asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 2
    assert metadata["per_source_type"].value == {"crawl": 1, "csv": 1}
    assert metadata["per_source_instance"].value == {"crawl:partner-x": 1, "csv:catalog": 1}


class Ticks:
    """Dagster's automation evaluator, one tick per call, carrying its cursor like the sensor."""

    def __init__(self, env: Any):
        self.env = env
        self.cursor = None

    def __call__(self) -> dict[str, int]:
        result = dg.evaluate_automation_conditions(
            defs=self.env.defs, instance=self.env.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        requested = {}
        for key in (
            ITEMS,
            REJECTS,
            *(dg.AssetKey(["normalized", e]) for e in ("feedback", "payments")),
        ):
            if result.get_num_requested(key):
                requested[key.to_user_string()] = result.get_num_requested(key)
        return requested
