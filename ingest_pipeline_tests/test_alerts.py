"""Alerts to a loopback webhook receiver, as Slack's incoming webhook would get them.

Under the real daemon: a scheduled run that fails gives one alert; each landing sensor whose
ticks fail three times in a row gives one, and only one while they go on failing (repeats
folded); the receiver answering 500 once is retried without failing anything. With real Dagster
runs: a landing run whose object fails ends with a failed WARN check, which gives one alert, and
a second such run none (folded).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest

from ingest_pipeline.defs.alerts.sensors import alert_check_sensor, alert_run_failure_sensor
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import FEEDBACK, ITEMS
from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.platform import running_daemon, wait_for_daemon

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-webhook-path"
LANDING_KINDS_NAMES = ("logs", "events", "crawl", "webhooks")


class Receiver:
    """A webhook receiver on a free loopback port; the first `fail_first` posts get a 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.answered_500 = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.answered_500 < fail_first:
                    receiver.answered_500 += 1
                    self.send_response(500)
                else:
                    receiver.alerts.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{SECRET}"

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.alerts if a["kind"] == kind]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver(fail_first=1)
    monkeypatch.setenv("INGEST_ALERT_WEBHOOK_URL", found.url)
    monkeypatch.setenv("INGEST_ALERT_QUIET_MINUTES", "60")
    monkeypatch.setenv("INGEST_UI_BASE_URL", "http://ui.example:3000")
    yield found
    found.server.shutdown()


FIELDS = {
    "text", "kind", "job", "run_id", "tenant", "source_instance", "partition", "asset",
    "check", "severity", "error", "url",
}  # fmt: skip


def test_failed_runs_and_failing_ticks_alert_once_under_the_daemon(
    duck_env, s3_endpoint, receiver, tmp_path, monkeypatch
):
    import boto3

    # The warehouse cannot be opened (its folder is a file): every scheduled csv run fails the
    # same way, and the landing sensor, which has an object to queue, fails every tick.
    (tmp_path / "not_a_folder").write_text("")
    monkeypatch.setenv("INGEST_WAREHOUSE_URL", f"duckdb:///{tmp_path}/not_a_folder/wh.duckdb")
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "items.csv").write_text("id,title\n1,a\n")
    duck_env.write_tenants({"acme": [csv_instance(folder, schedule="* * * * *")]})
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="logs/acme/a.log", Body=b"x INFO y\n")

    home, log = tmp_path / "dagster_home", tmp_path / "daemon.log"
    with (
        running_daemon(home, log) as daemon,
        dg.DagsterInstance.from_config(str(home)) as instance,
    ):

        def failed_runs() -> list[dg.DagsterRun]:
            return instance.get_runs(
                dg.RunsFilter(job_name="ingest_csv", statuses=[dg.DagsterRunStatus.FAILURE])
            )

        def seen() -> bool:
            ticks = receiver.of_kind("tick_failure")
            return bool(receiver.of_kind("run_failure")) and len(ticks) >= len(LANDING_KINDS_NAMES)

        wait_for_daemon(daemon, log, 300, seen, "a failed-run alert and the tick-failure alerts")
        # One more interval of the alert sensors: the landing sensors failed again meanwhile,
        # and a repeat would have been sent by now.
        time.sleep(35)
        runs = failed_runs()
    # One alert for the failed runs: a repeat of the same failure is folded. (On a loaded
    # machine a run can also fail another way, e.g. ended by run monitoring: its own alert.)
    failures = receiver.of_kind("run_failure")
    texts = [a["text"] for a in failures]
    assert len(texts) == len(set(texts)), f"an alert sent twice: {texts}"
    alert = failures[0]
    assert set(alert) == FIELDS
    assert alert["job"] == "ingest_csv" and alert["run_id"] in {r.run_id for r in runs}
    assert alert["tenant"] == "acme" and alert["source_instance"] == "catalog"
    assert alert["severity"] == "ERROR" and alert["error"] and "\n" not in alert["error"]
    assert alert["url"] == f"http://ui.example:3000/runs/{alert['run_id']}"
    assert alert["check"] is None and alert["asset"] is None
    # One per landing sensor (each fails at the warehouse), none twice.
    failing = [alert["text"].split(":")[0] for alert in receiver.of_kind("tick_failure")]
    assert sorted(failing) == sorted(f"landing_{kind}_sensor" for kind in LANDING_KINDS_NAMES)
    assert all(alert["error"] for alert in receiver.of_kind("tick_failure"))
    # The first post got a 500 and was retried; the webhook's secret is in no log.
    assert receiver.answered_500 == 1
    assert SECRET not in log.read_text(errors="replace")


