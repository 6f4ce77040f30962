"""The same source instances run in-process, on one Celery worker and on two (issue 18).

Run: .venv/bin/python benchmarks/celery_scale.py [--instances 8] [--rows 50000] [--redis-db 15]
Each mode: a fresh Dagster instance and warehouse on PostgreSQL (throwaway databases on
INGEST_TEST_POSTGRES_URL's server), `--instances` CSV instances of `--rows` rows, and one
`dagster job execute` of `ingest_csv` per instance, all started at once (what a backfill or a
burst of schedules asks), timed from the first start to the last end:

- `in_process`: every run's step in its own run process (the default executor);
- `celery, 1 worker` and `celery, 2 workers`: the steps through the local Redis (database
  `--redis-db`, flushed before and after) to `ingest-pipeline worker` processes, one step at a
  time each (`--concurrency 1`), started and answering before the clock starts.

Printed: wall seconds, rows/s over all instances, and the raw rows found (exact or not). On one
2-core machine the workers share the cores with the run processes: Celery's gain is workers on
other machines, which this cannot show; what it shows is the cost of the hand-off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import yaml
from celery import Celery

from ingest_pipeline.cli.dagster_home import instance_config
from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database

BIN = Path(sys.executable).parent
MODES = (("in_process", 0), ("celery, 1 worker", 1), ("celery, 2 workers", 2))
EXECUTE = (
    str(BIN / "dagster"),
    *("job", "execute", "-m", "ingest_pipeline.definitions"),
    *("-j", "ingest_csv"),
)


def write_instances(folder: Path, count: int, rows: int) -> list[dict]:
    sources = []
    for n in range(count):
        data = folder / f"shop-{n}"
        data.mkdir()
        lines = (f"s{n}-{i},item {i},https://x.example/{n}/{i},2026-01-01\n" for i in range(rows))
        with (data / "items.csv").open("w") as out:
            out.write("sku,name,link,updated\n")
            out.writelines(lines)
        sources.append(catalog_csv_instance(data, f"shop-{n}"))
    return sources


@contextlib.contextmanager
def environment(work: Path, sources: list[dict], executor: str, broker: str) -> Iterator[dict]:
    """The settings of one mode: its own Dagster instance and warehouse databases."""
    with throwaway_database("bench_dagster") as dagster_db, throwaway_database("bench_wh") as wh:
        home = work / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_bytes(instance_config(POSTGRES_CONFIG, ""))
        (work / "tenants.yaml").write_text(
            yaml.safe_dump({"tenants": {"acme": {"sources": sources}}})
        )
        env = {
            **os.environ,
            "INGEST_EXECUTOR": executor,
            "INGEST_CELERY_BROKER_URL": broker,
            "INGEST_WAREHOUSE_URL": wh,
            "INGEST_DAGSTER_PG_URL": dagster_db.replace("postgresql://", "postgresql+psycopg2://"),
            "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
            "INGEST_DATA_DIR": str(work / "data"),
            "DAGSTER_HOME": str(home),
        }
        os.environ.update(env)  # sync_partitions and init below read the same settings
        init_warehouse(Warehouse(wh))
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            sync_partitions(instance)
        yield env


@contextlib.contextmanager
def workers(count: int, env: dict, work: Path, broker: str) -> Iterator[None]:
    started = []
    for n in range(count):
        log = (work / f"worker-{n}.log").open("wb")
        started.append(
            subprocess.Popen(
                [str(BIN / "ingest-pipeline"), "worker", "--name", f"bench{n}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        app = Celery(broker=broker)
        deadline = time.monotonic() + 240
        while count:
            replies = app.control.ping(timeout=2.0) or []
            if len(replies) >= count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not answer; see {work}/worker-*.log")
        app.close()
        yield
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def run_all(env: dict, sources: list[dict]) -> float:
    """Every instance's run at once; wall seconds until the last one ends (all must succeed)."""
    started = time.perf_counter()
    runs = [
        subprocess.Popen(
            [*EXECUTE, "--tags", json.dumps({"dagster/partition": f"acme.{s['name']}"})],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for s in sources
    ]
    failed = [err for run in runs if (err := run.communicate()[1]) is not None and run.returncode]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed; the first:\n{failed[0].decode()[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=8)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--redis-db", type=int, default=15)
    args = parser.parse_args()
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    total = args.instances * args.rows
    print(f"{args.instances} csv instances of {args.rows:,} rows, all runs started at once")
    print(f"{'mode':<20} {'wall s':>8} {'rows/s':>9}  raw rows")
    for mode, count in MODES:
        redis.Redis.from_url(broker).flushdb()
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            sources = write_instances(work, args.instances, args.rows)
            executor = "in_process" if count == 0 else "celery"
            with (
                environment(work, sources, executor, broker) as env,
                workers(count, env, work, broker),
            ):
                seconds = run_all(env, sources)
                warehouse = Warehouse(env["INGEST_WAREHOUSE_URL"])
                rows = sum(
                    warehouse.fetch_all(f"SELECT count(*) FROM raw_csv.acme__shop_{n}")[0][0]
                    for n in range(args.instances)
                )
        exact = "exact" if rows == total else f"{rows:,} of {total:,}"
        print(f"{mode:<20} {seconds:8.1f} {total / seconds:9,.0f}  {exact}")
    redis.Redis.from_url(broker).flushdb()


if __name__ == "__main__":
    main()
