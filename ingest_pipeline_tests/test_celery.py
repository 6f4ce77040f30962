"""INGEST_EXECUTOR=celery for real: two `ingest-pipeline worker` processes on the local Redis,
Dagster's instance and the warehouse on PostgreSQL, runs started by `dagster job execute` (their
executor is the code location's, from the settings: no run config names it). The steps ran on
the workers (each step's engine event names its Celery worker), on both, and the rows are exact;
each step's logs are in the S3 bucket (INGEST_COMPUTE_LOGS_BUCKET, the emulator), not only on
the disk of the worker that ran it.
Refusals: celery with a DuckDB warehouse or without Dagster on PostgreSQL exits 2, naming why.

Rules the real run keeps (it shares a 2-core machine with another pytest worker in CI):
- The broker is a Redis database of its own, claimed in db 0 for the test (`SET NX`), empty
  before and flushed after: a parallel test or a stray worker never shares its queue.
- Runs are submitted once both workers answer a ping, not after a guessed sleep.
- Each worker starts a session of its own. It is stopped by a SIGTERM, as a supervisor stops
  it (its celery worker must go too: dagster-celery's command forwards no signal); whatever of
  its session is left then is killed and named, whatever happens: no celery process outlives
  the test.
- Each worker reports late acknowledgement and a prefetch of one (`celery inspect conf`).
- On failure, every run's output and both workers' logs are in the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import psutil
import pytest
import redis
import yaml
from celery import Celery

from ingest_pipeline.cli.dagster_home import instance_config
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.lib.executors import CELERY_SETTINGS
from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG
from ingest_pipeline.lib.resources import UNFINISHED_RUN_STATUSES
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline_tests.platform import running_daemon, wait_for_daemon

pytestmark = pytest.mark.integration

INSTANCES = [f"shop-{n}" for n in range(4)]
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]
DAGSTER = str(Path(sys.executable).parent / "dagster")
REDIS = "redis://127.0.0.1:6379"
# Generous: on 2 loaded cores a worker takes 10-40 s to start, a run 20-90 s (imports).
WORKERS_READY_SECONDS = 240
RUNS_SECONDS = 420
STOP_SECONDS = 60
LOGS_BUCKET = "dagster-logs"
# the next minute's tick, the run, the sensor's normalize run, the metrics sensor's run
SCHEDULED_SECONDS = 600
BIG_ROWS = 300_000  # a step of several seconds, to be killed in the middle of


@contextlib.contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A Redis database (1-15) no one else holds, empty; its URL. Flushed and freed after."""
    claims = redis.Redis.from_url(f"{REDIS}/0")
    token = f"{os.getpid()}-{time.time()}"
    for db in range(1, 16):
        key = f"ingest-pipeline-tests:celery-db:{db}"
        if not claims.set(key, token, nx=True, ex=3600):
            continue
        if redis.Redis.from_url(f"{REDIS}/{db}").dbsize():
            claims.delete(key)  # someone's data, not a test's claim: leave it alone
            continue
        try:
            yield f"{REDIS}/{db}"
        finally:
            redis.Redis.from_url(f"{REDIS}/{db}").flushdb()
            if claims.get(key) == token.encode():
                claims.delete(key)
        return
    pytest.fail("no free Redis database among 1-15 on 127.0.0.1:6379")


