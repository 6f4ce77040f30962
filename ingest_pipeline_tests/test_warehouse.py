"""The warehouse: one upsert API on both kinds; DuckDB across processes: one writer at a time, the
others wait (not fail)."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from ingest_pipeline.domain.entities import (
    ITEMS,
    NORMALIZED_LOADS,
    REJECTED_RECORDS,
    UPLOADS,
    init_warehouse,
)
from ingest_pipeline.lib import dialects
from ingest_pipeline.lib.dialects import CSV_SLICE_ROWS, DIRECT_COPY_ROWS
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.postgres import throwaway_database

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
    # A log line (INGEST_LOG_FORMAT's text: time, level, logger, then the message).
    assert f"PID {holder.pid}" in lines[0] and " WARNING " in lines[0]
    assert "ingest_pipeline.lib.warehouse: waiting up to 2 s for the DuckDB file" in lines[0]
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


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def warehouse(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    init_warehouse(warehouse)
    return warehouse


def item(title: str, load: str, updated: datetime = T0) -> dict:
    key = {"tenant_id": "t", "source_type": "rss", "source_instance": "b", "external_id": "e"}
    return key | {"title": title, "updated_at": updated, "raw_load_id": load, "ingested_at": T0}


def test_init_creates_the_declared_columns_in_order(warehouse):
    columns = warehouse.table_columns("normalized")
    for table in (ITEMS, UPLOADS, REJECTED_RECORDS, NORMALIZED_LOADS):
        assert columns[table.name] == table.column_names


def test_upsert_updates_a_row_only_when_its_content_changed(warehouse):
    stored = f"SELECT title, raw_load_id FROM {ITEMS.qualified}"
    warehouse.upsert(ITEMS, [item("A", "1")])
    warehouse.upsert(ITEMS, [item("A", "2")])  # lineage alone: no change
    assert warehouse.fetch_all(stored) == [("A", "1")]
    warehouse.upsert(ITEMS, ITEMS.to_arrow([item("B", "3")]))  # Arrow rows alike
    assert warehouse.fetch_all(stored) == [("B", "3")]
    warehouse.upsert(ITEMS, [item("old", "4", T0 - timedelta(days=1))], not_older_than="updated_at")
    assert warehouse.fetch_all(stored) == [("B", "3")]
    warehouse.upsert(ITEMS, [])
    assert warehouse.fetch_all(f"SELECT count(*) FROM {ITEMS.qualified}") == [(1,)]


def test_upsert_writes_only_the_columns_given_and_compares_what_it_is_told(warehouse):
    warehouse.upsert(UPLOADS, [{"upload_id": "u1", "kind": "logs", "status": "Queued"}])
    result = {"upload_id": "u1", "status": "Completed", "rows_loaded": 3}
    columns = ["upload_id", "status", "rows_loaded"]
    warehouse.upsert(UPLOADS, UPLOADS.to_arrow([result], columns), compare=columns[1:])
    assert warehouse.fetch_all(f"SELECT kind, status, rows_loaded FROM {UPLOADS.qualified}") == [
        ("logs", "Completed", 3)
    ]
    reject = {
        "tenant_id": "t",
        "source_type": "rss",
        "source_instance": "b",
        "record_ref": "r",
        "reason": "bad",
        "payload": "{}",
        "raw_load_id": "1",
        "rejected_at": T0,
    }
    warehouse.upsert(REJECTED_RECORDS, [reject])
    later = reject | {"raw_load_id": "2", "rejected_at": T0 + timedelta(hours=1)}
    warehouse.upsert(REJECTED_RECORDS, [later], compare=("reason", "payload"))
    stored = f"SELECT raw_load_id FROM {REJECTED_RECORDS.qualified}"
    assert warehouse.fetch_all(stored) == [("1",)]
    warehouse.upsert(REJECTED_RECORDS, [later])  # by default every non-key column counts
    assert warehouse.fetch_all(stored) == [("2",)]


def test_a_table_without_content_keeps_its_first_row(warehouse):
    mark = {"raw_table": "raw_rss.items", "load_id": "1", "normalized_at": T0}
    warehouse.upsert(NORMALIZED_LOADS, [mark])
    warehouse.upsert(NORMALIZED_LOADS, [mark | {"normalized_at": T0 + timedelta(days=1)}])
    assert warehouse.fetch_all(f"SELECT normalized_at FROM {NORMALIZED_LOADS.qualified}") == [(T0,)]


def many_items(first: int, count: int, title: str, load: str) -> list[dict]:
    return [item(title, load) | {"external_id": f"e{n}"} for n in range(first, first + count)]


def test_a_large_batch_of_new_keys_and_one_with_existing_keys_end_as_one_upsert(warehouse):
    """On PostgreSQL a large batch is first COPYed straight in (new keys) and falls back to the
    ON CONFLICT path when a key exists: the rows must be what the upsert's rules say, either way."""
    warehouse.upsert(ITEMS, many_items(0, 2000, "A", "1"))  # every key new
    # A third existing and unchanged, a third existing and changed, a third new.
    warehouse.upsert(ITEMS, many_items(1000, 500, "A", "2") + many_items(1500, 1500, "B", "2"))
    rows = dict(
        warehouse.fetch_all(
            f"SELECT title || ':' || raw_load_id, count(*) FROM {ITEMS.qualified} GROUP BY 1"
        )
    )
    assert rows == {"A:1": 1500, "B:2": 1500}


