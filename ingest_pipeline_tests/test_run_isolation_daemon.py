"""Run isolation under a real `dagster-daemon` (issue 18). Runs are submitted to the instance's
run queue as the UI submits them (Dagster's GraphQL launch mutation, over a workspace loaded from
workspace.yaml like the webserver's), and the daemon's queue (dagster.yaml's
QueuedRunCoordinator: one run per `ingest/source_instance`, 3 of the 4 run slots per
`ingest/tenant`) starts them in run worker processes of their own. The warehouse is PostgreSQL.
The rules checked, from Dagster's own run records:

1. A tenant whose API hangs delays no other tenant. Its runs wait on requests held open by the
   sandbox (`SandboxServer.hold`), they take at most the tenant's share of the slots (its run
   past the share stays QUEUED), and meanwhile the other tenant's runs start and succeed (they
   end before any hung run ends). Released, the hung runs succeed too: rows exact, no run left
   QUEUED or STARTED.
2. Runs of one source instance requested at once run one after the other (each starts after
   the previous one ended), a run launched from the raw asset's page (the asset's partition,
   without the `ingest_<type>` job's tags) too; all succeed and no row is doubled.
3. On the landing path one tenant's bad upload fails alone: the landing sensor makes one run
   per tenant; the bad object is Failed with its reason, named in its run's log and failed
   check (the platform fails the object, not the run: the run succeeds), while the tenant's good
   object and the other tenant's upload complete with exact rows and a passed check.

Why PostgreSQL: on the embedded DuckDB every step that writes the warehouse is in one pool of
one slot (duckdb_warehouse), and a raw step calls its source's API while it holds that slot, so
there a hung API holds every other tenant's loads until its requests time out.

One daemon (and its code server) for the module: starting one is most of a test's time on two
loaded cores. Each test has tenants of its own, added to the shared tenants file, and no
instance is ever due on its schedule. Waits poll with generous deadlines; a failed wait shows
every run's status and failure and the daemon log's tail.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pytest
import yaml
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster_graphql.test.utils import execute_dagster_graphql

from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key, raw_asset_key
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.tenants import instance_run_tags
from ingest_pipeline.lib.resources import UNFINISHED_RUN_STATUSES
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.catalog_api import CatalogApi
from ingest_pipeline.sandbox.instances import catalog_api_instance
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator
from ingest_pipeline_tests.conftest import API_TOKEN
from ingest_pipeline_tests.platform import REPO, running_daemon, wait_for_daemon

pytestmark = pytest.mark.integration

# Generous: on two loaded cores a run worker takes 10-40 s to start, the daemon up to a minute.
READY_SECONDS = 240
RUNS_SECONDS = 360
TENANT_SHARE = 3  # dagster.yaml: ingest/tenant, 3 of the 4 run slots
NEVER = "0 0 1 1 *"  # no instance of these tests is ever due on its schedule
TOKEN_ENV = "ISOLATION_API_TOKEN"
JOB = "ingest_rest_api"
RAW = raw_asset_key("rest_api")
PRODUCTS = 5  # CatalogApi's sample products
S = dg.DagsterRunStatus
LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


@dataclass
class Daemon:
    """The daemon, its instance, the warehouse, the tenants file and the launch path."""

    process: subprocess.Popen
    log: Path
    instance: dg.DagsterInstance
    warehouse: Warehouse
    tenants_file: Path
    workspace: WorkspaceProcessContext
    s3: Any
    tenants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_tenants(self, tenants: dict[str, list[dict[str, Any]]]) -> None:
        """Add tenants to the tenants file and their instances to the partitions (as the
        tenants sensor would at its next tick)."""
        self.tenants.update(tenants)
        document = {"tenants": {t: {"sources": s} for t, s in self.tenants.items()}}
        self.tenants_file.write_text(yaml.safe_dump(document), encoding="utf-8")
        sync_partitions(self.instance)

    def launch(self, partition: str, tags: dict[str, str], asset: dg.AssetKey | None = None) -> str:
        """Submit a run to the queue as the UI's launch does; its id. Without `asset`: the
        `ingest_rest_api` job; with it: that asset alone (the asset page's Materialize)."""
        selector: dict[str, Any] = {
            "repositoryLocationName": "ingest_pipeline",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB" if asset else JOB,
        }
        if asset:
            selector["assetSelection"] = [{"path": asset.path}]
        all_tags = {**tags, "dagster/partition": partition}
        params = {
            "selector": selector,
            "runConfigData": {},
            "mode": "default",
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        result = execute_dagster_graphql(
            self.workspace.create_request_context(), LAUNCH, {"executionParams": params}
        )
        assert not result.errors, result.errors
        launched = result.data["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def records(self, run_ids: list[str]) -> list[dg.RunRecord]:
        """The runs' records, in the order of `run_ids`."""
        found = self.instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        by_id = {r.dagster_run.run_id: r for r in found}
        return [by_id[run_id] for run_id in run_ids]

    def statuses(self, run_ids: list[str]) -> Counter[S]:
        return Counter(r.dagster_run.status for r in self.records(run_ids))

    def succeeded(self, run_ids: list[str]) -> bool:
        """Whether every run succeeded; AssertionError at once if one ended otherwise."""
        runs = [r.dagster_run for r in self.records(run_ids)]
        ended_badly = [r for r in runs if r.is_finished and r.status != S.SUCCESS]
        assert not ended_badly, f"runs {[r.run_id[:8] for r in ended_badly]} did not succeed"
        return all(r.status == S.SUCCESS for r in runs)

    def unfinished(self) -> list[dg.RunRecord]:
        return self.instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED_RUN_STATUSES))

    def wait(self, seconds: float, condition: Callable[[], bool], what: str) -> None:
        try:
            wait_for_daemon(self.process, self.log, seconds, condition, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.report()}") from None

    def report(self) -> str:
        """Every run: job, tags that place it, status, start and end, why it failed."""
        lines = ["runs (oldest first):"]
        for record in reversed(self.instance.get_run_records()):
            run = record.dagster_run
            lines.append(
                f"  {run.run_id[:8]} {run.job_name} {run.tags.get('dagster/partition', '')} "
                f"tenant={run.tags.get('ingest/tenant')} "
                f"instance={run.tags.get('ingest/source_instance')} {run.status.value} "
                f"start={record.start_time} end={record.end_time}"
            )
            lines.extend(f"    {m}" for m in failures(self.instance, run.run_id))
        return "\n".join(lines)


def failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """What a run's failure events say (the step's error, the run's own message)."""
    found = []
    for entry in instance.all_logs(
        run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    ):
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        found.append(error.message.strip() if error else (entry.message or ""))
    return found


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("isolation")
    home = tmp / "dagster_home"
    log = tmp / "daemon.log"
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        throwaway_database("isolation_wh") as warehouse_url,
        contextlib.ExitStack() as stack,
    ):
        for name, value in EMULATOR_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        emulator = stack.enter_context(S3Emulator())
        settings = {
            "INGEST_WAREHOUSE_URL": warehouse_url,
            "INGEST_TENANTS_FILE": str(tmp / "tenants.yaml"),
            "INGEST_DATA_DIR": str(tmp / "data"),
            "INGEST_S3_ENDPOINT_URL": emulator.endpoint_url,
            TOKEN_ENV: API_TOKEN,
            # The code under test, not whatever the venv's editable install points at.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url)
        s3.create_bucket(Bucket="landing")
        warehouse = Warehouse(warehouse_url)
        init_warehouse(warehouse)
        (tmp / "tenants.yaml").write_text("tenants: {}\n", encoding="utf-8")
        process = stack.enter_context(running_daemon(home, log))
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
        # The launch path's own code server, started from workspace.yaml with these settings.
        workspace = stack.enter_context(
            WorkspaceProcessContext(instance, WorkspaceFileTarget([str(REPO / "workspace.yaml")]))
        )
        found = Daemon(process, log, instance, warehouse, tmp / "tenants.yaml", workspace, s3)
        # Declarative automation sees updates after its first evaluation, not before.
        items = normalized_asset_key("items")
        found.wait(
            READY_SECONDS,
            lambda: bool(
                instance.schedule_storage.get_auto_materialize_asset_evaluations(items, limit=1)
            ),
            "the normalize automation's first evaluation",
        )
        yield found


def rest_instances(api: CatalogApi, names: list[str]) -> list[dict[str, Any]]:
    return [
        {**catalog_api_instance(api.server.url, TOKEN_ENV, name), "schedule": NEVER}
        for name in names
    ]


@contextlib.contextmanager
def catalog_apis(count: int) -> Iterator[list[CatalogApi]]:
    apis = [CatalogApi(API_TOKEN) for _ in range(count)]
    for api in apis:
        api.server.start()
    try:
        yield apis
    finally:
        for api in apis:
            api.server.stop()


def normalized_items(daemon: Daemon, tenants: tuple[str, ...]) -> dict[tuple[str, str], tuple]:
    """{(tenant, instance): (rows, distinct external ids)} of normalized.items."""
    with contextlib.suppress(Exception):  # the table may be locked by a normalize run's DDL
        rows = daemon.warehouse.fetch_all(
            "SELECT tenant_id, source_instance, count(*), count(DISTINCT external_id) "
            "FROM normalized.items GROUP BY 1, 2"
        )
        return {(t, i): (n, d) for t, i, n, d in rows if t in tenants}
    return {}


def test_a_tenant_whose_api_hangs_delays_no_other_tenant(daemon: Daemon) -> None:
    hung_names = [f"api-{n}" for n in range(TENANT_SHARE + 1)]  # one past its share
    steady_names = ["api-0", "api-1"]
    with catalog_apis(2) as (hung_api, steady_api):
        hung_api.server.hold()
        try:
            daemon.add_tenants(
                {
                    "hangs": rest_instances(hung_api, hung_names),
                    "answers": rest_instances(steady_api, steady_names),
                }
            )
            hung = [
                daemon.launch(f"hangs.{n}", instance_run_tags("rest_api", f"hangs.{n}"))
                for n in hung_names
            ]

            def share_taken() -> bool:
                counts = daemon.statuses(hung)
                ended = {S.SUCCESS, S.FAILURE, S.CANCELED} & counts.keys()
                assert not ended, f"a run of the hung tenant ended: {counts}"
                held = hung_api.server.held >= TENANT_SHARE
                return held and counts == {S.STARTED: TENANT_SHARE, S.QUEUED: 1}

            daemon.wait(
                RUNS_SECONDS, share_taken, "3 hung runs each waiting on its request, 1 queued"
            )
            steady = [
                daemon.launch(f"answers.{n}", instance_run_tags("rest_api", f"answers.{n}"))
                for n in steady_names
            ]
            daemon.wait(
                RUNS_SECONDS,
                lambda: daemon.succeeded(steady),
                "the other tenant's runs succeeded while the API hangs",
            )
            # Still hung: its share STARTED, each waiting on its request; the one past it queued.
            report = daemon.report()
            assert daemon.statuses(hung) == {S.STARTED: TENANT_SHARE, S.QUEUED: 1}, report
            assert hung_api.server.held >= TENANT_SHARE, report
            steady_ended = max(r.end_time or 0 for r in daemon.records(steady))
        finally:
            hung_api.server.release()

        daemon.wait(
            RUNS_SECONDS,
            lambda: daemon.succeeded(hung),
            "the hung tenant's runs succeeded once its API answered",
        )
        report = daemon.report()
        hung_records = daemon.records(hung)
        assert min(r.end_time or 0 for r in hung_records) > steady_ended, report
        # The run past the share started only when one of the share had ended.
        first_end = min(r.end_time or 0 for r in hung_records)
        assert sorted(r.start_time or 0 for r in hung_records)[-1] >= first_end, report

        # Every instance normalized exactly once per product; nothing left queued or running.
        tenants = ("hangs", "answers")
        expected = {("hangs", n): (PRODUCTS, PRODUCTS) for n in hung_names}
        expected |= {("answers", n): (PRODUCTS, PRODUCTS) for n in steady_names}
        daemon.wait(
            RUNS_SECONDS,
            lambda: normalized_items(daemon, tenants) == expected and not daemon.unfinished(),
            f"normalized rows {expected} and no run queued or running",
        )
    assert daemon.statuses(hung + steady) == {S.SUCCESS: len(hung) + len(steady)}


def test_runs_of_one_instance_requested_at_once_run_one_after_the_other(daemon: Daemon) -> None:
    with catalog_apis(1) as (api,):
        # Each run takes seconds (three pages, each answered after a second): runs allowed
        # to overlap would.
        api.server.faults.delay_seconds = 1.0
        daemon.add_tenants({"solo": rest_instances(api, ["api"])})
        tags = instance_run_tags("rest_api", "solo.api")
        runs = [
            daemon.launch("solo.api", tags),
            daemon.launch("solo.api", tags),
            # The raw asset's page: Materialize of its partition, without the job's tags.
            daemon.launch("solo.api", {}, asset=RAW),
        ]
        daemon.wait(RUNS_SECONDS, lambda: daemon.succeeded(runs), "solo.api's 3 runs succeeded")
        report = daemon.report()
        records = daemon.records(runs)
        in_order = sorted(records, key=lambda r: r.start_time or 0)
        for before, after in itertools.pairwise(in_order):
            assert (after.start_time or 0) >= (before.end_time or float("inf")), report
        # The asset page's run was given the instance's tags when it was submitted.
        assert records[2].dagster_run.tags.items() >= tags.items(), report
        daemon.wait(
            RUNS_SECONDS,
            lambda: (
                normalized_items(daemon, ("solo",)) == {("solo", "api"): (PRODUCTS, PRODUCTS)}
                and not daemon.unfinished()
            ),
            "solo.api's products normalized once each, no run queued or running",
        )
    raw = daemon.warehouse.fetch_all(
        "SELECT count(*), count(DISTINCT id) FROM raw_rest_api.solo__api__products"
    )
    assert raw == [(PRODUCTS, PRODUCTS)]


BINARY_LOG = b"2026-01-05T10:00:00Z INFO api started\n" + bytes(range(256)) * 40


def log_lines(count: int) -> bytes:
    return b"".join(b"2026-01-05T10:00:%02dZ INFO api request %d\n" % (n, n) for n in range(count))


def test_one_tenants_bad_upload_fails_alone_beside_a_good_tenant(daemon: Daemon) -> None:
    daemon.add_tenants({"lands-bad": [], "lands-good": []})
    bad, beside, good = (
        "logs/lands-bad/blob.log",
        "logs/lands-bad/app.log",
        "logs/lands-good/app.log",
    )
    daemon.s3.put_object(Bucket="landing", Key=bad, Body=BINARY_LOG)
    daemon.s3.put_object(Bucket="landing", Key=beside, Body=log_lines(2))
    daemon.s3.put_object(Bucket="landing", Key=good, Body=log_lines(3))

    def uploads() -> dict[str, tuple]:
        with contextlib.suppress(Exception):
            rows = daemon.warehouse.fetch_all(
                "SELECT object_key, status, reason, rows_loaded, rows_rejected "
                "FROM normalized.uploads WHERE tenant_id IN ('lands-bad', 'lands-good')"
            )
            return {key: tuple(rest) for key, *rest in rows}
        return {}

    def landed() -> list[dg.DagsterRun]:
        records = daemon.instance.get_run_records(dg.RunsFilter(job_name="land_logs"))
        return [r.dagster_run for r in records]

    def objects(run: dg.DagsterRun) -> list[dict[str, Any]]:
        [op] = run.run_config["ops"].values()
        return op["config"]["objects"]

    daemon.wait(
        RUNS_SECONDS,
        lambda: (
            len(uploads()) == 3
            and all(status in ("Completed", "Failed") for status, *_ in uploads().values())
            and sum(len(objects(r)) for r in landed()) == 3
            and all(r.is_finished for r in landed())
        ),
        "the three uploads processed by the landing sensor's runs",
    )
    report = daemon.report()
    runs = landed()
    # One tenant a run (a tick between the uploads may have split a tenant's two in two runs).
    for run in runs:
        assert {o["tenant_id"] for o in objects(run)} == {run.tags["ingest/tenant"]}, report
        assert run.tags.get("dagster/sensor_name") == "landing_logs_sensor", report
    # The platform fails the bad object, not its run.
    assert {r.status for r in runs} == {S.SUCCESS}, report
    reason = "binary data, not a text log (33 of the first 34 lines are not text)"
    assert uploads() == {
        bad: ("Failed", reason, 0, 0),
        beside: ("Completed", None, 2, 0),
        good: ("Completed", None, 3, 0),
    }
    assert daemon.warehouse.fetch_all(
        "SELECT object_key, count(*) FROM normalized.log_records "
        "WHERE tenant_id IN ('lands-bad', 'lands-good') GROUP BY 1 ORDER BY 1"
    ) == [(beside, 2), (good, 3)]
    # The bad object's run names it and why in its log, and its check failed; the good
    # tenant's run's check passed.
    [bad_run] = [r for r in runs if bad in {o["key"] for o in objects(r)}]
    [good_run] = [r for r in runs if r.tags["ingest/tenant"] == "lands-good"]
    warnings = [
        e.message
        for e in daemon.instance.all_logs(bad_run.run_id)
        if e.level >= logging.WARNING and e.message
    ]
    assert any(bad in m and reason in m for m in warnings), warnings
    assert check_outcome(daemon, bad_run.run_id) is False
    assert check_outcome(daemon, good_run.run_id) is True


def check_outcome(daemon: Daemon, run_id: str) -> bool | None:
    """Whether the run's all_objects_completed check passed (None: no evaluation)."""
    for entry in daemon.instance.all_logs(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.check_name == "all_objects_completed":
            return evaluation.passed
    return None
