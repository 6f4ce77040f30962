"""Throughput (issue 14): the project's paths beside each warehouse's own bulk load of the same rows.

Run: .venv/bin/python benchmarks/throughput.py [--rows 1000000 [3000000 ...]] [--events 1000000]
     [--only duckdb|postgres] [--parts anchor,dlt,run,landing] [--quick]

One run, interleaved, prints ONE table (time, rows/s, ratio to the same-shape anchor and to the
old one-key `\\copy`, peak RSS of the part's process tree) and the issue's targets beside the
figures, each said met or not (measured here, never asserted in a test). Per `--rows` size:

- anchor: each warehouse's own bulk load of the CSV's rows into an EMPTY table of
  `normalized.items`' shape and key (`ITEMS.ddl(dialect)`): PostgreSQL `psql \\copy`, DuckDB
  `INSERT INTO ... SELECT * FROM read_csv(...)` + CHECKPOINT. Its input file, in the target's
  shape (the csv instance's mapping, lineage columns filled), is written beforehand, untimed.
  Timed before AND after the paths below; ratios are to the mean of the two, and the anchor rows
  themselves show their drift (x of that mean). Also `\\copy` into a one-key table of the raw
  shape (csv_load.py's old anchor, for continuity).
- dlt: dlt's Arrow fast path on the same raw CSV (filesystem | read_csv_duckdb with pyarrow,
  merge on `sku`; PostgreSQL loads by COPY, `loader_file_format="csv"`), validating nothing.
- run: the project's whole run of a `csv` instance (raw + normalized + rejects, two real Dagster
  runs, csv_load.py's worker), then a re-run on the unchanged file in the same data dir and
  warehouse. Time is the run's own (definitions loaded, runs executed); "proc s" is the child
  process's wall time with Python start-up and imports.
Once, with `--events`: landing: N NDJSON events PUT to the S3 emulator, one sensor tick, one
`land_events` run (landing_events.py's worker), against each warehouse's bulk load into
`normalized.events`' shape (`EVENTS`). Once: the same run and landing commands on a 3-row (3-event)
instance, the reference of the RSS target.

Every part runs in child processes; "peak MB" is the sum of RSS over this script's descendants
(the part's process tree: worker, psql, DuckDB; the S3 emulator left out), sampled every 20 ms,
and never below the worker's own peak (its VmHWM: `_common.peak_rss_mb`; not its ru_maxrss,
which carries this script's own peak over). PostgreSQL's server processes are not in the tree.
Needs `psql` and the PostgreSQL server of INGEST_TEST_POSTGRES_URL (default: local); its
databases (bench_throughput_*) are created and dropped here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import TreePeak, psql_copy_seconds

WAREHOUSES = ("duckdb", "postgres")
PARTS = ("anchor", "dlt", "run", "landing")
TINY = 3  # rows (events) of the reference instance of the RSS target
RSS_ALLOWANCE_MB = 300
FLAT_TOLERANCE = 0.10  # peak RSS at the largest size within 10% of the smallest: flat


@dataclass
class Row:
    """One line of the table: a part measured on one warehouse at one size."""

    size: int
    warehouse: str
    part: str
    seconds: float
    peak_mb: float
    family: str = "items"  # which anchor it is compared with: items or events
    process_s: float | None = None
    rates: bool = True  # rows/s and ratios make sense (not for a re-run with nothing to do)
    anchor: bool = False
    targets: list[str] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.size / self.seconds


def measure(exclude: tuple[int, ...], part: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """`part(*args)` and the peak RSS (MB) of the process tree it ran as."""
    with TreePeak(exclude=exclude) as peak:
        result = part(*args)
    return result, peak.mb


# --------------------------------------------------------------------------- inputs (untimed)


def items_shape_csv(raw_csv: Path, out: Path) -> None:
    """The raw CSV's rows in `normalized.items`' shape: the csv instance's mapping, the source
    columns and lineage filled, the other columns empty."""
    import duckdb

    from ingest_pipeline.domain.entities import ITEMS
    from ingest_pipeline.sandbox.instances import ITEM_CSV_MAPPING

    fixed = {
        "tenant_id": "'bench'",
        "source_type": "'csv'",
        "source_instance": "'catalog'",
        "raw_load_id": "'anchor'",
        "ingested_at": "now()",
    }
    select = []
    for column in ITEMS.columns:
        if column.name in fixed:
            value = fixed[column.name]
        elif column.name in ITEM_CSV_MAPPING:
            value = ITEM_CSV_MAPPING[column.name]
            if column.kind == "timestamptz":
                value = f"{value}::TIMESTAMPTZ"
        else:
            value = "NULL"
        select.append(f"{value} AS {column.name}")
    source = f"read_csv('{raw_csv}', header=true, all_varchar=true)"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {', '.join(select)} FROM {source}) TO '{out}' (HEADER)")


def events_shape_csv(events_csv: Path, out: Path) -> None:
    """landing_events.py's CSV of the events (tenant, then the event's fields) in
    `normalized.events`' shape: the source and lineage columns filled as the landing fills them."""
    import duckdb

    from ingest_pipeline.domain.entities import EVENTS

    fixed = {
        "source_type": "'app_events'",
        "source_instance": "'landing'",
        "raw_load_id": "'anchor'",
        "ingested_at": "now()",
    }
    given = [c for c in EVENTS.column_names if c not in fixed]
    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in given) + "}"
    source = f"read_csv('{events_csv}', header=false, columns={columns})"
    select = ", ".join(f"{fixed[c]} AS {c}" if c in fixed else c for c in EVENTS.column_names)
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT {select} FROM {source}) TO '{out}' (HEADER)")