def max_check_id(instance: dg.DagsterInstance) -> int:
    key = dg.AssetCheckKey(dg.AssetKey(["normalized", "log_records"]), "all_objects_completed")
    [newest] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    return newest.id


def test_a_failed_warn_check_alerts_once(duck_env, s3_endpoint, receiver):
    import boto3

    from ingest_pipeline.cli.landing_runs import process_landing
    from ingest_pipeline.defs.landing.kinds import landing_kind

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket="landing")
    duck_env.write_tenants({"acme": []})

    def tick(cursor: str | None) -> str | None:
        context = dg.build_sensor_context(
            instance=duck_env.instance, cursor=cursor, definitions=duck_env.defs
        )
        return alert_check_sensor(context).cursor

    cursor = tick(None)  # the first tick starts from now
    # A run created but not yet executed: its check is planned, with no outcome. A tick reads
    # it without failing and keeps its cursor before it (CI caught the sensor failing on one).
    planned = duck_env.instance.create_run_for_job(
        duck_env.defs.resolve_job_def("land_logs"), run_config={}
    )
    assert planned.run_id
    held = tick(cursor)
    assert held is not None and int(held) < max_check_id(duck_env.instance)
    cursor = held
    for attempt in range(2):
        # A gzip body that is not gzip: the upload fails, the run's check fails (WARN).
        s3.put_object(Bucket="landing", Key=f"logs/acme/bad-{attempt}.log.gz", Body=b"\x1f\x8bno")
        [landed] = process_landing(duck_env.defs, duck_env.instance, (landing_kind("logs"),))
        assert (landed.runs, landed.failed_runs) == (1, 0)
        cursor = tick(cursor)
    [alert] = receiver.of_kind("check")
    assert alert["asset"] == "normalized/log_records"
    assert alert["check"] == "all_objects_completed" and alert["severity"] == "WARN"
    assert alert["url"] == "http://ui.example:3000/assets/normalized/log_records"


def run_failure_tick(env, run: dg.DagsterRun) -> None:
    """alert_run_failure_sensor on a failed run, as the daemon calls it."""
    [failure] = env.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_run_failure_sensor",
        dagster_event=failure.dagster_event,
        dagster_instance=env.instance,
        dagster_run=run,
    ).for_run_failure()
    alert_run_failure_sensor(context)


