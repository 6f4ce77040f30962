"""What differs between the warehouse kinds, one small object each (as dlt's `sql_client` per
destination): how to connect, run a statement, stream rows, bulk-upsert an Arrow table, name a
column type, and the dlt destination and dbt target of the same database.

Rules they keep:
- SQL is written once with `%s` placeholders; DuckDB gets `?` (`execute`).
- A connection is committed on success, rolled back on error, and closed.
- The bulk upsert is one set-based `INSERT INTO <table> AS t ... SELECT ... <ON CONFLICT>`:
  DuckDB reads the Arrow table in place; PostgreSQL gets it by COPY into a temp table first
  (~100k rows/s against ~6k for row-by-row statements). On PostgreSQL a batch of new keys (a
  first load) is COPYed straight into its table instead, in a savepoint that a key already
  there rolls back: then the temp table path (the server logs that refused COPY as an error).
- One process at a time may open a DuckDB file for writing: a sensor tick, a run, the CLI and
  the intake wait for each other with backoff (`retry_while_locked`, bounded by
  INGEST_DUCKDB_LOCK_WAIT_SECONDS) and then fail with `WarehouseBusyError` naming the holder.
  Dagster's `duckdb_warehouse` pool already serializes the runs' steps.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
import tenacity

# The lock-wait message keeps the logger it always had (log filters name it).
log = logging.getLogger("ingest_pipeline.lib.warehouse")

# dlt's postgres destination insists on a password even where the server trusts local
# connections; any placeholder works with trust auth.
_PLACEHOLDER_PASSWORD = "unused"

# The portable column kinds (domain/entities.py) as SQL types; a dialect overrides some.
_SQL_TYPES = {
    "text": "TEXT",
    "timestamptz": "TIMESTAMPTZ",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE PRECISION",
    "json": "JSON",
}


class Dialect(ABC):
    """What a warehouse kind does its own way; `DuckDBDialect` and `PostgresDialect`."""

    name: ClassVar[str]
    sql_types: ClassVar[dict[str, str]] = _SQL_TYPES
    # One process at a time opens the database (a DuckDB file): a tool that holds it until it
    # exits (dbt) must have exited before this process opens it again.
    single_process: ClassVar[bool] = False
    # Secondary indexes serve the read API's range scans (PostgreSQL); DuckDB's serve point
    # lookups only, and would slow its loads.
    range_indexes: ClassVar[bool] = False
    # A row's physical id, to delete a bounded batch of rows chosen by a subquery.
    row_id: ClassVar[str] = "rowid"

    def sql_type(self, kind: str) -> str:
        return self.sql_types[kind]

    @abstractmethod
    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API connection; committed on success, rolled back on error."""

    @abstractmethod
    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (`%s` placeholders); returns a cursor to fetch from."""

    @abstractmethod
    def stream(self, con: Any, sql: str, batch_size: int) -> Any:
        """A cursor over the query whose `fetchmany` streams (bounded memory)."""

    @abstractmethod
    def stream_arrow(
        self, con: Any, sql: str, batch_size: int, params: Sequence[Any] = ()
    ) -> Iterator[pa.Table]:
        """The query's rows as Arrow tables of at most `batch_size` rows (bounded memory)."""

    @abstractmethod
    def insert_select(self, con: Any, table: str, rows: pa.Table, conflict: str) -> None:
        """`INSERT INTO table AS t ... SELECT` the rows with the `ON CONFLICT` clause."""

    @abstractmethod
    def savepoint(self, con: Any) -> contextlib.AbstractContextManager[None]:
        """Within a transaction: a statement's failure undoes that statement alone, and the
        transaction goes on."""

    @abstractmethod
    def dlt_destination(self) -> Any:
        """dlt's destination for the same database (the raw layer)."""

    @abstractmethod
    def dbt_environment(self) -> dict[str, str]:
        """The DBT_* variables dbt_metrics/profiles.yml reads for this database."""

    @abstractmethod
    def probe(self, timeout_seconds: float) -> None:
        """Raise unless the database answers `SELECT 1` (a readiness check)."""

    def waiting_for_the_file(self, action: Callable[[], T]) -> T:
        """Run `action`, which opens the database itself (dlt, dbt-duckdb): on DuckDB again
        while another process holds the file, as every other writer waits."""
        return action()

    @contextlib.contextmanager
    def held_open(self) -> Iterator[Callable[[], None]]:
        """For a run of many statements: keeps an embedded database open between them; yields
        `turn()`, to call between statements, which lets another process have the file now
        and then. A server database needs nothing of the kind."""
        yield lambda: None