# --------------------------------------------------------------------------- the anchors


def postgres_anchor(db_url: str, family: str, csv_path: Path) -> float:
    """psql `\\copy` into a new, empty table of the entity's DDL (schema `normalized`)."""
    table, dialect = _entity(family), _dialect(db_url)
    ddl = (
        f"DROP SCHEMA IF EXISTS normalized CASCADE; CREATE SCHEMA normalized; {table.ddl(dialect)}"
    )
    return psql_copy_seconds(db_url, ddl, table.qualified, csv_path, header=True)


def one_key_anchor(db_url: str, raw_csv: Path) -> float:
    """csv_load.py's old anchor: `\\copy` into (sku PRIMARY KEY, name, link, updated)."""
    from csv_load import psql_copy_baseline

    subprocess.run(["psql", db_url, "-qc", "DROP TABLE IF EXISTS bench_copy"], check=True)
    return psql_copy_baseline(raw_csv, db_url)


def duckdb_anchor(db_path: Path, family: str, csv_path: Path) -> float:
    """INSERT INTO a new DuckDB file's table of the entity's DDL SELECT * FROM read_csv, in a
    child process that imports only DuckDB."""
    table = _entity(family)
    dialect = _dialect(f"duckdb:///{db_path}")
    types = {c.name: dialect.sql_type(c.kind) for c in table.columns}
    db_path.unlink(missing_ok=True)
    spec = {"db": str(db_path), "ddl": table.ddl(dialect), "table": table.qualified}
    spec |= {"csv": str(csv_path), "types": types}
    seconds = child_json([sys.executable, __file__, "--worker", "duckdb-anchor", json.dumps(spec)])
    db_path.unlink(missing_ok=True)
    return seconds["seconds"]


def duckdb_anchor_worker(spec: dict[str, Any]) -> dict[str, float]:
    import duckdb

    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in spec["types"].items()) + "}"
    con = duckdb.connect(spec["db"])
    con.execute("CREATE SCHEMA IF NOT EXISTS normalized")
    con.execute(spec["ddl"])
    started = time.perf_counter()
    con.execute(
        f"INSERT INTO {spec['table']} SELECT * FROM "
        f"read_csv('{spec['csv']}', header=true, columns={columns})"
    )
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    [(rows,)] = con.execute(f"SELECT count(*) FROM {spec['table']}").fetchall()
    con.close()
    return {"seconds": seconds, "rows": rows}


def _entity(family: str) -> Any:
    from ingest_pipeline.domain.entities import EVENTS, ITEMS

    return {"items": ITEMS, "events": EVENTS}[family]


def _dialect(url: str) -> Any:
    from ingest_pipeline.lib.warehouse import Warehouse

    return Warehouse(url).sql_dialect


# --------------------------------------------------------------------------- dlt's fast path


def dlt_fast_path(url: str, folder: Path, work: Path) -> dict[str, Any]:
    spec = {"url": url, "folder": str(folder), "pipelines": str(work / "dlt_pipelines")}
    return child_json([sys.executable, __file__, "--worker", "dlt", json.dumps(spec)])


