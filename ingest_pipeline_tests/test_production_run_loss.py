"""A lost run worker in the production shape: the instance of `deploy/dagster.postgres.yaml` on
PostgreSQL, a real `dagster-daemon`, and the runs launched into a code-location server of its
own (`dagster code-server start`, as docker-compose's `code-location` service), where Dagster's
default run launcher starts each run's process.

Rules checked: kill -9 of a run's process in the middle of its step ends the run as a failure
by itself (the code server finds the dead process; no one cancels anything), the run-retry
daemon runs it again (a run that failed without a step failing), the retry succeeds with the
rows exact, and no run is left queued or started.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import pytest
import yaml

from ingest_pipeline.cli.dagster_home import instance_config
from ingest_pipeline.cli.dev import stop_group
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.tenants import instance_run_tags
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG
from ingest_pipeline.lib.resources import UNFINISHED_RUN_STATUSES
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline_tests.platform import wait_for_daemon

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
ROWS = 300_000  # a step of several seconds, to be killed in the middle of
SERVER_SECONDS = 180  # the code server answering its health check (imports on 2 loaded cores)
RECOVERY_SECONDS = 420  # the run started, killed, failed, retried and the retry succeeded
TAGS = instance_run_tags("csv", "acme.big")
# What the daemon's event-log consumer (which runs the run retries) logs at its first pass.
RETRIES_READY = "No cursor for event type DagsterEventType.RUN_FAILURE"


@contextlib.contextmanager
def started(command: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """`command` in a session of its own, output to `log`; it and its children stopped after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop_group(process)


def test_a_run_whose_process_dies_in_the_code_server_fails_alone_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "big"
    folder.mkdir()
    lines = "".join(f"big-{i},item {i},https://x.example/{i},2026-01-01\n" for i in range(ROWS))
    (folder / "items.csv").write_text("sku,name,link,updated\n" + lines)
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        yaml.safe_dump({"tenants": {"acme": {"sources": [catalog_csv_instance(folder, "big")]}}})
    )
    with throwaway_database("dagster") as dagster_db, throwaway_database("wh") as wh_db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_bytes(instance_config(POSTGRES_CONFIG, ""))
        env = {
            "INGEST_WAREHOUSE_URL": wh_db,
            "INGEST_DAGSTER_PG_URL": dagster_db.replace("postgresql://", "postgresql+psycopg2://"),
            "INGEST_TENANTS_FILE": str(tenants),
            "INGEST_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(home),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        init_warehouse(Warehouse(wh_db))
        with dg.DagsterInstance.get() as instance:
            sync_partitions(instance)
        port = free_port()
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {
                            "grpc_server": {
                                "host": "127.0.0.1",
                                "port": port,
                                "location_name": "ingest_pipeline",
                            }
                        }
                    ]
                }
            )
        )
        server_command = [
            *(str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port)),
            *("-m", "ingest_pipeline.definitions", "-a", "defs"),
        ]
        daemon_log = tmp_path / "daemon.log"
        with (
            started(server_command, tmp_path / "code-server.log", {**os.environ}) as server,
            dg.DagsterInstance.get() as instance,
        ):
            _wait_for_health(port, server, tmp_path / "code-server.log")
            daemon_command = [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)]
            with started(daemon_command, daemon_log, {**os.environ}) as daemon:
                # The run-retry consumer starts from the newest event it finds at its first pass:
                # a run that failed before that pass would never be retried.
                wait_for_daemon(
                    daemon,
                    daemon_log,
                    SERVER_SECONDS,
                    lambda: RETRIES_READY in daemon_log.read_text(errors="replace"),
                    "the run-retry consumer's first pass",
                )
                launched = subprocess.run(
                    [
                        *(str(BIN / "dagster"), "job", "launch", "-w", str(workspace)),
                        *("-j", "ingest_csv"),
                        # The tags a schedule's run of the instance carries (Dagster's CLI
                        # adds no partition's tags by itself).
                        *("--tags", json.dumps({"dagster/partition": "acme.big", **TAGS})),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=SERVER_SECONDS,
                )
                assert launched.returncode == 0, launched.stdout + launched.stderr
                [record] = instance.get_run_records(dg.RunsFilter(job_name="ingest_csv"))
                killed = record.dagster_run.run_id
                step_pid = _step_started(instance, killed, daemon, daemon_log)
                time.sleep(1.0)  # well inside the step: it reads and loads ROWS rows
                psutil.Process(step_pid).kill()

                def retried() -> bool:
                    runs = instance.get_runs(dg.RunsFilter(job_name="ingest_csv"))
                    return len(runs) == 2 and all(
                        r.status not in UNFINISHED_RUN_STATUSES for r in runs
                    )

                what = "the killed run failed and its retry ended"
                wait_for_daemon(daemon, daemon_log, RECOVERY_SECONDS, retried, what)
            runs = {r.run_id: r for r in instance.get_runs(dg.RunsFilter(job_name="ingest_csv"))}
            explained = [
                e.message
                for e in instance.all_logs(killed)
                if e.dagster_event is not None
                and e.dagster_event.event_type_value == "ENGINE_EVENT"
            ]
        log_tail = daemon_log.read_text(errors="replace")[-4000:]
        assert runs[killed].status == dg.DagsterRunStatus.FAILURE, log_tail
        # The code server said why: the run's process ended without the run ending.
        assert any(f"Run execution process for {killed}" in m for m in explained), explained
        [retry] = [r for r in runs.values() if r.run_id != killed]
        assert retry.tags.get("dagster/parent_run_id") == killed, retry.tags
        assert retry.status == dg.DagsterRunStatus.SUCCESS, log_tail
        assert {k: retry.tags.get(k) for k in TAGS} == TAGS  # the retry keeps the queue's tags
        rows = Warehouse(wh_db).fetch_all(
            "SELECT count(*), count(DISTINCT sku) FROM raw_csv.acme__big"
        )
        assert rows == [(ROWS, ROWS)]


def _wait_for_health(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the code server exited:\n{log.read_text()[-4000:]}"
        check = subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
            capture_output=True,
        )
        if check.returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"the code server never answered:\n{log.read_text()[-4000:]}")


def _step_started(
    instance: dg.DagsterInstance, run_id: str, daemon: subprocess.Popen, log: Path
) -> int:
    """The pid of the process running the run's step, once the step has started."""
    found: list[int] = []

    def step_started() -> bool:
        found[:] = [
            e.dagster_event.pid
            for e in instance.all_logs(run_id)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_START"
        ]
        return bool(found)

    wait_for_daemon(daemon, log, RECOVERY_SECONDS, step_started, "the run's step started")
    return found[0]