@dataclass(frozen=True)
class DuckDBDialect(Dialect):
    path: Path
    # How long to wait for a DuckDB file another process holds (None: the setting).
    lock_wait_seconds: float | None = None
    name: ClassVar[str] = "duckdb"
    single_process: ClassVar[bool] = True

    @cached_property
    def engine_settings(self) -> dict[str, Any]:
        """DuckDB's settings for the pipeline's connections and dlt's (INGEST_DUCKDB_THREADS),
        read once per dialect: a connect is frequent, reading the settings costs ~5 ms."""
        from ingest_pipeline.settings import get_settings

        threads = get_settings().duckdb_threads
        return {"threads": threads} if threads else {}

    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._connection()
        try:
            con.execute("BEGIN")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            close_duckdb(con)

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return con.execute(sql.replace("%s", "?"), list(params))

    def stream(self, con: Any, sql: str, batch_size: int) -> Any:
        return con.execute(sql)

    def stream_arrow(
        self, con: Any, sql: str, batch_size: int, params: Sequence[Any] = ()
    ) -> Iterator[pa.Table]:
        # con.sql streams; the result of con.execute would be copied whole first.
        reader = con.sql(sql.replace("%s", "?"), params=list(params) or None).to_arrow_reader(
            batch_size
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])

    def insert_select(self, con: Any, table: str, rows: pa.Table, conflict: str) -> None:
        column_list = ", ".join(rows.column_names)
        con.register("incoming_rows", rows)
        con.execute(
            f"INSERT INTO {table} AS t ({column_list}) "
            f"SELECT {column_list} FROM incoming_rows {conflict}"
        )
        con.unregister("incoming_rows")

    @contextlib.contextmanager
    def savepoint(self, con: Any) -> Iterator[None]:
        # DuckDB has no SAVEPOINT, and a failed statement aborts its transaction: what came
        # before is committed first, a failure rolls back to there and a new transaction begins.
        # Where the guarded statement comes first in its transaction (a batch's upsert), that
        # first commit has nothing to write.
        con.execute("COMMIT")
        con.execute("BEGIN")
        try:
            yield
        except BaseException:
            con.execute("ROLLBACK")
            con.execute("BEGIN")
            raise

    def dlt_destination(self) -> Any:
        # Only a raw load needs dlt: the warehouse's own queries do not pay its import.
        import dlt
        from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

        self.path.parent.mkdir(parents=True, exist_ok=True)
        credentials = DuckDbCredentials(str(self.path), global_config=self.engine_settings)
        return dlt.destinations.duckdb(credentials=credentials)

    def dbt_environment(self) -> dict[str, str]:
        return {"DBT_TARGET": "duckdb", "DBT_DUCKDB_PATH": str(self.path)}

    def probe(self, timeout_seconds: float) -> None:
        with self.connect() as con:
            con.execute("SELECT 1").fetchall()

    def waiting_for_the_file(self, action: Callable[[], T]) -> T:
        return retry_while_locked(self.path, action, self.lock_wait_seconds)

    @contextlib.contextmanager
    def held_open(self) -> Iterator[Callable[[], None]]:
        # DuckDB checkpoints the file when its last connection closes: with a statement per
        # connection that was one checkpoint a batch (a quarter of normalizing 1M rows). One
        # idle connection kept open makes it one per HOLD_SECONDS; `turn()` closes and opens
        # it again after that long, so a sensor tick or the intake waits at most about as long.
        held: list[Any] = []
        since = 0.0

        def turn() -> None:
            nonlocal since
            if held and time.monotonic() - since < HOLD_SECONDS:
                return
            if held:
                close_duckdb(held.pop())
            held.append(self._connection())
            since = time.monotonic()

        turn()
        try:
            yield turn
        finally:
            if held:
                close_duckdb(held.pop())

    def _connection(self) -> duckdb.DuckDBPyConnection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = retry_while_locked(self.path, lambda: open_duckdb(self.path), self.lock_wait_seconds)
        for name, value in self.engine_settings.items():
            con.execute(f"SET GLOBAL {name} = {value}")
        return con