@pytest.fixture
def celery_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> Iterator[dict[str, str]]:
    with (
        claimed_redis_db() as broker,
        throwaway_database("dagster") as dagster_db,
        throwaway_database("wh") as wh_db,
    ):
        home = tmp_path / "dagster_home"
        home.mkdir()
        boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=LOGS_BUCKET)
        (home / "dagster.yaml").write_bytes(instance_config(POSTGRES_CONFIG, LOGS_BUCKET))
        env = {
            "INGEST_COMPUTE_LOGS_BUCKET": LOGS_BUCKET,
            "INGEST_EXECUTOR": "celery",
            "INGEST_CELERY_BROKER_URL": broker,
            "INGEST_WAREHOUSE_URL": wh_db,
            "INGEST_DAGSTER_PG_URL": dagster_db.replace("postgresql://", "postgresql+psycopg2://"),
            "INGEST_TENANTS_FILE": str(tmp_path / "tenants.yaml"),
            "INGEST_DATA_DIR": str(tmp_path / "data"),
            "INGEST_S3_ENDPOINT_URL": s3_endpoint,
            "DAGSTER_HOME": str(home),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env


class Workers:
    """`ingest-pipeline worker` processes, each in a session of its own."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str) -> None:
        log = self.tmp_path / f"worker-{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*CLI, "worker", "--name", name, "--concurrency", "1"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started.append((name, process, log))

    def wait_until_they_answer(self, broker: str) -> None:
        """Until every started worker answers a ping over the broker (it consumes by then)."""
        wanted = {name for name, _, _ in self.started}
        app = Celery(broker=broker)
        deadline = time.monotonic() + WORKERS_READY_SECONDS
        answered: set[str] = set()
        try:
            while time.monotonic() < deadline:
                for name, process, _ in self.started:
                    assert process.poll() is None, f"worker {name} exited\n{self.logs()}"
                replies = app.control.ping(timeout=2.0) or []
                answered = {node.split("@")[0] for reply in replies for node in reply}
                if wanted <= answered:
                    break
            else:
                pytest.fail(f"workers {sorted(wanted - answered)} never answered\n{self.logs()}")
            # What each worker runs with, as it reports it: one task at a time, acked when done.
            confs = app.control.inspect(timeout=10.0).conf() or {}
            for node, conf in confs.items():
                got = {key: conf.get(key) for key in CELERY_SETTINGS}
                assert got == CELERY_SETTINGS, f"{node} runs with {got}"
            assert {node.split("@")[0] for node in confs} >= wanted, confs
        finally:
            app.close()

    def stop(self) -> list[str]:
        """SIGTERM to each `ingest-pipeline worker` (it stops its celery worker, as in
        production); then SIGKILL to every process of its session still there. Returns what
        did not stop by itself within STOP_SECONDS."""
        for _, process, _ in self.started:
            process.send_signal(signal.SIGTERM)
        stuck = []
        for name, process, _ in self.started:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                stuck.append(f"worker {name}")
            for leftover in _session(process.pid):
                with contextlib.suppress(psutil.Error):
                    stuck.append(f"worker {name}: {' '.join(leftover.cmdline()[:6])}")
                    leftover.kill()
            process.kill()
            process.wait(timeout=30)
        return stuck

    def logs(self) -> str:
        return "".join(
            f"\n===== worker {name} log\n{log.read_text(errors='replace')[-15000:]}"
            for name, _, log in self.started
        )


def _session(sid: int) -> list[psutil.Process]:
    """The live processes of a session: a worker's, wherever their parents went."""
    found = []
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            if os.getsid(process.pid) == sid and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def test_steps_run_on_both_celery_workers_and_rows_are_exact(celery_env, tmp_path):
    sources = []
    for n, name in enumerate(INSTANCES):
        folder = tmp_path / name
        folder.mkdir()
        lines = "".join(
            f"{name}-{i},item {i},https://x.example/{i},2026-01-0{n + 1}\n" for i in range(5)
        )
        (folder / "items.csv").write_text("sku,name,link,updated\n" + lines)
        sources.append(catalog_csv_instance(folder, name))
    Path(celery_env["INGEST_TENANTS_FILE"]).write_text(
        yaml.safe_dump({"tenants": {"acme": {"sources": sources}}})
    )
    init_warehouse(Warehouse(celery_env["INGEST_WAREHOUSE_URL"]))
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)
    env = {**os.environ}  # PYTHONPATH included: the workers and runs import this checkout
    workers = Workers(tmp_path, env)
    outputs: dict[str, str] = {}
    try:
        for name in ("w1", "w2"):
            workers.start(name)
        workers.wait_until_they_answer(celery_env["INGEST_CELERY_BROKER_URL"])
        runs = {name: _execute_ingest_csv(f"acme.{name}", env) for name in INSTANCES}
        deadline = time.monotonic() + RUNS_SECONDS
        for name, run in runs.items():
            try:
                out, _ = run.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                out, _ = run.communicate()
            outputs[name] = f"exit {run.returncode}\n{out.decode(errors='replace')}"
        failed = [name for name, run in runs.items() if run.returncode != 0]
        report = "".join(f"\n===== run {name}: {text}" for name, text in outputs.items())
        assert not failed, f"runs {failed} failed{report}{workers.logs()}"
    finally:
        stuck = workers.stop()
    assert not stuck, f"did not stop on SIGTERM: {stuck}{workers.logs()}"
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_csv"))
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 4
        ran_on = set().union(*(_celery_workers(instance, r.dagster_run.run_id) for r in records))
    assert ran_on == {"w1", "w2"}, workers.logs()  # every step on a worker, and on both
    # The steps' logs, uploaded by the workers: readable from any machine that reaches S3.
    s3 = boto3.client("s3", endpoint_url=celery_env["INGEST_S3_ENDPOINT_URL"])
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LOGS_BUCKET)
        for o in page.get("Contents", [])
    ]
    for record in records:
        run_id = record.dagster_run.run_id
        logged = [k for k in keys if run_id in k and k.endswith(".err")]
        assert logged, f"no step log of run {run_id} in S3: {keys}"
        text = s3.get_object(Bucket=LOGS_BUCKET, Key=logged[0])["Body"].read().decode()
        assert 'STEP_START - Started execution of step "raw_csv"' in text, text[:2000]
    rows = Warehouse(celery_env["INGEST_WAREHOUSE_URL"]).fetch_all(
        "SELECT _source_instance, count(*) FROM raw_csv.acme__shop_0 GROUP BY 1"
    )
    assert rows == [("shop-0", 5)]


