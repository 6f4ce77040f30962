"""1M partner crawl items landed through S3 into normalized.items: the record path and the bulk
path, beside each warehouse's own bulk load of the same rows (issue 14).

Run: .venv/bin/python benchmarks/landing_crawl.py [--items 1000000] [--only duckdb|postgres]
     [--rounds 1]

One S3 emulator (moto server on loopback) for the whole run. The items are one NDJSON object
(`crawl/bench/partner/items.ndjson`, a quarter of them under the other names `_crawl_fields`
maps: `id`, `name`, `link`, and every item with members the landing does not read). Per
warehouse, interleaved in one run: the anchor, then per round a `land_crawl` run by the record
path (`crawl_rows`, as before the bulk path) and one by the bulk path (`crawl_batches`), then the
anchor again. Each landing is a child process that PUTs the object, evaluates
`landing_crawl_sensor` and runs its request (a real Dagster run of `land_crawl`) into a fresh
warehouse, so its peak RSS (VmHWM of that process, DuckDB in it) is its own; time is the run's.

The anchor is throughput.py's: the same rows in `normalized.items`' shape (`ITEMS.ddl`, its
key) bulk-loaded into an empty table: PostgreSQL `psql \\copy`, DuckDB `INSERT INTO ... SELECT *
FROM read_csv(...)` + CHECKPOINT; ratios are to the mean of the anchor before and after.
Needs `psql` and the PostgreSQL server of INGEST_TEST_POSTGRES_URL (default: local).
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from _common import peak_rss_mb
from throughput import duckdb_anchor, postgres_anchor

from ingest_pipeline.domain.entities import ITEMS, init_warehouse
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.postgres import throwaway_database
from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator
from ingest_pipeline.settings import get_settings

KEY = "crawl/bench/partner/items.ndjson"
START = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ("oak", "linen", "lamp", "sofa", "table", "chair", "rug", "shelf", "desk", "bed")


def item(rng: random.Random, n: int) -> tuple[dict, dict]:
    """(the partner's JSON item, its normalized row's given fields)."""
    published = START + timedelta(seconds=rng.randrange(300 * 86400))
    updated = published + timedelta(seconds=rng.randrange(30 * 86400))
    fields = {
        "external_id": f"p-{n}",
        "title": " ".join(rng.choice(WORDS) for _ in range(3)).title(),
        "summary": " ".join(rng.choice(WORDS) for _ in range(12)),
        "url": f"https://partner.example/items/p-{n}",
        "author": f"seller-{rng.randrange(5000)}",
        "published_at": published.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    names = ("externalId", "title", "summary", "url", "author", "publishedAt", "updatedAt")
    if n % 4 == 3:  # the other names a partner may use
        names = ("id", "name", "description", "link", "authorName", "published_at", "updated_at")
    record = dict(zip(names, fields.values(), strict=True))
    record |= {"price": round(rng.random() * 500, 2), "tags": [rng.choice(WORDS), "new"]}
    return record, fields


def write_items(ndjson: Path, anchor_csv: Path, items: int) -> None:
    """The items as NDJSON (to upload) and in normalized.items' shape (the anchor's input)."""
    rng = random.Random(42)
    lineage = {
        "tenant_id": "bench",
        "source_type": "crawl",
        "source_instance": "partner",
        "raw_load_id": "anchor",
        "ingested_at": datetime.now(UTC).isoformat(),
    }
    with ndjson.open("w") as out, anchor_csv.open("w", newline="") as copy_file:
        rows = csv.writer(copy_file)
        rows.writerow(ITEMS.column_names)
        for n in range(items):
            record, fields = item(rng, n)
            out.write(json.dumps(record) + "\n")
            row = {**fields, **lineage}
            rows.writerow([row[name] for name in ITEMS.column_names])


def run_worker(path: str, warehouse_url: str, work: Path, ndjson: Path) -> dict:
    """One landing in a child process, with its own settings; its JSON report."""
    work.mkdir()
    (work / "tenants.yaml").write_text(json.dumps({"tenants": {"bench": {"sources": []}}}))
    env = {
        **os.environ,
        "INGEST_WAREHOUSE_URL": warehouse_url,
        "INGEST_DATA_DIR": str(work / "data"),
        "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
    }
    command = [sys.executable, __file__, "--worker", path, str(ndjson)]
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{path} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker(path: str, ndjson: str) -> None:
    """PUT the object, one sensor tick, one `land_crawl` run by `path`; JSON out."""
    import dagster as dg

    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.defs.landing import loaders

    if path == "record":  # as before the bulk path: every line by the record path
        loaders.crawl_batches = loaders.crawl_rows
    settings = get_settings()
    warehouse = Warehouse(settings.resolved_warehouse_url)
    init_warehouse(warehouse)
    defs = load_defs()
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)
    started = time.perf_counter()
    s3.upload_file(ndjson, settings.landing_bucket, KEY)
    upload_s = time.perf_counter() - started
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=defs.resources)
        [request] = defs.resolve_sensor_def("landing_crawl_sensor")(context).run_requests
        before_mb = peak_rss_mb()
        started = time.perf_counter()
        result = defs.resolve_job_def("land_crawl").execute_in_process(
            run_config=request.run_config, instance=instance, tags=request.tags
        )
        run_s = time.perf_counter() - started
    [(rows,)] = warehouse.fetch_all("SELECT count(*) FROM normalized.items")
    [(rejects,)] = warehouse.fetch_all("SELECT count(*) FROM normalized.rejected_records")
    [(status,)] = warehouse.fetch_all("SELECT status FROM normalized.uploads")
    s3.delete_object(Bucket=settings.landing_bucket, Key=KEY)  # not pending for the next one
    report = {"success": result.success, "rows": rows, "rejects": rejects, "status": status}
    print(
        json.dumps(
            report
            | {
                "upload_s": upload_s,
                "run_s": run_s,
                "before_mb": before_mb,
                "peak_mb": peak_rss_mb(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("duckdb", "postgres"))
    parser.add_argument("--rounds", type=int, default=1, help="record/bulk pairs per warehouse")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # path, file
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    with tempfile.TemporaryDirectory() as tmp, S3Emulator() as emulator:
        os.environ.update(EMULATOR_CREDENTIALS, INGEST_S3_ENDPOINT_URL=emulator.endpoint_url)
        boto3.client("s3", endpoint_url=emulator.endpoint_url).create_bucket(Bucket="landing")
        work = Path(tmp)
        ndjson, anchor_csv = work / "items.ndjson", work / "items.csv"
        write_items(ndjson, anchor_csv, args.items)
        print(f"{args.items:,} crawl items, NDJSON {ndjson.stat().st_size / 1e6:.0f} MB")
        print(f"{'part':<36} {'seconds':>8} {'rows/s':>10} {'x anchor':>9} {'peak MB':>8}")
        for name in ("duckdb", "postgres"):
            if args.only and name != args.only:
                continue
            with throwaway_database("bench_crawl_anchor") as anchor_url:

                def anchor(name: str = name, anchor_url: str = anchor_url) -> float:
                    if name == "duckdb":
                        return duckdb_anchor(work / "anchor.duckdb", "items", anchor_csv)
                    return postgres_anchor(anchor_url, "items", anchor_csv)

                before = anchor()
                landings = []
                for n in range(args.rounds):
                    for path in ("record", "bulk"):
                        with throwaway_database("bench_crawl") as db_url:
                            duck = f"duckdb:///{work / f'{name}_{path}_{n}.duckdb'}"
                            url = duck if name == "duckdb" else db_url
                            r = run_worker(path, url, work / f"{name}_{path}_{n}", ndjson)
                        assert r["success"] and r["status"] == "Completed", r
                        assert (r["rows"], r["rejects"]) == (args.items, 0), r
                        landings.append((path, r))
                after = anchor()
            mean = (before + after) / 2
            for label, seconds in (("before", before), ("after", after)):
                rate = args.items / seconds
                print(
                    f"{f'{name} anchor ({label})':<36} {seconds:8.1f} {rate:>10,.0f} "
                    f"{mean / seconds:>8.2f}x"
                )
            for path, r in landings:
                rate = args.items / r["run_s"]
                print(
                    f"{f'{name} land_crawl, {path} path':<36} {r['run_s']:8.1f} {rate:>10,.0f} "
                    f"{mean / r['run_s']:>8.2f}x {r['peak_mb']:>8.0f}"
                )


if __name__ == "__main__":
    main()