# Threads of one process share one DuckDB database object per file: the first connect makes
# it, the last close tears it down. A connect racing that making or tearing down can get a
# database on which the Python client's Arrow scan is not registered (yet, or any more), and
# the next statement reading an Arrow table fails: `Catalog Error: Table Function with name
# python_arrow_scan does not exist!` (seen in the intake, its audit writer beside a reader;
# 4 in 20,000 racing connects here, none with this lock). Connects and closes take turns
# within a process; statements still run at once.
_DUCKDB_OPEN_CLOSE = threading.Lock()


def open_duckdb(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the file, opened in turn with this process's other opens and closes."""
    with _DUCKDB_OPEN_CLOSE:
        return duckdb.connect(str(path), read_only=read_only)


def close_duckdb(con: duckdb.DuckDBPyConnection) -> None:
    """Close a connection of `open_duckdb`, in turn with this process's other opens and closes."""
    with _DUCKDB_OPEN_CLOSE:
        con.close()


@dataclass(frozen=True)
class PostgresDialect(Dialect):
    dsn: str
    name: ClassVar[str] = "postgres"
    range_indexes: ClassVar[bool] = True
    row_id: ClassVar[str] = "ctid"
    sql_types: ClassVar[dict[str, str]] = {**_SQL_TYPES, "json": "JSONB"}

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        con = psycopg2.connect(self.dsn)
        try:
            yield con
            con.commit()
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()

    def execute(self, con: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = con.cursor()
        # Without parameters psycopg2 must not read '%' in the SQL (LIKE 'a%') as a placeholder.
        cur.execute(sql, tuple(params)) if params else cur.execute(sql)
        return cur

    def stream(self, con: Any, sql: str, batch_size: int) -> Any:
        cur = con.cursor(name="ingest_stream")  # server-side cursor: streams
        cur.itersize = batch_size
        cur.execute(sql)
        return cur

    def stream_arrow(
        self, con: Any, sql: str, batch_size: int, params: Sequence[Any] = ()
    ) -> Iterator[pa.Table]:
        # COPY out to a file, read back by Arrow's CSV reader block by block: no Python object
        # per value, and the file, not memory, holds the result.
        cur = con.cursor()
        sql = cur.mogrify(sql, tuple(params)).decode() if params else sql
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute(f"SELECT * FROM ({sql}) AS query LIMIT 0")
        types = {d.name: _ARROW_OF_OID.get(d.type_code, pa.string()) for d in cur.description}
        with tempfile.TemporaryFile() as spool:
            cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER)", spool)
            spool.seek(0)
            reader = pa_csv.open_csv(
                spool,
                read_options=pa_csv.ReadOptions(block_size=CSV_READ_BLOCK, use_threads=False),
                convert_options=pa_csv.ConvertOptions(
                    column_types=types,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,  # COPY writes NULL bare, '' quoted
                    null_values=[""],
                ),
            )
            # Small blocks, gathered into tables of `batch_size` rows.
            held: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                held.append(batch)
                rows += batch.num_rows
                while rows >= batch_size:
                    table = pa.Table.from_batches(held)
                    yield table.slice(0, batch_size)
                    rest = table.slice(batch_size)
                    held, rows = rest.to_batches(), rest.num_rows
            if rows:
                yield pa.Table.from_batches(held, reader.schema)

    def insert_select(self, con: Any, table: str, rows: pa.Table, conflict: str) -> None:
        column_list = ", ".join(rows.column_names)
        rows = _jsonify_nested(rows)
        copy = f"({column_list}) FROM STDIN WITH (FORMAT csv, HEADER)"
        cur = con.cursor()
        if rows.num_rows >= DIRECT_COPY_ROWS and _copied_straight(cur, table, copy, rows):
            return
        cur.execute(
            f"CREATE TEMP TABLE incoming_rows ON COMMIT DROP AS "
            f"SELECT {column_list} FROM {table} WITH NO DATA"
        )
        _copy_csv(cur, f"COPY incoming_rows {copy}", rows)
        cur.execute(
            f"INSERT INTO {table} AS t ({column_list}) "
            f"SELECT {column_list} FROM incoming_rows {conflict}"
        )
        cur.execute("DROP TABLE incoming_rows")  # a transaction may upsert again

    @contextlib.contextmanager
    def savepoint(self, con: Any) -> Iterator[None]:
        cur = con.cursor()
        cur.execute("SAVEPOINT guarded")
        try:
            yield
        except BaseException:
            cur.execute("ROLLBACK TO SAVEPOINT guarded")
            cur.execute("RELEASE SAVEPOINT guarded")
            raise
        cur.execute("RELEASE SAVEPOINT guarded")

    def dlt_destination(self) -> Any:
        import dlt

        parts = urlsplit(self.dsn)
        if parts.password is None:
            userinfo = f"{parts.username or 'postgres'}:{_PLACEHOLDER_PASSWORD}"
            netloc = f"{userinfo}@{parts.hostname}:{parts.port or 5432}"
            parts = parts._replace(netloc=netloc)
        return dlt.destinations.postgres(credentials=urlunsplit(parts))

    def dbt_environment(self) -> dict[str, str]:
        parts = urlsplit(self.dsn)
        return {
            "DBT_TARGET": "postgres",
            "DBT_PG_HOST": parts.hostname or "127.0.0.1",
            "DBT_PG_PORT": str(parts.port or 5432),
            "DBT_PG_USER": unquote(parts.username or "postgres"),
            "DBT_PG_PASSWORD": unquote(parts.password or ""),
            "DBT_PG_DBNAME": parts.path.lstrip("/") or "postgres",
        }

    def probe(self, timeout_seconds: float) -> None:
        # Its own connection with a connect timeout: a server that does not answer fails the
        # probe in seconds instead of holding a readiness check for the OS's TCP timeout.
        con = psycopg2.connect(self.dsn, connect_timeout=max(1, int(timeout_seconds)))
        try:
            con.cursor().execute("SELECT 1")
        finally:
            con.close()


# A batch of at least this many rows is first COPYed straight into its table (see
# `_copied_straight`); smaller ones (status updates, marks) are mostly about existing keys.
DIRECT_COPY_ROWS = 1000


def _copied_straight(cur: Any, table: str, copy: str, rows: pa.Table) -> bool:
    """COPY the rows straight into the table, in a savepoint: True if every key was new (the
    upsert's outcome, in about half its time: no temp table, no ON CONFLICT); False, rolled
    back, if any was not (or anything else went wrong: the upsert itself says what)."""
    cur.execute("SAVEPOINT straight_copy")
    try:
        _copy_csv(cur, f"COPY {table} {copy}", rows)
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT straight_copy")
        return False
    cur.execute("RELEASE SAVEPOINT straight_copy")
    return True


def _copy_csv(cur: Any, copy: str, rows: pa.Table) -> None:
    """COPY the rows as CSV, written slice by slice while COPY reads: the server parses and
    indexes one slice while this process writes the next (a whole batch written first left the
    server idle for a sixth of the COPY's time)."""
    cur.copy_expert(copy, _CsvSlices(rows), size=COPY_CHUNK_BYTES)


COPY_CHUNK_BYTES = 1 << 20
CSV_SLICE_ROWS = 10_000


class _CsvSlices(io.RawIOBase):
    """A table's CSV (header first) as a readable stream, made CSV_SLICE_ROWS rows at a time."""

    def __init__(self, rows: pa.Table) -> None:
        self.rows = rows
        self.next_row = 0
        self.pending = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending and self.next_row < self.rows.num_rows:
            chunk = io.BytesIO()
            options = pa_csv.WriteOptions(include_header=self.next_row == 0)
            pa_csv.write_csv(self.rows.slice(self.next_row, CSV_SLICE_ROWS), chunk, options)
            self.pending += chunk.getbuffer()
            self.next_row += CSV_SLICE_ROWS
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        del self.pending[:size]
        return size


# The block `PostgresDialect.stream_arrow` reads its COPY output in. With 8 MiB blocks Arrow's CSV
# reader peaked at about the size of the whole result above its start (a 210 MB file: +250 MB,
# 120 MB: +190 MB, 60 MB: +130 MB; any allocator), so the normalize step's memory grew with the
# raw load; with 1 MiB blocks it stays flat (+70 to +85 MB for all three).
CSV_READ_BLOCK = 1 << 20

# How long `DuckDBDialect.held_open` keeps the file between turns.
HOLD_SECONDS = 5.0

# PostgreSQL type oids → the Arrow type a CSV value of it is read as (others: text).
_ARROW_OF_OID = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}


