"""The DuckDB warehouse across processes: one writer at a time, the others wait (not fail)."""

import subprocess
import sys
import textwrap
import time

from ingest_pipeline.lib.warehouse import Warehouse


def test_a_second_process_waits_for_the_duckdb_lock_instead_of_failing(tmp_path):
    path = tmp_path / "wh.duckdb"
    warehouse = Warehouse(f"duckdb:///{path}")
    warehouse.execute("CREATE TABLE t (n INTEGER)")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(path)!r})
                con.execute("INSERT INTO t VALUES (1)")
                print("locked", flush=True)
                time.sleep(2)
                con.close()
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    warehouse.execute("INSERT INTO t VALUES (2)")  # blocked until the other process lets go
    waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert warehouse.fetch_all("SELECT n FROM t ORDER BY n") == [(1,), (2,)]
    assert waited > 0.5
