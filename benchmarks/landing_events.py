"""1M app events landed through S3 into normalized.events, beside PostgreSQL's own \\copy.

Run: .venv/bin/python benchmarks/landing_events.py [--events 1000000] [--pending 10000] [--privacy]
One S3 emulator (moto server on loopback) for the whole run. Per warehouse (DuckDB, PostgreSQL), a
child process PUTs the NDJSON through a presigned URL, evaluates `landing_events_sensor` and runs
its request (a real Dagster run of `land_events`), so its peak RSS is its own. Then one sensor
over `--pending` small objects waiting at once, ticked until it requests nothing more.
Needs `psql` and the PostgreSQL server of INGEST_TEST_POSTGRES_URL (default: local, db `test`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from _common import peak_rss_mb, psql_copy_seconds

from ingest_pipeline.domain.entities import init_warehouse
from ingest_pipeline.domain.landing import issue_upload_url
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator
from ingest_pipeline.settings import get_settings

BASELINE_LABEL = "baseline psql \\copy (pk)"
TYPES = ("VIEW", "VIEW", "VIEW", "VIEW", "COPY", "SAVE", "FORK", "VOTE")
START = datetime(2026, 1, 1, tzinfo=UTC)


def event(rng: random.Random, n: int) -> dict:
    item = int(rng.random() ** 3 * 5000)  # a few items are popular
    occurred = START + timedelta(seconds=rng.randrange(30 * 86400))
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": rng.choice(TYPES),
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "item_id": f"item-{item}",
        "author_id": f"author-{item % 500}",
        "actor_id": f"user-{rng.randrange(20000)}",
        "ip": f"10.0.{rng.randrange(50)}.{rng.randrange(250)}",
        "session_id": f"s-{n // 20}",
        "properties": {"ref": rng.choice(("home", "search", "feed", "share")), "pos": n % 40},
    }


def write_events(ndjson: Path, csv_path: Path, events: int) -> None:
    """The same events as NDJSON (to upload) and as CSV (for \\copy), one line at a time."""
    rng = random.Random(42)
    with ndjson.open("w") as out, csv_path.open("w", newline="") as copy_file:
        rows = csv.writer(copy_file)
        for n in range(events):
            e = event(rng, n)
            out.write(json.dumps(e) + "\n")
            rows.writerow(["bench", *list(e.values())[:-1], json.dumps(e["properties"])])


def psql_copy_baseline(csv_path: Path, db_url: str) -> float:
    ddl = (
        "CREATE TABLE bench_events (tenant_id text, event_id text, event_type text, "
        "occurred_at timestamptz, item_id text, author_id text, actor_id text, ip text, "
        "session_id text, properties jsonb, PRIMARY KEY (tenant_id, event_id))"
    )
    return psql_copy_seconds(db_url, ddl, "bench_events", csv_path, header=False)


# `--privacy`: the bench tenant pseudonymizes its events' ip and actor_id (domain/privacy.py).
PRIVATE_TENANT = {
    "pii_key_env": "BENCH_PII_KEY",
    "landing": {"events": {"pii": ["ip", "actor_id"]}},
}


def run_worker(
    mode: str, warehouse_url: str, work: Path, arg: str, tenant: dict | None = None
) -> dict:
    """One worker in a child process, with its own settings; its JSON report."""
    work.mkdir()
    document = {"tenants": {"bench": {"sources": [], **(tenant or {})}}}
    (work / "tenants.yaml").write_text(json.dumps(document))
    env = {
        "BENCH_PII_KEY": "bench-secret-key",
        **os.environ,
        "INGEST_WAREHOUSE_URL": warehouse_url,
        "INGEST_DATA_DIR": str(work / "data"),
        "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
    }
    command = [sys.executable, __file__, "--worker", mode, arg]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(mode: str, arg: str) -> None:
    """A Dagster instance and the definitions, then the load or the pending backlog; JSON out."""
    import dagster as dg

    from ingest_pipeline.definitions import defs as load_defs

    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    init_warehouse(warehouse)
    run = load_worker if mode == "load" else pending_worker
    with dg.instance_for_test() as instance:
        print(json.dumps(run(settings, warehouse, load_defs(), instance, arg)))


def tick(defs, instance, cursor: str | None):
    import dagster as dg

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    return defs.resolve_sensor_def("landing_events_sensor")(context)


def load_worker(settings, warehouse: Warehouse, defs, instance, ndjson: str) -> dict:
    import requests

    upload = issue_upload_url(settings, "bench", "events", Path(ndjson).name)
    started = time.perf_counter()
    with open(ndjson, "rb") as body:  # a file object: requests streams it
        requests.put(upload.url, data=body, timeout=3600).raise_for_status()
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    [request] = tick(defs, instance, None).run_requests
    tick_s, before_mb = time.perf_counter() - started, peak_rss_mb()
    started = time.perf_counter()
    result = defs.resolve_job_def("land_events").execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags
    )
    run_s = time.perf_counter() - started
    [(rows,)] = warehouse.fetch_all("SELECT count(*) FROM normalized.events")
    [(status,)] = warehouse.fetch_all("SELECT status FROM normalized.uploads")
    report = {"success": result.success, "rows": rows, "status": status, "peak_mb": peak_rss_mb()}
    times = {"upload_s": upload_s, "tick_s": tick_s, "run_s": run_s, "before_mb": before_mb}
    return {**report, **times}


def pending_worker(settings, warehouse: Warehouse, defs, instance, count: str) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    from botocore.config import Config

    config = Config(max_pool_connections=16)
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, config=config)

    def put(n: int) -> None:  # one event, ~300 bytes
        body = (json.dumps(event(random.Random(n), n)) + "\n").encode()
        s3.put_object(Bucket=settings.landing_bucket, Key=f"events/bench/p/{n}.ndjson", Body=body)

    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(int(count))))
    put_s, cursor, seconds, runs = time.perf_counter() - started, None, [], 0
    while True:
        started = time.perf_counter()
        result = tick(defs, instance, cursor)
        seconds.append(time.perf_counter() - started)
        cursor = result.cursor or cursor
        if not result.run_requests:
            return {"put_s": put_s, "ticks": len(seconds) - 1, "runs": runs, "seconds": seconds}
        runs += len(result.run_requests)


def line(label: str, seconds: float, rate: str = "", of_copy: float | None = None) -> None:
    tail = f"  ({of_copy:.2f}x of \\copy)" if of_copy is not None else ""
    print(f"{label:<34} {seconds:7.1f}s {rate}{tail}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument(
        "--privacy", action="store_true", help="also the DuckDB run with ip, actor_id pseudonymized"
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # mode, file or count
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    with (
        throwaway_database("bench") as db_url,
        tempfile.TemporaryDirectory() as tmp,
        S3Emulator() as emulator,
    ):
        os.environ.update(EMULATOR_CREDENTIALS, INGEST_S3_ENDPOINT_URL=emulator.endpoint_url)
        s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url)
        s3.create_bucket(Bucket="landing")
        work = Path(tmp)
        ndjson, csv_path = work / "events.ndjson", work / "events.csv"
        write_events(ndjson, csv_path, args.events)
        print(f"{args.events:,} events, NDJSON {ndjson.stat().st_size / 1e6:.0f} MB")
        baseline = psql_copy_baseline(csv_path, db_url)
        line(BASELINE_LABEL, baseline, f"{args.events / baseline:>10,.0f} rows/s")
        runs = [("duckdb", f"duckdb:///{work / 'wh.duckdb'}", None), ("postgres", db_url, None)]
        if args.privacy:
            runs.append(("duckdb+pii", f"duckdb:///{work / 'pii.duckdb'}", PRIVATE_TENANT))
        for name, url, tenant in runs:
            r = run_worker("load", url, work / name.replace("+", "_"), str(ndjson), tenant)
            assert r["success"] and r["status"] == "Completed", r
            assert r["rows"] == args.events, r
            for obj in s3.list_objects_v2(Bucket="landing").get("Contents", []):
                s3.delete_object(Bucket="landing", Key=obj["Key"])  # not pending later
            mb_s = ndjson.stat().st_size / 1e6 / r["upload_s"]
            run_s, rate = r["run_s"], args.events / r["run_s"]
            line(f"{name} upload (presigned PUT)", r["upload_s"], f"{mb_s:>7,.0f} MB/s")
            line(f"{name} sensor tick (1 object)", r["tick_s"])
            line(f"{name} land_events run", run_s, f"{rate:>10,.0f} rows/s", baseline / run_s)
            print(f"{name + ' peak RSS':<34} {r['peak_mb']:7.0f} MB ", end="")
            print(f"({r['before_mb']:.0f} MB before the run)")
        pending_url = f"duckdb:///{work / 'pending.duckdb'}"
        r = run_worker("pending", pending_url, work / "pending", str(args.pending))
        line(f"duckdb PUT of {args.pending:,} small objects", r["put_s"], "(16 threads)")
        first, last, total = r["seconds"][0], r["seconds"][-1], sum(r["seconds"])
        print(
            f"duckdb sensor over them: first tick {first:.1f}s, {r['ticks']} ticks requesting "
            f"{r['runs']} runs, then an empty tick {last:.1f}s; {total:.1f}s in all"
        )


if __name__ == "__main__":
    main()