def dlt_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """dlt alone: filesystem | read_csv_duckdb (pyarrow), merge on sku, COPY on PostgreSQL."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.filesystem import filesystem, read_csv_duckdb

    from ingest_pipeline.lib.warehouse import Warehouse

    warehouse = Warehouse(spec["url"])
    files = filesystem(bucket_url=spec["folder"], file_glob="*.csv")
    rows = (files | read_csv_duckdb(chunk_size=100_000, use_pyarrow=True)).with_name("rows")
    rows.apply_hints(primary_key="sku", write_disposition="merge")
    pipeline = dlt.pipeline(
        "bench_dlt_fast",
        destination=warehouse.dlt_destination(),
        dataset_name="dlt_fast",
        pipelines_dir=spec["pipelines"],
    )
    file_format = "csv" if warehouse.dialect == "postgres" else None
    started = time.perf_counter()
    pipeline.run(rows, loader_file_format=file_format)
    seconds = time.perf_counter() - started
    with pipeline.sql_client() as client:
        [(count,)] = client.execute_sql("SELECT count(*) FROM rows")
    return {"seconds": seconds, "rows": count}


# --------------------------------------------------------------------------- child processes


def child_json(command: list[str]) -> dict[str, Any]:
    """Run a worker; its last stdout line as JSON (its stderr shown if it fails)."""
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{command[2:4]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(part: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """`part(*args)` and its wall time."""
    started = time.perf_counter()
    return part(*args), time.perf_counter() - started


def project_run(url: str, folder: Path, work: Path) -> tuple[dict[str, Any], float]:
    """csv_load.py's worker: one real ingest of the csv instance; its report and wall time."""
    from csv_load import run_worker

    try:
        return timed(run_worker, url, folder, work)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"the csv run failed:\n{exc.stderr[-3000:]}") from exc


def landing_run(url: str, work: Path, ndjson: Path) -> tuple[dict[str, Any], float]:
    """landing_events.py's load worker (PUT, sensor tick, land_events run), then the bucket
    emptied so the next landing sees only its own object."""
    import boto3
    from landing_events import run_worker

    report, seconds = timed(run_worker, "load", url, work, str(ndjson))
    s3 = boto3.client("s3", endpoint_url=os.environ["INGEST_S3_ENDPOINT_URL"])
    for obj in s3.list_objects_v2(Bucket="landing").get("Contents", []):
        s3.delete_object(Bucket="landing", Key=obj["Key"])
    return report, seconds


# --------------------------------------------------------------------------- the benchmark