def test_threads_of_one_process_upsert_arrow_rows_while_others_connect(tmp_path):
    """The intake's audit writer upserts (an Arrow scan) while other threads open and close the
    same DuckDB file: a connect racing the database's first connect or last close used to leave
    the Arrow scan unregistered (`python_arrow_scan does not exist`, a dropped audit row in CI).
    The race is rare (4 in 20,000 here without the fix), so this runs for a bounded time."""
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    init_warehouse(warehouse)
    errors: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                warehouse.fetch_all(f"SELECT count(*) FROM {NORMALIZED_LOADS.qualified}")
            except Exception as exc:  # every failure is the finding
                errors.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    written, deadline = 0, time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            mark = {"raw_table": "raw_x.t", "load_id": str(written), "normalized_at": T0}
            try:
                warehouse.upsert(NORMALIZED_LOADS, NORMALIZED_LOADS.to_arrow([mark]))
                written += 1
            except Exception as exc:
                errors.append(repr(exc))
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    stored = warehouse.fetch_all(f"SELECT count(*) FROM {NORMALIZED_LOADS.qualified}")
    assert stored == [(written,)] and written > 100


def stored_titles(warehouse: Warehouse) -> list[tuple[str, str]]:
    return warehouse.fetch_all(f"SELECT external_id, title FROM {ITEMS.qualified} ORDER BY 1")


def test_a_transaction_commits_its_statements_together_or_not_at_all(warehouse):
    """A batch's writes (rows, rejects, marks) are one transaction on one connection: nothing is
    seen before its end, and an error undoes all of them."""
    reject = {"tenant_id": "t", "source_type": "rss", "source_instance": "b", "record_ref": "r"}
    reject |= {"reason": "bad", "payload": "{}", "raw_load_id": "1", "rejected_at": T0}
    with warehouse.transaction() as batch:
        batch.upsert(ITEMS, [item("A", "1")])
        batch.upsert(REJECTED_RECORDS, [reject])
        assert batch.fetch_all(f"SELECT count(*) FROM {ITEMS.qualified}") == [(1,)]
        assert stored_titles(warehouse) == []  # another connection: not committed yet
    assert stored_titles(warehouse) == [("e", "A")]
    with pytest.raises(RuntimeError), warehouse.transaction() as batch:
        batch.upsert(ITEMS, [item("B", "2")])
        batch.execute(f"DELETE FROM {REJECTED_RECORDS.qualified}")
        raise RuntimeError("the batch fails")
    assert stored_titles(warehouse) == [("e", "A")]
    assert warehouse.fetch_all(f"SELECT count(*) FROM {REJECTED_RECORDS.qualified}") == [(1,)]


def test_a_refused_statement_in_a_savepoint_undoes_itself_alone(warehouse):
    """What bisecting needs of a batch's transaction: a refused upsert in a savepoint leaves the
    writes before it and lets the ones after it go on (on DuckDB, which has no savepoints and
    aborts a transaction on any error, by a commit before the savepoint)."""
    no_key = item("X", "1") | {"external_id": None}  # a key column cannot be null
    with warehouse.transaction() as batch:
        batch.upsert(ITEMS, [item("A", "1") | {"external_id": "e1"}])
        with pytest.raises(Exception, match=r"(?i)null"), batch.savepoint():
            batch.upsert(ITEMS, [item("B", "1") | {"external_id": "e2"}, no_key])
        batch.upsert(ITEMS, [item("C", "1") | {"external_id": "e3"}])
    assert stored_titles(warehouse) == [("e1", "A"), ("e3", "C")]


