"""INGEST_EXECUTOR=celery for real: two `ingest-pipeline worker` processes on the local Redis,
Dagster's instance and the warehouse on PostgreSQL, runs started by `dagster job execute` (their
executor is the code location's, from the settings: no run config names it). The steps ran on
the workers (each step's engine event names its Celery worker), on both, and the rows are exact.
Refusals: celery with a DuckDB warehouse or without Dagster on PostgreSQL exits 2, naming why.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import redis
import yaml

from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database

pytestmark = pytest.mark.integration

INSTANCES = [f"shop-{n}" for n in range(4)]
CLI = [sys.executable, "-m", "ingest_pipeline.cli"]
DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture
def celery_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    db = random.randrange(1, 16)
    broker = f"redis://127.0.0.1:6379/{db}"
    with throwaway_database("dagster") as dagster_db, throwaway_database("wh") as wh_db:
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copyfile(POSTGRES_CONFIG, home / "dagster.yaml")
        env = {
            "INGEST_EXECUTOR": "celery",
            "INGEST_CELERY_BROKER_URL": broker,
            "INGEST_WAREHOUSE_URL": wh_db,
            "INGEST_DAGSTER_PG_URL": dagster_db.replace("postgresql://", "postgresql+psycopg2://"),
            "INGEST_TENANTS_FILE": str(tmp_path / "tenants.yaml"),
            "INGEST_DATA_DIR": str(tmp_path / "data"),
            "DAGSTER_HOME": str(home),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env
        redis.Redis.from_url(broker).flushdb()


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
    env = {**os.environ}
    logs = [(tmp_path / f"worker-{n}.log").open("wb") for n in (1, 2)]
    workers = [
        subprocess.Popen(
            [*CLI, "worker", "--name", f"w{n}@%h", "--concurrency", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for n, log in zip((1, 2), logs, strict=True)
    ]
    try:
        time.sleep(5)  # the workers connect to the broker
        runs = [
            subprocess.Popen(
                [
                    *(DAGSTER, "job", "execute", "-m", "ingest_pipeline.definitions"),
                    *(
                        "-j",
                        "ingest_csv",
                        "--tags",
                        json.dumps({"dagster/partition": f"acme.{name}"}),
                    ),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for name in INSTANCES
        ]
        outputs = [run.communicate(timeout=240)[0].decode(errors="replace") for run in runs]
        assert all(run.returncode == 0 for run in runs), outputs[0][-3000:]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        for log in logs:
            log.close()
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_csv"))
        assert [r.dagster_run.status for r in records] == [dg.DagsterRunStatus.SUCCESS] * 4
        ran_on = set()
        for record in records:
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is not None and event.event_type_value == "ENGINE_EVENT":
                    worker = event.event_specific_data.metadata.get("Celery worker")
                    if worker is not None:
                        ran_on.add(worker.value.split("@")[0])
    assert ran_on == {"w1", "w2"}  # every step on a worker, and on both
    rows = Warehouse(celery_env["INGEST_WAREHOUSE_URL"]).fetch_all(
        "SELECT _source_instance, count(*) FROM raw_csv.acme__shop_0 GROUP BY 1"
    )
    assert rows == [("shop-0", 5)]


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