def test_auth_failures_in_a_row_pause_the_instance_until_resumed(
    duck_env, catalog_api, receiver, monkeypatch
):
    from ingest_pipeline.defs.tenants.pauses import paused, resume
    from ingest_pipeline.sandbox.instances import catalog_api_instance
    from ingest_pipeline_tests.conftest import API_TOKEN, rest_api_instance

    monkeypatch.setenv("ACME_API_TOKEN", "not-the-token")  # every run of catalog-api: 401
    monkeypatch.setenv("ACME_GOOD_TOKEN", API_TOKEN)  # beside it, one that loads
    every_minute = {**rest_api_instance(catalog_api), "schedule": "* * * * *"}
    good = catalog_api_instance(catalog_api.server.url, "ACME_GOOD_TOKEN", "good-api")
    duck_env.write_tenants({"acme": [every_minute, {**good, "schedule": "* * * * *"}]})
    tag, good_tag = "rest_api.acme.catalog-api", "rest_api.acme.good-api"
    for attempt in range(3):
        assert not paused(duck_env.instance, [tag]), attempt
        [outcome] = duck_env.ingest("acme", "catalog-api")
        assert outcome.status == "failed"
        [run] = duck_env.instance.get_runs(dg.RunsFilter(tags={"ingest/instance": tag}), limit=1)
        run_failure_tick(duck_env, run)
        [loaded] = duck_env.ingest("acme", "good-api")
        assert loaded.status == "ok"
    assert tag in paused(duck_env.instance, [tag])
    assert good_tag not in paused(duck_env.instance, [good_tag])
    [alert] = receiver.of_kind("paused")
    assert alert["tenant"] == "acme" and alert["source_instance"] == "catalog-api"
    assert "ingest-pipeline resume acme catalog-api" in alert["text"]
    assert "401" in alert["error"] and "not-the-token" not in json.dumps(receiver.alerts)
    assert len(receiver.of_kind("run_failure")) == 1  # the same failure thrice: folded
    # The UI shows it on the instance's raw partition; its schedule skips it.
    key = dg.AssetKey(["raw", "rest_api", "records"])
    [observation] = duck_env.instance.fetch_observations(key, limit=1).records
    assert observation.asset_observation.metadata["paused"].value is True
    schedule = duck_env.defs.resolve_schedule_def("ingest_rest_api_schedule")

    def tick() -> Any:
        return schedule(
            dg.build_schedule_context(
                instance=duck_env.instance, scheduled_execution_time=datetime.now(UTC)
            )
        )

    # Only the paused instance is skipped: the good one beside it is still asked for.
    assert [r.partition_key for r in tick()] == ["acme.good-api"]
    assert resume(duck_env.instance, "acme", "catalog-api") == [tag]
    assert sorted(r.partition_key for r in tick()) == ["acme.catalog-api", "acme.good-api"]
    [lifted] = duck_env.instance.fetch_observations(key, limit=1).records
    assert lifted.asset_observation.metadata["paused"].value is False


def test_the_cli_resumes_a_paused_instance(tmp_path, monkeypatch):
    import subprocess
    import sys

    from ingest_pipeline.defs.tenants.pauses import pause, paused

    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("INGEST_DATA_DIR", str(tmp_path / "data"))
    cli = [sys.executable, "-m", "ingest_pipeline.cli", "resume", "acme", "catalog-api"]
    first = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "acme.catalog-api is not paused"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pause(instance, "rest_api.acme.catalog-api", "3 runs in a row failed on authentication")
    done = subprocess.run(cli, capture_output=True, text=True, check=True)
    assert done.stdout.startswith("resumed: rest_api.acme.catalog-api")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert paused(instance, ["rest_api.acme.catalog-api"]) == {}


def test_a_stale_instance_fails_its_freshness_check_and_alerts_once(duck_env, receiver, tmp_path):
    from ingest_pipeline.defs.tenants.freshness import instance_freshness_sensor

    folders = {}
    for name in ("fresh", "late"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "items.csv").write_text(
            "sku,name,link,updated\n1,a,https://x/1,2026-01-01\n"
        )
    duck_env.write_tenants(
        {"acme": [csv_instance(folders[n], n, freshness="1h") for n in ("fresh", "late")]}
    )
    [outcome] = duck_env.ingest("acme", "fresh")  # only `fresh` loads
    assert outcome.status == "ok"
    # The sensor has watched `late` for two hours: never loaded in that time, it is stale.
    two_hours_ago = time.time() - 7200
    cursor = json.dumps({"acme.late": two_hours_ago, "acme.fresh": two_hours_ago})
    for _ in range(2):
        context = dg.build_sensor_context(instance=duck_env.instance, cursor=cursor)
        cursor = instance_freshness_sensor(context).cursor
    key = dg.AssetCheckKey(dg.AssetKey(["raw", "csv", "rows"]), "instances_fresh")
    [latest] = duck_env.instance.event_log_storage.get_asset_check_execution_history(key, 1)
    evaluation = latest.event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert set(evaluation.metadata["stale"].value) == {"acme.late"}
    [alert] = receiver.of_kind("stale")  # the second tick's repeat was folded
    assert alert["source_instance"] == "late" and alert["check"] == "instances_fresh"
    assert alert["asset"] == "raw/csv/rows" and "expected within 1.0 h" in alert["text"]
    assert not receiver.of_kind("check")  # the check sensor leaves this check to it
    # Stale in raw is stale in normalized too (its check says so), alerted once, for raw.
    key = dg.AssetCheckKey(dg.AssetKey(["normalized", "items"]), "instances_fresh")
    [latest] = duck_env.instance.event_log_storage.get_asset_check_execution_history(key, 1)
    assert set(latest.event.dagster_event.event_specific_data.metadata["stale"].value) == {
        "csv:acme.late"
    }