def test_a_large_batch_in_a_transaction_ends_as_the_upsert_of_small_batches(warehouse):
    """On PostgreSQL a batch of DIRECT_COPY_ROWS or more is first COPYed straight in, in a
    savepoint of the batch's transaction that a stored key rolls back. Instance "big" gets each
    batch whole in a transaction, instance "small" the same rows in batches below
    DIRECT_COPY_ROWS (the ON CONFLICT path for every row): every column must end the same,
    `not_older_than` kept."""

    def rows(instance: str, first: int, count: int, title: str, load: str, days: int = 0):
        changed = {"source_instance": instance, "updated_at": T0 + timedelta(days=days)}
        return [r | changed for r in many_items(first, count, title, load)]

    def second_delivery(instance: str) -> list[dict]:
        mixed = (
            rows(instance, 0, 500, "A", "2")  # stored, unchanged: lineage alone, no change
            + rows(instance, 500, 500, "B", "2", days=-1)  # changed but older: no change
            + rows(instance, 1000, 500, "C", "2", days=1)  # changed and newer
            + rows(instance, 2000, 1500, "D", "2")  # new
        )
        return [mixed[n] for n in range(0, len(mixed), 2)] + mixed[1::2]  # interleaved

    for batch in (rows("big", 0, 2000, "A", "1"), second_delivery("big")):
        with warehouse.transaction() as writes:
            writes.upsert(ITEMS, batch, not_older_than="updated_at")
    for batch in (rows("small", 0, 2000, "A", "1"), second_delivery("small")):
        for start in range(0, len(batch), DIRECT_COPY_ROWS - 1):
            chunk = batch[start : start + DIRECT_COPY_ROWS - 1]
            warehouse.upsert(ITEMS, chunk, not_older_than="updated_at")
    columns = [c for c in ITEMS.column_names if c != "source_instance"]
    stored = {
        instance: warehouse.fetch_all(
            f"SELECT {', '.join(columns)} FROM {ITEMS.qualified} "
            f"WHERE source_instance = %s ORDER BY external_id",
            (instance,),
        )
        for instance in ("big", "small")
    }
    assert len(stored["big"]) == 3500
    assert stored["big"] == stored["small"]
    titles = Counter(r[columns.index("title")] for r in stored["big"])
    assert titles == {"A": 1500, "C": 500, "D": 1500}  # B was older than the stored row


def test_a_batch_of_several_csv_slices_is_stored_exactly(warehouse):
    """PostgreSQL's COPY reads the CSV slice by slice (CSV_SLICE_ROWS) as it is written: a batch
    of several slices, text with the characters CSV quotes (and an empty string beside a null),
    straight in and through the temp table alike, is stored value for value."""
    texts = ["plain", "a, comma", 'a "quote"', "two\nlines", "", None, "ünïcödé ✓"]

    def rows(load: str) -> list[dict]:
        return [
            item(texts[n % len(texts)], load) | {"external_id": f"e{n}", "author": f"{n}"}
            for n in range(2 * CSV_SLICE_ROWS + 5)
        ]

    for load in ("1", "2"):  # new keys (straight COPY), then the same keys (temp table)
        warehouse.upsert(ITEMS, rows(load))
    stored = warehouse.fetch_all(f"SELECT external_id, title, author FROM {ITEMS.qualified}")
    assert sorted(stored) == sorted((r["external_id"], r["title"], r["author"]) for r in rows("1"))


def test_arrow_batches_of_a_postgres_query_are_whole_batches_in_order(monkeypatch):
    """PostgreSQL reads a query's COPY output in small blocks (CSV_READ_BLOCK: memory flat
    whatever the result's size) and gathers them into tables of `batch_size` rows: every row
    once, in order, typed; the last table the rest."""
    monkeypatch.setattr(dialects, "CSV_READ_BLOCK", 4096)  # many blocks a batch
    with throwaway_database("ingest_test") as url:
        warehouse = Warehouse(url)
        warehouse.execute(
            "CREATE TABLE t AS SELECT n::bigint AS n, 'row ' || n AS label "
            "FROM generate_series(1, 25000) AS n"
        )
        tables = list(warehouse.iter_arrow_batches("SELECT * FROM t ORDER BY n", 10_000))
    assert [t.num_rows for t in tables] == [10_000, 10_000, 5_000]
    assert pa.concat_tables(tables).column("n").to_pylist() == list(range(1, 25_001))
    assert tables[2].column("label")[-1].as_py() == "row 25000"
