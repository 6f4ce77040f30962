"""The normalize automation under the real Dagster daemon: after an instance's raw run, its rows
reach normalized.items with no one launching anything (automation sensor → queued run → run
worker), and the dead feed's partition beside it, missing for good, blocks nothing."""

import time

import dagster as dg
import pytest

from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline_tests.platform import running_daemon
from ingest_pipeline_tests.test_normalize_runs import ITEMS, ITEMS_CHECKS, feeds

pytestmark = pytest.mark.integration

DEADLINE_SECONDS = 240


def test_daemon_normalizes_after_a_raw_run_by_itself(duck_env, feed_server, tmp_path):
    duck_env.write_tenants(feeds(feed_server.server.url))
    dagster_home = tmp_path / "dagster_home"
    log_path = tmp_path / "daemon.log"
    with (
        running_daemon(dagster_home, log_path),
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
    ):
        sync_partitions(instance)
        # Declarative automation sees updates after its first evaluation, not before.
        assert _wait(lambda: _evaluated(instance)), "the automation sensor never ticked"
        raw_job = duck_env.defs.resolve_job_def("ingest_rss")
        dead = raw_job.execute_in_process(
            instance=instance, partition_key="acme.dead", raise_on_error=False
        )
        assert not dead.success
        good = raw_job.execute_in_process(instance=instance, partition_key="globex.blog")
        assert good.success and duck_env.rows("SELECT count(*) FROM normalized.items") == [(0,)]
        started = time.monotonic()
        arrived = _wait(lambda: _items(duck_env) == 3)
        waited = time.monotonic() - started
        run = _wait(lambda: _finished_normalize_run(instance))
        checks = {
            name: instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(ITEMS, name))
            for name in ITEMS_CHECKS
        }
    output = log_path.read_text(errors="replace")[-3000:]
    assert arrived, output
    print(f"normalized rows arrived {waited:.1f}s after the raw run")
    assert run and run.status == dg.DagsterRunStatus.SUCCESS, output
    # The sensor's run: the asset with its checks, launched by the automation, not by a job.
    assert run.tags.get("dagster/from_automation_condition") == "true" or run.tags.get(
        "dagster/sensor_name"
    ), run.tags
    for name, record in checks.items():
        assert record is not None and record.run_id == run.run_id, name
        assert record.evaluation.passed, name


def _wait(probe, deadline: float = DEADLINE_SECONDS):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(2)
    return None


def _evaluated(instance: dg.DagsterInstance) -> bool:
    return bool(instance.schedule_storage.get_auto_materialize_asset_evaluations(ITEMS, limit=1))


def _items(env) -> int:
    return env.rows("SELECT count(*) FROM normalized.items")[0][0]


def _finished_normalize_run(instance: dg.DagsterInstance):
    for record in instance.get_run_records():
        run = record.dagster_run
        if ITEMS in (run.asset_selection or set()) and run.is_finished:
            return run
    return None