def test_a_scheduled_run_steps_on_the_workers_and_the_sensor_normalizes_after(
    celery_env, tmp_path, monkeypatch
):
    """Under a real dagster-daemon: the schedule's tick launches a run with no run config (the
    executor is the code's: the broker from the settings), its step runs on a worker, and the
    normalize run that the automation sensor launches after it completes; an upload to the
    landing bucket is landed by the landing sensor's run, its step on a worker too; the metrics
    sensor's run over the range of days those rows touched builds them on a worker, exactly."""
    # The metrics sensor looks every 30 s, not every 10 minutes.
    monkeypatch.setenv("INGEST_METRICS_REFRESH_MINUTES", "0.5")
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=back) for back in (2, 1, 0)]
    folder = tmp_path / "shop"
    folder.mkdir()
    lines = "".join(f"s-{i},item {i},https://x.example/{i},{today}\n" for i in range(7))
    (folder / "items.csv").write_text("sku,name,link,updated\n" + lines)
    source = catalog_csv_instance(folder, "shop", schedule="* * * * *")
    Path(celery_env["INGEST_TENANTS_FILE"]).write_text(
        yaml.safe_dump({"tenants": {"acme": {"sources": [source]}}})
    )
    init_warehouse(Warehouse(celery_env["INGEST_WAREHOUSE_URL"]))
    s3 = boto3.client("s3", endpoint_url=celery_env["INGEST_S3_ENDPOINT_URL"])
    s3.create_bucket(Bucket="landing")
    # 1, 2 and 3 events on the last three days: one metrics range, three days built.
    events = [
        {"event_id": f"e{n}-{k}", "event_type": "view", "occurred_at": f"{day}T10:00:00Z"}
        for n, day in enumerate(days)
        for k in range(n + 1)
    ]
    body = "".join(json.dumps(event) + "\n" for event in events)
    s3.put_object(Bucket="landing", Key="events/acme/app.ndjson", Body=body.encode())
    home = Path(celery_env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)
    workers = Workers(tmp_path, {**os.environ})
    log = tmp_path / "daemon.log"
    warehouse = Warehouse(celery_env["INGEST_WAREHOUSE_URL"])
    try:
        for name in ("w1", "w2"):
            workers.start(name)
        workers.wait_until_they_answer(celery_env["INGEST_CELERY_BROKER_URL"])
        with (
            running_daemon(home, log, config_file=home / "dagster.yaml") as daemon,
            dg.DagsterInstance.get() as instance,
        ):

            def normalized_and_built() -> bool:
                with contextlib.suppress(Exception):
                    return (
                        warehouse.fetch_all(
                            "SELECT (SELECT count(*) FROM normalized.items), "
                            "(SELECT count(*) FROM normalized.events)"
                        )
                        == [(7, 6)]
                        and _events_by_day(warehouse) == dict(built)
                        and _all_ended(instance, "metrics_daily")
                    )
                return False

            built = list(zip(days, (1, 2, 3), strict=True))
            what = "a scheduled run then normalized, the upload landed, its days' metrics built"
            wait_for_daemon(daemon, log, SCHEDULED_SECONDS, normalized_and_built, what)
            succeeded = instance.get_run_records(
                dg.RunsFilter(job_name="ingest_csv", statuses=[dg.DagsterRunStatus.SUCCESS])
            )
            assert succeeded, "normalized rows without a successful ingest run"
            run = succeeded[-1].dagster_run  # the first one
            workers_of_run = _celery_workers(instance, run.run_id)
            [landed] = instance.get_run_records(dg.RunsFilter(job_name="land_events"))
            landed_on = _celery_workers(instance, landed.dagster_run.run_id)
            metrics_runs = [
                r.dagster_run
                for r in instance.get_run_records(dg.RunsFilter(job_name="metrics_daily"))
            ]
            ranged = [
                r
                for r in metrics_runs
                if r.tags.get("dagster/asset_partition_range_start", "9999") <= str(days[0])
                and r.status == dg.DagsterRunStatus.SUCCESS
            ]
            metrics_on = set().union(*(_celery_workers(instance, r.run_id) for r in ranged))
    finally:
        stuck = workers.stop()
    assert run.tags.get("dagster/schedule_name"), run.tags  # launched by the schedule's tick
    assert run.tags["ingest/source_instance"] == "csv:acme.shop"
    assert not run.run_config, run.run_config  # nothing but the code says where steps go
    assert workers_of_run <= {"w1", "w2"} and workers_of_run, workers.logs()
    assert landed.dagster_run.tags.get("dagster/sensor_name") == "landing_events_sensor"
    assert landed_on <= {"w1", "w2"} and landed_on, workers.logs()
    # One run over the range of days (not a run per day) built the three days, on a worker.
    assert ranged, [(r.run_id, r.status, r.tags) for r in metrics_runs]
    assert ranged[0].tags["dagster/asset_partition_range_end"] == str(today), ranged[0].tags
    assert ranged[0].tags["ingest/metrics_refresh"] == "touched_days"
    assert metrics_on <= {"w1", "w2"} and metrics_on, workers.logs()
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in metrics_runs), metrics_runs
    assert not stuck, stuck