def _jsonify_nested(rows: pa.Table) -> pa.Table:
    """CSV cannot carry structs/lists: send nested columns as JSON text."""
    for index, field in enumerate(rows.schema):
        if pa.types.is_nested(field.type):
            texts = [None if v is None else json.dumps(v) for v in rows.column(index).to_pylist()]
            rows = rows.set_column(index, field.name, pa.array(texts, pa.string()))
    return rows


# --------------------------------------------------------------------------- the DuckDB lock


class WarehouseBusyError(RuntimeError):
    """Another process held the DuckDB file for longer than we wait; the message names it."""


def lock_holder(exc: BaseException) -> str:
    """DuckDB's lock error names the holding program and PID: 'in /usr/bin/python (PID 42)'."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    if not found:
        return "another process"
    program, pid = found.groups()
    return f"PID {pid} ({_command_line(int(pid)) or program})"


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # One line whatever the arguments hold (a `python -c` script has newlines).
        return " ".join(" ".join(w.decode(errors="replace") for w in words).split())[:120]
    return ""


T = TypeVar("T")


def retry_while_locked(
    path: Path, attempt: Callable[[], T], lock_wait_seconds: float | None = None
) -> T:
    """`attempt()`, again with backoff while it fails on the DuckDB file's lock (also when the
    lock error is wrapped, as dlt wraps it). The first wait is logged with the holder; a wait
    past INGEST_DUCKDB_LOCK_WAIT_SECONDS raises WarehouseBusyError naming it."""
    # Tried once before the settings are read: reading them costs ~5 ms, and a file nobody
    # else holds (nearly every connect) never needs them.
    try:
        return attempt()
    except Exception as exc:
        if _lock_conflict_in(exc) is None:
            raise
    from ingest_pipeline.settings import get_settings

    limit = lock_wait_seconds or get_settings().duckdb_lock_wait_seconds

    def announce(state: tenacity.RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            holder = lock_holder(_lock_conflict_in(state.outcome.exception()))
            log.warning(f"waiting up to {limit:g} s for the DuckDB file {path}: held by {holder}")

    def give_up(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        raise WarehouseBusyError(
            f"the DuckDB file {path} stayed locked by {lock_holder(_lock_conflict_in(exc))} "
            f"for {limit:g} s (INGEST_DUCKDB_LOCK_WAIT_SECONDS); try again when it has finished"
        ) from exc

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: _lock_conflict_in(exc) is not None),
        wait=tenacity.wait_random_exponential(multiplier=0.05, max=2),
        stop=tenacity.stop_after_delay(limit),
        before_sleep=announce,
        retry_error_callback=give_up,
    )
    return retrying(attempt)


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def _lock_conflict_in(exc: BaseException | None) -> BaseException | None:
    """The DuckDB lock error in `exc` or among its causes, else None."""
    seen = 0
    while exc is not None and seen < 20:
        if _is_lock_conflict(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
