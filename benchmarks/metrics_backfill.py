"""Backfill 365 daily metrics partitions over 1,000,000 events as one Dagster run.

Run: .venv/bin/python benchmarks/metrics_backfill.py [--events 1000000] [--days 365]
         [--warehouse duckdb|postgres|both]
On DuckDB and on PostgreSQL (a throw-away database on INGEST_TEST_POSTGRES_URL). Prints the
wall time of the run, the cost per day, and the peak RSS of the process that ran it; and, on the
same warehouse and the same generated events, the time of a plain `dbt build` of the same range
from the command line (the baseline): `dagster run: <s> s` and `plain dbt: <s> s` on their own
lines. Both start from an empty `metrics` schema (dbt first, then the schema is dropped and made
again for the Dagster run), so both create every mart and insert the whole range.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _common import peak_rss_mb

from ingest_pipeline.lib.dbt_env import dbt_environment
from ingest_pipeline.sandbox.postgres import throwaway_database

FIRST_DAY = date(2025, 1, 1)
ITEMS = 5_000


def generate_events_sql(events: int, days: int, dialect: str) -> str:
    """1M synthetic events in the warehouse's own SQL (faster than shipping them from Python)."""
    rand = "random()"
    series = (
        f"range({events}) AS t(n)"
        if dialect == "duckdb"
        else f"generate_series(0, {events - 1}) AS t(n)"
    )
    seconds = f"cast(floor({rand} * {days} * 86400) as integer)"
    item = f"cast(floor(power({rand}, 3) * {ITEMS}) as integer)"  # a few items are popular
    return f"""
        INSERT INTO normalized.events
        SELECT 'bench', 'app_events', 'bench', 'e' || n,
               (ARRAY['VIEW','VIEW','VIEW','VIEW','COPY','SAVE','FORK','VOTE'])[1 + cast(floor({rand} * 8) as integer)],
               TIMESTAMPTZ '{FIRST_DAY.isoformat()} 00:00:00+00' + {seconds} * INTERVAL '1 second',
               'item-' || item, 'author-' || (item % 500), 'user-' || cast(floor({rand} * 20000) as integer),
               '10.0.' || cast(floor({rand} * 50) as integer) || '.' || cast(floor({rand} * 250) as integer),
               NULL, NULL, 'bench', now()
        FROM (SELECT n, {item} AS item FROM {series}) AS s
    """


def worker(days: int) -> None:
    import dagster as dg

    from ingest_pipeline.cli.metrics_runs import build_metrics
    from ingest_pipeline.definitions import defs as load_defs

    last = FIRST_DAY + timedelta(days=days - 1)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = build_metrics(load_defs(), instance, FIRST_DAY, last)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "success": result.success,
                "seconds": seconds,
                "peak_rss_mb": peak_rss_mb(),
                # dbt runs in a child process: its peak is the one that matters for the SQL engines.
                "dbt_peak_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN),
            }
        )
    )


def plain_dbt_seconds(warehouse: Any, days: int) -> float:
    """`dbt build` of the same window straight from the command line (the venv's dbt)."""
    from ingest_pipeline.defs.metrics.project import DBT_EXECUTABLE, DBT_PROJECT_DIR

    window = {
        "min_date": FIRST_DAY.isoformat(),
        "max_date": (FIRST_DAY + timedelta(days=days)).isoformat(),
    }
    with tempfile.TemporaryDirectory() as target:
        # As dagster-dbt does: the project's partial parse is copied into the run's target path.
        partial_parse = DBT_PROJECT_DIR / "target" / "partial_parse.msgpack"
        if partial_parse.exists():
            shutil.copy(partial_parse, target)
        command = [
            DBT_EXECUTABLE,
            "build",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            target,
            "--vars",
            json.dumps(window),
        ]
        env = {
            **os.environ,
            **dbt_environment(warehouse),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",  # as dagster-dbt sets it
        }
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, cwd=DBT_PROJECT_DIR)
        return time.perf_counter() - started


def reset_metrics_schema(warehouse: Any) -> None:
    """An empty `metrics` schema again: the next build creates every mart, as the first did."""
    warehouse.execute("DROP SCHEMA IF EXISTS metrics CASCADE")
    warehouse.execute("CREATE SCHEMA metrics")


def run(name: str, url: str, events: int, days: int, work: Path) -> None:
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.lib.warehouse import Warehouse

    warehouse = Warehouse(url)
    init_warehouse(warehouse)
    started = time.perf_counter()
    warehouse.execute(generate_events_sql(events, days, warehouse.dialect))
    if warehouse.dialect != "duckdb":
        # Planner statistics for the new rows now, not when autovacuum gets to them: without
        # them PostgreSQL plans the anti-gaming self-joins as nested loops (minutes, not seconds).
        warehouse.execute("ANALYZE normalized.events")
    generated = time.perf_counter() - started
    dbt_seconds = plain_dbt_seconds(warehouse, days)
    dbt_rows = warehouse.fetch_all("SELECT count(*) FROM metrics.item_metrics_daily")[0][0]
    reset_metrics_schema(warehouse)
    env = {
        # As the Makefile and docker-compose.yml set it (unless the caller says otherwise).
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
        **os.environ,
        "INGEST_WAREHOUSE_URL": url,
        "INGEST_DATA_DIR": str(work / name),
        "INGEST_METRICS_START_DATE": FIRST_DAY.isoformat(),
    }
    out = subprocess.run(
        [sys.executable, __file__, "--worker", "--days", str(days)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["success"], out.stderr[-3000:]
    rows = warehouse.fetch_all("SELECT count(*) FROM metrics.item_metrics_daily")[0][0]
    print(
        f"{name:<10} {events:,} events generated in {generated:.1f}s; backfill of {days} days "
        f"as one run: {r['seconds']:.1f}s ({r['seconds'] / days * 1000:.0f} ms/day), "
        f"{events / r['seconds']:,.0f} events/s, peak RSS {r['peak_rss_mb']:.0f} MB "
        f"(dbt process {r['dbt_peak_rss_mb']:.0f} MB), "
        f"{rows:,} item-day rows"
    )
    assert rows == dbt_rows, f"dagster made {rows:,} item-day rows, plain dbt {dbt_rows:,}"
    print(f"dagster run: {r['seconds']:.1f} s")
    print(f"plain dbt: {dbt_seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--warehouse", choices=("duckdb", "postgres", "both"), default="both")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.days)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.warehouse in ("duckdb", "both"):
            url = f"duckdb:///{work / 'bench_wh.duckdb'}"
            run("duckdb", url, args.events, args.days, work)
        if args.warehouse in ("postgres", "both"):
            with throwaway_database("bench") as db_url:
                run("postgres", db_url, args.events, args.days, work)


if __name__ == "__main__":
    main()