class Bench:
    """Where each warehouse lives for one purpose (anchors, dlt, runs, the tiny reference), and
    the rows measured so far."""

    def __init__(self, stack: contextlib.ExitStack, work: Path, warehouses: list[str]) -> None:
        self.stack, self.work, self.warehouses = stack, work, warehouses
        self.rows: list[Row] = []
        self.exclude: tuple[int, ...] = ()
        self._databases: dict[str, str] = {}

    def url(self, warehouse: str, purpose: str) -> str:
        """A fresh DuckDB file or PostgreSQL database per purpose (and size)."""
        if warehouse == "duckdb":
            return f"duckdb:///{self.work / f'{purpose}.duckdb'}"
        if purpose not in self._databases:
            from ingest_pipeline.sandbox.postgres import throwaway_database

            prefix = f"bench_throughput_{purpose}".replace("-", "_")
            self._databases[purpose] = self.stack.enter_context(throwaway_database(prefix))
        return self._databases[purpose]

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        proc = f", process {row.process_s:.1f}s" if row.process_s else ""
        print(
            f"  {row.size:>10,} {row.warehouse:<8} {row.part:<34} {row.seconds:7.2f}s{proc}, "
            f"{row.peak_mb:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
        return row

    def anchors(self, size: int, family: str, csv_path: Path, when: str) -> None:
        for warehouse in self.warehouses:
            label = f"anchor, {family} shape ({when})"
            if warehouse == "postgres":
                db = self.url("postgres", f"anchor_{size}")
                seconds, mb = measure(self.exclude, postgres_anchor, db, family, csv_path)
            else:
                path = self.work / f"anchor_{family}.duckdb"
                seconds, mb = measure(self.exclude, duckdb_anchor, path, family, csv_path)
            self.add(Row(size, warehouse, label, seconds, mb, family, anchor=True))

    def one_key(self, size: int, raw_csv: Path) -> None:
        db = self.url("postgres", f"anchor_{size}")
        seconds, mb = measure(self.exclude, one_key_anchor, db, raw_csv)
        self.add(Row(size, "postgres", "\\copy one-key table (old anchor)", seconds, mb))

    def dlt(self, size: int, folder: Path) -> None:
        for warehouse in self.warehouses:
            url = self.url(warehouse, f"dlt_{size}")
            work = self.work / f"dlt_{warehouse}_{size}"
            (report, seconds), mb = measure(self.exclude, timed, dlt_fast_path, url, folder, work)
            assert report["rows"] == size, report
            label = "dlt Arrow fast path (merge)"
            self.add(Row(size, warehouse, label, report["seconds"], mb, process_s=seconds))

    def run(self, size: int, folder: Path, purpose: str, label: str, rerun: bool) -> list[Row]:
        """The project's whole run; `rerun`: again over the same data dir and warehouse."""
        rows = []
        for warehouse in self.warehouses:
            url = self.url(warehouse, purpose)
            work = self.work / f"{purpose}_{warehouse}"
            work.mkdir(exist_ok=True)
            (report, seconds), mb = measure(self.exclude, project_run, url, folder, work)
            assert report["status"] == "ok", report["error"]
            expected = 0 if rerun else size
            assert report["rows_normalized"] == expected, report
            mb = max(mb, report["peak_rss_mb"])
            row = Row(size, warehouse, label, report["total_s"], mb, process_s=seconds)
            row.rates = not rerun and size != TINY
            rows.append(self.add(row))
        return rows

    def landing(self, events: int, ndjson: Path, purpose: str, label: str) -> None:
        for warehouse in self.warehouses:
            url = self.url(warehouse, purpose)
            work = self.work / f"{purpose}_landing_{warehouse}"
            (report, seconds), mb = measure(self.exclude, landing_run, url, work, ndjson)
            assert report["success"] and report["status"] == "Completed", report
            assert report["rows"] == events, report
            mb = max(mb, report["peak_mb"])
            row = Row(events, warehouse, label, report["run_s"], mb, "events", seconds)
            row.rates = events != TINY
            self.add(row)


def run_all(args: argparse.Namespace) -> list[Row]:
    from csv_load import write_csv
    from landing_events import write_events

    parts, warehouses = set(args.parts), [w for w in WAREHOUSES if args.only in (None, w)]
    items_parts = parts & {"anchor", "dlt", "run"}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_throughput_")))
        bench = Bench(stack, work, warehouses)
        if "landing" in parts:
            from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator

            emulator = stack.enter_context(S3Emulator())
            os.environ.update(EMULATOR_CREDENTIALS, INGEST_S3_ENDPOINT_URL=emulator.endpoint_url)
            import boto3

            boto3.client("s3", endpoint_url=emulator.endpoint_url).create_bucket(Bucket="landing")
            bench.exclude = (emulator.process.pid,)
        # The references of the RSS target first: they also warm the OS's file cache.
        if "run" in parts:
            tiny = work / "tiny_csv"
            tiny.mkdir()
            write_csv(tiny / "rows.csv", TINY)
            bench.run(TINY, tiny, "tiny", "whole run, 3-row instance", rerun=False)
        if "landing" in parts:
            ndjson, copy_csv = work / "tiny.ndjson", work / "tiny_events.csv"
            write_events(ndjson, copy_csv, TINY)
            bench.landing(TINY, ndjson, "tiny", "landing, 3 events")
        for size in args.rows if items_parts else []:
            folder = work / f"csv_{size}"
            folder.mkdir()
            raw_csv, shaped = folder / "rows.csv", work / f"items_{size}.csv"
            write_csv(raw_csv, size)
            items_shape_csv(raw_csv, shaped)
            print(f"{size:,} CSV rows, {raw_csv.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
            bench.anchors(size, "items", shaped, "before")
            if "postgres" in warehouses:
                bench.one_key(size, raw_csv)
            if "dlt" in parts:
                bench.dlt(size, folder)
            if "run" in parts:
                first = bench.run(size, folder, f"run_{size}", "whole run, first", rerun=False)
                again = bench.run(size, folder, f"run_{size}", "whole run, re-run", rerun=True)
                for a, b in zip(first, again, strict=True):
                    share = b.seconds / a.seconds
                    wall = b.process_s / a.process_s
                    b.targets.append(f"<5% of first: {share:.1%} {met(share < 0.05)}")
                    b.targets.append(f"(with start-up {wall:.0%})")
            bench.anchors(size, "items", shaped, "after")
            shaped.unlink()
        if "landing" in parts:
            ndjson, copy_csv = work / "events.ndjson", work / "events.csv"
            shaped = work / "events_shaped.csv"
            write_events(ndjson, copy_csv, args.events)
            events_shape_csv(copy_csv, shaped)
            print(f"{args.events:,} events, {ndjson.stat().st_size / 1e6:.0f} MB", file=sys.stderr)
            bench.anchors(args.events, "events", shaped, "before")
            bench.landing(args.events, ndjson, "landing", "landing: land_events run")
            bench.anchors(args.events, "events", shaped, "after")
    judge(bench.rows)
    return bench.rows


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def judge(rows: list[Row]) -> None:
    """The issue's targets, written beside the figures they are about."""

    def find(size: int, warehouse: str, part: str) -> Row | None:
        return next(
            (r for r in rows if (r.size, r.warehouse, r.part) == (size, warehouse, part)), None
        )

    for row in rows:
        tiny = find(TINY, row.warehouse, "whole run, 3-row instance")
        if row.part == "whole run, first" and row.size != TINY:
            ratio = anchor_ratio(rows, row)
            if ratio is not None:
                row.targets.append(f">=0.6x anchor {met(ratio >= 0.6)}")
            if dlt := find(row.size, row.warehouse, "dlt Arrow fast path (merge)"):
                times = dlt.seconds / row.seconds
                row.targets.append(f">=2x dlt: {times:.2f}x {met(times >= 2)}")
        elif row.part.startswith("landing:") and row.size != TINY:
            tiny = find(TINY, row.warehouse, "landing, 3 events")
            ratio = anchor_ratio(rows, row)
            if ratio is not None:
                row.targets.append(f">=0.5x anchor {met(ratio >= 0.5)}")
        else:
            continue
        if tiny:
            limit = tiny.peak_mb + RSS_ALLOWANCE_MB
            row.targets.append(f"RSS <={limit:.0f} {met(row.peak_mb <= limit)}")
    sizes = sorted({r.size for r in rows if r.part == "whole run, first" and r.size != TINY})
    for warehouse in WAREHOUSES:
        small = find(sizes[0], warehouse, "whole run, first") if sizes else None
        large = find(sizes[-1], warehouse, "whole run, first") if sizes else None
        if small and large and large is not small:
            growth = large.peak_mb - small.peak_mb
            flat = large.peak_mb <= small.peak_mb * (1 + FLAT_TOLERANCE)
            large.targets.append(f"flat vs {small.size:,}: {growth:+.0f} MB {met(flat)}")


def anchor_ratio(rows: list[Row], row: Row) -> float | None:
    """The mean same-shape anchor time (before and after) over this row's time."""
    anchors = [
        r.seconds
        for r in rows
        if r.anchor and (r.size, r.warehouse, r.family) == (row.size, row.warehouse, row.family)
    ]
    return sum(anchors) / len(anchors) / row.seconds if anchors else None


def one_key_ratio(rows: list[Row], row: Row) -> float | None:
    old = next((r for r in rows if r.size == row.size and r.part.startswith("\\copy one")), None)
    return old.seconds / row.seconds if old and row.family == "items" else None


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'rows':>10} {'warehouse':<9} {'part':<34} {'time s':>8} {'proc s':>7} "
        f"{'rows/s':>10} {'x anchor':>8} {'x 1-key':>7} {'peak MB':>8}  targets"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio, old = anchor_ratio(rows, row), one_key_ratio(rows, row)
        cells = [
            f"{row.size:>10,}",
            f"{row.warehouse:<9}",
            f"{row.part:<34}",
            f"{row.seconds:8.2f}",
            f"{row.process_s:7.1f}" if row.process_s else f"{'':7}",
            f"{row.rows_per_s:10,.0f}" if row.rates else f"{'-':>10}",
            f"{ratio:7.2f}x" if ratio is not None and row.rates else f"{'':8}",
            f"{old:6.2f}x" if old is not None and row.rates else f"{'':7}",
            f"{row.peak_mb:8.0f}",
        ]
        print(" ".join(cells) + ("  " + "; ".join(row.targets) if row.targets else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1_000_000, 3_000_000], help="CSV sizes"
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--only", choices=WAREHOUSES)
    parser.add_argument(
        "--parts", type=lambda s: s.split(","), default=list(PARTS), help=",".join(PARTS)
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 rows and events")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)  # kind, JSON spec
    args = parser.parse_args()
    if args.worker:
        kind, spec = args.worker
        work = {"duckdb-anchor": duckdb_anchor_worker, "dlt": dlt_worker}[kind]
        print(json.dumps(work(json.loads(spec))))
        return
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}: choose from {','.join(PARTS)}")
    if args.quick:
        args.rows, args.events = [20_000], 20_000
    os.environ.setdefault("PGOPTIONS", "-c client_min_messages=warning")  # no NOTICEs from psql
    started = time.perf_counter()
    rows = run_all(args)
    print_table(rows)
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