def _all_ended(instance: dg.DagsterInstance, job_name: str) -> bool:
    """The job has runs and none of them is queued or in progress."""
    runs = instance.get_run_records(dg.RunsFilter(job_name=job_name))
    return bool(runs) and not any(r.dagster_run.status in UNFINISHED_RUN_STATUSES for r in runs)


def _events_by_day(warehouse: Warehouse) -> dict[date, int]:
    rows = warehouse.fetch_all(
        "SELECT metric_date, sum(events) FROM metrics.event_metrics_day GROUP BY 1"
    )
    return {date.fromisoformat(str(day)[:10]): int(n) for day, n in rows}


def _celery_workers(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The workers (`w1`) that the run's steps ran on, from its engine events."""
    names = set()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "ENGINE_EVENT":
            worker = event.event_specific_data.metadata.get("Celery worker")
            if worker is not None:
                names.add(worker.value.split("@")[0])
    return names


def test_ingest_from_the_cli_runs_its_steps_on_the_workers(celery_env, tmp_path):
    """`ingest-pipeline ingest` with INGEST_EXECUTOR=celery: the raw run's and the normalize
    run's steps go to the workers (not this process), and the summary is the usual one."""
    folder = tmp_path / "shop"
    folder.mkdir()
    lines = "".join(f"c-{i},item {i},https://x.example/{i},2026-01-01\n" for i in range(4))
    (folder / "items.csv").write_text("sku,name,link,updated\n" + lines)
    Path(celery_env["INGEST_TENANTS_FILE"]).write_text(
        yaml.safe_dump({"tenants": {"acme": {"sources": [catalog_csv_instance(folder, "shop")]}}})
    )
    workers = Workers(tmp_path, {**os.environ})
    try:
        for name in ("w1", "w2"):
            workers.start(name)
        workers.wait_until_they_answer(celery_env["INGEST_CELERY_BROKER_URL"])
        done = subprocess.run(
            [*CLI, "ingest"],
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=RUNS_SECONDS,
        )
    finally:
        stuck = workers.stop()
    assert done.returncode == 0, f"{done.stdout}{done.stderr}{workers.logs()}"
    assert " ok " in done.stdout and "normalized=4" in done.stdout, done.stdout
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter())
        by_job = {r.dagster_run.job_name: r.dagster_run.run_id for r in records}
        assert set(by_job) == {"ingest_csv", "normalize_items"}, by_job
        for job, run_id in by_job.items():
            assert _celery_workers(instance, run_id), f"{job}: no step on a worker"
    assert Warehouse(celery_env["INGEST_WAREHOUSE_URL"]).fetch_all(
        "SELECT count(*) FROM normalized.items"
    ) == [(4,)]
    assert not stuck, stuck


