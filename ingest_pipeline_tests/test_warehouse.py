"""The DuckDB warehouse across processes: one writer at a time, the others wait (not fail)."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingest_pipeline.lib.warehouse import Warehouse

pytestmark = pytest.mark.integration


def hold_duckdb_file(path: Path, seconds: float) -> subprocess.Popen:
    """Another process that opens the file, writes, and keeps it for `seconds`."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(path)!r})
                con.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
                con.execute("INSERT INTO t VALUES (1)")
                print("locked", flush=True)
                time.sleep({seconds})
                con.close()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_process_waits_for_the_duckdb_lock_instead_of_failing(tmp_path):
    path = tmp_path / "wh.duckdb"
    warehouse = Warehouse(f"duckdb:///{path}")
    warehouse.execute("CREATE TABLE t (n INTEGER)")
    holder = hold_duckdb_file(path, 2)
    started = time.monotonic()
    warehouse.execute("INSERT INTO t VALUES (2)")  # blocked until the other process lets go
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert warehouse.fetch_all("SELECT n FROM t ORDER BY n") == [(1,), (2,)]
    assert waited > 0.5


def test_the_cli_waits_with_a_message_then_fails_in_one_line_naming_the_holder(tmp_path):
    path = tmp_path / "wh.duckdb"
    holder = hold_duckdb_file(path, 30)
    try:
        env = {
            **os.environ,
            "INGEST_WAREHOUSE_URL": f"duckdb:///{path}",
            "INGEST_DUCKDB_LOCK_WAIT_SECONDS": "2",
        }
        started = time.monotonic()
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ingest-pipeline"), "init"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        waited = time.monotonic() - started
    finally:
        holder.kill()
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"PID {holder.pid}" in lines[0] and lines[0].startswith("waiting up to 2 s")
    assert lines[-1].startswith("error: the DuckDB file") and f"PID {holder.pid}" in lines[-1]
    assert waited >= 2


def test_a_raw_load_waits_for_a_duckdb_file_held_by_another_process(duck_env, feed_server):
    """dlt opens the file itself: held by a process outside Dagster's pool (a sensor tick, the
    intake), the raw step waits and loads instead of failing the instance."""
    duck_env.write_tenants(
        {"acme": [{"type": "rss", "name": "blog", "url": f"{feed_server.server.url}/feed.xml"}]}
    )
    holder = hold_duckdb_file(duck_env.warehouse.duckdb_path, 4)
    try:
        [outcome] = duck_env.ingest()
    finally:
        holder.wait(timeout=30)
    assert outcome.status == "ok", outcome.error
    assert outcome.rows_loaded == 3 and outcome.rows_normalized == 3