def test_loaded_but_not_normalized_is_stale_in_the_normalized_asset(duck_env, receiver, tmp_path):
    from ingest_pipeline.defs.tenants.freshness import instance_freshness_sensor

    (tmp_path / "items.csv").write_text("sku,name,link,updated\n1,a,https://x/1,2026-01-01\n")
    duck_env.write_tenants({"acme": [csv_instance(tmp_path, "shop", freshness="1h")]})
    sync_partitions(duck_env.instance)
    # Loaded now (raw only), never normalized, watched by the sensor for two hours.
    ingest = duck_env.defs.resolve_job_def("ingest_csv")
    assert ingest.execute_in_process(instance=duck_env.instance, partition_key="acme.shop").success
    cursor = json.dumps({"acme.shop": time.time() - 7200})

    def checks() -> dict[str, Any]:
        instance_freshness_sensor(
            dg.build_sensor_context(instance=duck_env.instance, cursor=cursor)
        )
        history = duck_env.instance.event_log_storage.get_asset_check_execution_history
        return {
            asset: history(dg.AssetCheckKey(dg.AssetKey(asset.split("/")), "instances_fresh"), 1)[
                0
            ].event.dagster_event.event_specific_data
            for asset in ("raw/csv/rows", "normalized/items")
        }

    found = checks()
    assert found["raw/csv/rows"].passed and not found["normalized/items"].passed
    assert set(found["normalized/items"].metadata["stale"].value) == {"csv:acme.shop"}
    [alert] = receiver.of_kind("stale")
    assert alert["asset"] == "normalized/items" and alert["source_instance"] == "shop"
    assert "last normalized 2.0 h ago" in alert["text"]
    normalize = duck_env.defs.resolve_job_def("normalize_items")
    assert normalize.execute_in_process(instance=duck_env.instance).success
    assert checks()["normalized/items"].passed


def test_dbt_source_freshness_records_a_check_per_table_and_a_stale_one_alerts(duck_env, receiver):
    from datetime import timedelta

    def check_tick(cursor: str | None) -> str | None:
        context = dg.build_sensor_context(
            instance=duck_env.instance, cursor=cursor, definitions=duck_env.defs
        )
        return alert_check_sensor(context).cursor

    cursor = check_tick(None)  # the check sensor starts from now
    old = datetime.now(UTC) - timedelta(hours=30)  # _sources.yml: warn after 24 hours
    row = {"source_type": "playstore", "source_instance": "main", "raw_load_id": "L"}
    duck_env.warehouse.upsert(
        FEEDBACK,
        [{**row, "tenant_id": "acme", "external_id": "r1", "ingested_at": old}],
    )
    duck_env.warehouse.upsert(
        ITEMS,
        [{**row, "source_type": "rss", "tenant_id": "acme", "external_id": "i1",
          "ingested_at": datetime.now(UTC)}],
    )  # fmt: skip
    job = duck_env.defs.resolve_job_def("dbt_source_freshness")
    assert job.execute_in_process(instance=duck_env.instance).success
    history = duck_env.instance.event_log_storage.get_asset_check_execution_history
    found = {
        table: history(dg.AssetCheckKey(dg.AssetKey(["normalized", table]), "dbt_source_fresh"), 1)[
            0
        ].event.dagster_event.event_specific_data
        for table in ("items", "feedback", "events")
    }
    assert found["items"].passed and found["events"].passed  # fresh; empty (nothing expected)
    assert found["events"].description == "no rows yet"
    assert not found["feedback"].passed
    assert found["feedback"].severity == dg.AssetCheckSeverity.WARN
    assert found["feedback"].description.startswith("warn: newest row 30.0 h old")
    check_tick(cursor)
    [alert] = receiver.of_kind("check")
    assert (alert["asset"], alert["check"]) == ("normalized/feedback", "dbt_source_fresh")