def test_a_step_whose_worker_process_is_killed_runs_again_and_loses_nothing(celery_env, tmp_path):
    """kill -9 of the process running a step, in the middle of it: its worker gives the task
    back (late acknowledgement, rejected when the worker is lost), a worker runs the step
    again, the run succeeds, and the rows are exact: none missing, none doubled."""
    _big_instance(celery_env, tmp_path)
    workers = Workers(tmp_path, {**os.environ})
    try:
        for name in ("w1", "w2"):
            workers.start(name)
        workers.wait_until_they_answer(celery_env["INGEST_CELERY_BROKER_URL"])
        run = _execute_ingest_csv("acme.big", {**os.environ})
        node = _step_started_on(run)
        time.sleep(1.0)  # well inside the step: it reads and loads BIG_ROWS rows
        _pool_process(workers, node.split("@")[0]).kill()
        output = _finished(run, workers)
    finally:
        workers.stop()
    _ran_twice_and_rows_are_exact(celery_env, output)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of its own on 127.0.0.1:5672 (its queues no one else's); its
    broker URL. Deleted after, queues and all."""
    vhost = f"ingest-pipeline-test-{os.getpid()}-{int(time.time())}"
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "add_vhost", vhost], check=True, capture_output=True)
    try:
        subprocess.run(
            [ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True,
            capture_output=True,
        )
        yield f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
    finally:
        subprocess.run([ctl, "delete_vhost", vhost], capture_output=True)


def test_a_worker_lost_whole_on_rabbitmq_hands_its_step_to_the_other(
    celery_env, tmp_path, monkeypatch
):
    """RabbitMQ as the broker (results in Redis): kill -9 of a whole worker (its every process,
    as a lost machine) in the middle of a step. The broker sees its connection close and gives
    the unacknowledged step to the other worker at once (no visibility timeout to wait out, as
    on Redis); the run succeeds, the step ran twice, the second time on the other worker, and
    the rows are exact."""
    _big_instance(celery_env, tmp_path)
    with rabbitmq_vhost() as broker:
        monkeypatch.setenv("INGEST_CELERY_BACKEND_URL", celery_env["INGEST_CELERY_BROKER_URL"])
        monkeypatch.setenv("INGEST_CELERY_BROKER_URL", broker)
        workers = Workers(tmp_path, {**os.environ})
        try:
            for name in ("w1", "w2"):
                workers.start(name)
            workers.wait_until_they_answer(broker)
            run = _execute_ingest_csv("acme.big", {**os.environ})
            lost = _step_started_on(run).split("@")[0]
            time.sleep(1.0)  # well inside the step: it reads and loads BIG_ROWS rows
            (process,) = [p for n, p, _ in workers.started if n == lost]
            # The worker, its celery worker, its pool: every process of its session.
            for member in _session(process.pid):
                with contextlib.suppress(psutil.Error):
                    member.kill()
            output = _finished(run, workers)
        finally:
            workers.stop()
    events = _ran_twice_and_rows_are_exact(celery_env, output)
    ran_on = [
        worker.value.split("@")[0]
        for e in events
        if e.event_type_value == "ENGINE_EVENT"
        for worker in [e.event_specific_data.metadata.get("Celery worker")]
        if worker is not None
    ]
    assert ran_on[0] == lost and ran_on[-1] == ({"w1", "w2"} - {lost}).pop(), ran_on


def _big_instance(celery_env: dict[str, str], tmp_path: Path) -> None:
    """Tenant acme's csv instance `big`: BIG_ROWS rows, a step of several seconds to kill."""
    folder = tmp_path / "big"
    folder.mkdir()
    lines = "".join(f"big-{i},item {i},https://x.example/{i},2026-01-01\n" for i in range(BIG_ROWS))
    (folder / "items.csv").write_text("sku,name,link,updated\n" + lines)
    Path(celery_env["INGEST_TENANTS_FILE"]).write_text(
        yaml.safe_dump({"tenants": {"acme": {"sources": [catalog_csv_instance(folder, "big")]}}})
    )
    init_warehouse(Warehouse(celery_env["INGEST_WAREHOUSE_URL"]))
    with dg.DagsterInstance.get() as instance:
        sync_partitions(instance)


def _execute_ingest_csv(partition: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`dagster job execute` of one ingest_csv partition, in a session of its own."""
    return subprocess.Popen(
        [
            *(DAGSTER, "job", "execute", "-m", "ingest_pipeline.definitions"),
            *("-j", "ingest_csv", "--tags", json.dumps({"dagster/partition": partition})),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _finished(run: subprocess.Popen[bytes], workers: Workers) -> str:
    """The run's output once it ended (killed after RUNS_SECONDS); it must have succeeded."""
    try:
        out, _ = run.communicate(timeout=RUNS_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        out, _ = run.communicate()
    output = out.decode(errors="replace")
    assert run.returncode == 0, f"the run failed:\n{output}{workers.logs()}"
    return output


def _ran_twice_and_rows_are_exact(celery_env: dict[str, str], output: str) -> list[Any]:
    """The one ingest_csv run succeeded, its step started twice (killed, then again), and the
    raw rows are exact: none missing, none doubled. Returns the run's Dagster events."""
    with dg.DagsterInstance.get() as instance:
        (record,) = instance.get_run_records(dg.RunsFilter(job_name="ingest_csv"))
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        entries = instance.all_logs(record.dagster_run.run_id)
    events = [e.dagster_event for e in entries if e.dagster_event is not None]
    starts = [e for e in events if e.event_type_value == "STEP_START"]
    assert len(starts) == 2, f"the step ran {len(starts)} times\n{output}"
    rows = Warehouse(celery_env["INGEST_WAREHOUSE_URL"]).fetch_all(
        "SELECT count(*), count(DISTINCT sku) FROM raw_csv.acme__big"
    )
    assert rows == [(BIG_ROWS, BIG_ROWS)]
    return events


def _step_started_on(run: subprocess.Popen[bytes]) -> str:
    """The worker node (`w1@host`) that started the run's step, once it has."""
    deadline = time.monotonic() + RUNS_SECONDS
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            assert run.poll() is None, "the run ended before its step started"
            for record in instance.get_run_records(dg.RunsFilter(job_name="ingest_csv")):
                events = [e.dagster_event for e in instance.all_logs(record.dagster_run.run_id)]
                types = {e.event_type_value for e in events if e is not None}
                if "STEP_START" in types:
                    for event in events:
                        if event is not None and event.event_type_value == "ENGINE_EVENT":
                            worker = event.event_specific_data.metadata.get("Celery worker")
                            if worker is not None:
                                return worker.value
            time.sleep(0.2)
    pytest.fail("the step never started")


def _pool_process(workers: Workers, name: str) -> psutil.Process:
    """The pool process of worker `name` (its celery worker's child): the one running steps."""
    (process,) = [p for n, p, _ in workers.started if n == name]
    members = _session(process.pid)
    # A pool process is forked from the celery worker: the same command line as its parent.
    pool = [
        m
        for m in members
        if "celery" in " ".join(m.cmdline()) and m.parent().cmdline() == m.cmdline()
    ]
    assert len(pool) == 1, [(m.pid, m.ppid(), m.cmdline()[:6]) for m in members]
    return pool[0]


@pytest.mark.parametrize(
    ("setting", "value", "why"),
    [
        (
            "INGEST_WAREHOUSE_URL",
            "duckdb:///x.duckdb",
            "INGEST_WAREHOUSE_URL must name a PostgreSQL",
        ),
        ("INGEST_DAGSTER_PG_URL", "", "INGEST_DAGSTER_PG_URL must be set"),
    ],
)
def test_celery_without_postgresql_is_refused_at_start(tmp_path, setting, value, why):
    env = {
        **os.environ,
        "INGEST_EXECUTOR": "celery",
        "INGEST_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "INGEST_WAREHOUSE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "INGEST_DAGSTER_PG_URL": "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        "INGEST_DATA_DIR": str(tmp_path),
        setting: value,
    }
    for command in (["worker"], ["init"]):
        done = subprocess.run([*CLI, *command], env=env, capture_output=True, text=True)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "INGEST_EXECUTOR=celery refuses" in done.stderr and why in done.stderr
        assert "Traceback" not in done.stderr
