"""1M CSV rows → raw → normalized on DuckDB and PostgreSQL, beside PostgreSQL's own \\copy.

Run: .venv/bin/python benchmarks/csv_load.py [--rows 1000000]
Each load runs in its own process (a real Dagster run of `ingest_csv`), so its peak RSS is its own.
Needs `psql` and the PostgreSQL server of INGEST_TEST_POSTGRES_URL (default: local, db `test`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb, psql_copy_seconds

from ingest_pipeline.sandbox.instances import catalog_csv_instance
from ingest_pipeline.sandbox.postgres import throwaway_database

BASELINE_LABEL = "baseline psql \\copy (pk)"


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("sku,name,link,updated\n")
        for n in range(rows):
            out.write(f"SKU-{n},Product {n},https://shop.example/p/{n},2026-01-{n % 28 + 1:02d}\n")


def psql_copy_baseline(csv_path: Path, db_url: str) -> float:
    ddl = "CREATE TABLE bench_copy (sku text PRIMARY KEY, name text, link text, updated text)"
    return psql_copy_seconds(db_url, ddl, "bench_copy", csv_path, header=True)


def run_worker(warehouse_url: str, folder: Path, work: Path) -> dict:
    """One real Dagster run of the csv instance, in a child process; its timings and peak RSS."""
    env = {
        **os.environ,
        "INGEST_WAREHOUSE_URL": warehouse_url,
        "INGEST_DATA_DIR": str(work / "data"),
        "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
    }
    (work / "tenants.yaml").write_text(
        json.dumps({"tenants": {"bench": {"sources": [catalog_csv_instance(folder)]}}}),
        encoding="utf-8",
    )
    out = subprocess.run(
        [sys.executable, __file__, "--worker"], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker() -> None:
    from ingest_pipeline.domain import input_fingerprints
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.domain.tenants import load_source_instances
    from ingest_pipeline.lib.warehouse import Warehouse
    from ingest_pipeline.settings import get_settings

    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    init_warehouse(warehouse)
    [instance] = load_source_instances(settings.tenants_file)
    # As `ingest-pipeline ingest` does: files unchanged since the last whole ingest run nothing,
    # and Dagster is not loaded for them.
    started = time.perf_counter()
    before = input_fingerprints.take(instance)
    if input_fingerprints.unchanged(warehouse, instance, before):
        total = time.perf_counter() - started
        report = {"status": "ok", "error": "", "rows_loaded": 0, "rows_normalized": 0}
        print(json.dumps({**report, "total_s": total, "peak_rss_mb": peak_rss_mb()}))
        return
    outcome, total, steps = _dagster_runs(instance)
    if before and outcome.status == "ok" and not outcome.quarantined:
        input_fingerprints.record(warehouse, instance, before, outcome.run_id)
    peak_mb = peak_rss_mb()
    print(
        json.dumps(
            {
                "status": outcome.status,
                "error": outcome.error,
                "rows_loaded": outcome.rows_loaded,
                "rows_normalized": outcome.rows_normalized,
                "total_s": total,
                "peak_rss_mb": peak_mb,
                "raw_s": steps.get("raw_csv"),
                "normalize_s": steps.get("normalized__items"),
            }
        )
    )


def _dagster_runs(instance) -> tuple:
    """The instance's raw and normalize runs in a throwaway Dagster instance: (outcome, seconds
    from loading the definitions to the end, seconds of each step)."""
    import dagster as dg

    from ingest_pipeline.cli.ingest_runs import AFTER_RUN_TAG, ingest_instance
    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.defs.tenants.sensors import sync_partitions

    with dg.instance_for_test() as store:
        sync_partitions(store)
        started = time.perf_counter()
        outcome = ingest_instance(load_defs(), store, instance)
        total = time.perf_counter() - started
        steps = _step_seconds(store, outcome.run_id)
        # Normalizing is its own run now (normalize_items), tagged with the raw run it followed.
        # None on a re-run of unchanged input: nothing was loaded, nothing is pending.
        for normalize_run in store.get_run_records(
            dg.RunsFilter(tags={AFTER_RUN_TAG: outcome.run_id}), limit=1
        ):
            steps.update(_step_seconds(store, normalize_run.dagster_run.run_id))
    return outcome, total, steps


def _step_seconds(store, run_id: str) -> dict[str, float]:
    starts, seconds = {}, {}
    for entry in store.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type_value == "STEP_START":
            starts[event.step_key] = entry.timestamp
        elif event.event_type_value == "STEP_SUCCESS" and event.step_key in starts:
            seconds[event.step_key] = entry.timestamp - starts[event.step_key]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker()
    with throwaway_database("bench") as db_url, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folder = work / "landing"
        folder.mkdir()
        write_csv(folder / "rows.csv", args.rows)
        print(f"{args.rows:,} CSV rows, {(folder / 'rows.csv').stat().st_size / 1e6:.0f} MB")
        baseline = psql_copy_baseline(folder / "rows.csv", db_url)
        print(f"{BASELINE_LABEL:<34} {baseline:7.1f}s {args.rows / baseline:>10,.0f} rows/s")
        for name, url in [
            ("duckdb", f"duckdb:///{work / 'bench_wh.duckdb'}"),
            ("postgres", db_url),
        ]:
            (work / name).mkdir()
            r = run_worker(url, folder, work / name)
            assert r["status"] == "ok", r["error"]
            assert r["rows_normalized"] == args.rows, r
            for stage, seconds in [
                ("raw (dlt, arrow)", r["raw_s"]),
                ("normalize (pydantic+upsert)", r["normalize_s"]),
                ("raw → normalized, whole run", r["total_s"]),
            ]:
                print(
                    f"{name + ' ' + stage:<34} {seconds:7.1f}s {args.rows / seconds:>10,.0f} rows/s"
                    f"  ({baseline / seconds:.2f}x of \\copy)"
                )
            print(f"{name + ' peak RSS':<34} {r['peak_rss_mb']:7.0f} MB")


if __name__ == "__main__":
    main()
