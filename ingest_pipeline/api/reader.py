"""Read-only access to the warehouse for the read API: one query, its column names and rows.

Rules it keeps:
- Nothing here writes. DuckDB files are opened `read_only`; PostgreSQL sessions start with
  `default_transaction_read_only` and a `statement_timeout`, in UTC.
- DuckDB: a connection per query (open, query, close), so the file is held only while a
  query runs and a pipeline process that writes it waits at most that long. While another
  process holds the file for writing (or a writer of this process has it open), the query
  waits up to INGEST_API_DUCKDB_WAIT_SECONDS with short backoff, then raises `WarehouseBusy`
  (the API answers 503 with Retry-After); it never takes the write lock itself.
- PostgreSQL: a pool of at most INGEST_API_POOL_SIZE connections, opened when first needed
  and reused; a caller waits for a free one up to the statement timeout (then
  `WarehouseBusy`). A connection that broke is closed and the query tried once more on a new
  one (a restarted server costs no failed request); a server that does not answer raises
  `WarehouseUnavailable`, a statement over its time `WarehouseBusy`.
- A table that does not exist raises `MissingTable` (the API tells "not initialized" from a
  fault), never a generic error.
"""

from __future__ import annotations

import contextlib
import math
import queue
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import psycopg2.errors
import psycopg2.extensions

from ingest_pipeline.lib.dialects import close_duckdb, open_duckdb
from ingest_pipeline.lib.warehouse import Warehouse


class WarehouseBusy(Exception):
    """The warehouse cannot answer now (a writer holds the DuckDB file, every pooled connection
    is taken, a statement ran out of time); `retry_after` seconds is a fair wait."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = max(1, math.ceil(retry_after))


class WarehouseUnavailable(Exception):
    """The warehouse does not answer (server down, file unreadable)."""


class MissingTable(Exception):
    """A table the query reads does not exist (no `init` yet, or no dbt build yet)."""


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


class Reader(ABC):
    """Read-only queries against one warehouse (`%s` placeholders)."""

    dialect: str

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> Result: ...

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the warehouse answers `SELECT 1` now."""

    def close(self) -> None:  # noqa: B027 (optional: only a pool has something to release)
        """Release what the reader holds (the pool's connections)."""


def open_reader(
    warehouse_url: str,
    *,
    duckdb_wait_seconds: float = 2.0,
    pool_size: int = 8,
    statement_timeout_seconds: float = 5.0,
) -> Reader:
    """The reader of the warehouse at `warehouse_url` (connects lazily)."""
    warehouse = Warehouse(warehouse_url)
    if warehouse.dialect == "duckdb":
        return DuckDBReader(warehouse.duckdb_path, duckdb_wait_seconds)
    return PostgresReader(warehouse.postgres_dsn, pool_size, statement_timeout_seconds)


# --------------------------------------------------------------------------- DuckDB

# Connects and closes take turns with the rest of the process's (`open_duckdb`, `close_duckdb`:
# a connect racing the database's last close can get a half torn-down database).


class DuckDBReader(Reader):
    dialect = "duckdb"

    def __init__(self, path: Path, wait_seconds: float) -> None:
        self.path = path
        self.wait_seconds = wait_seconds

    def query(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._connection() as con:
            try:
                cursor = con.execute(sql.replace("%s", "?"), list(params))
            except duckdb.CatalogException as exc:
                raise MissingTable(str(exc).splitlines()[0]) from None
            columns = [d[0] for d in cursor.description]
            return Result(columns, cursor.fetchall())

    def probe(self) -> None:
        with self._connection() as con:
            con.execute("SELECT 1").fetchall()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with contextlib.ExitStack() as opened:
            con = self._open()
            opened.callback(close_duckdb, con)
            con.execute("SET TimeZone = 'UTC'")
            yield con

    def _open(self) -> duckdb.DuckDBPyConnection:
        if not self.path.is_file():
            raise MissingTable(f"no DuckDB file at {self.path}")
        deadline = time.monotonic() + self.wait_seconds
        pause = 0.02
        while True:
            try:
                return open_duckdb(self.path, read_only=True)
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                if not _held_by_a_writer(exc):
                    raise WarehouseUnavailable(str(exc).splitlines()[0]) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseBusy(
                    "the DuckDB warehouse is being written by a pipeline run",
                    retry_after=self.wait_seconds,
                )
            time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, 0.25)


def _held_by_a_writer(exc: BaseException) -> bool:
    """Another process's write lock, or a read-write connection of this process (DuckDB opens
    one file with one configuration per process)."""
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


# --------------------------------------------------------------------------- PostgreSQL


class PostgresReader(Reader):
    dialect = "postgres"

    def __init__(self, dsn: str, pool_size: int, statement_timeout_seconds: float) -> None:
        self.dsn = dsn
        self.timeout = statement_timeout_seconds
        self._slots = threading.BoundedSemaphore(pool_size)
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        milliseconds = max(1, int(statement_timeout_seconds * 1000))
        self._options = (
            f"-c default_transaction_read_only=on -c statement_timeout={milliseconds} "
            "-c TimeZone=UTC"
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._slot():
            for attempt in (1, 2):
                con, reused = self._take()
                try:
                    cursor = con.cursor()
                    cursor.execute(sql, tuple(params)) if params else cursor.execute(sql)
                    result = Result([d.name for d in cursor.description], cursor.fetchall())
                except psycopg2.errors.QueryCanceled:
                    self._give_back(con)
                    raise WarehouseBusy(
                        f"the query ran past its {self.timeout:g} s limit", retry_after=5
                    ) from None
                except psycopg2.errors.UndefinedTable as exc:
                    self._give_back(con)
                    raise MissingTable(str(exc).splitlines()[0]) from None
                except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                    _close(con)
                    if reused and attempt == 1:
                        continue  # a pooled connection that broke (server restarted): again
                    raise WarehouseUnavailable(str(exc).splitlines()[0]) from None
                except BaseException:
                    self._give_back(con)
                    raise
                self._give_back(con)
                return result
        raise AssertionError("unreachable")

    def probe(self) -> None:
        self.query("SELECT 1")

    def close(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.timeout):
            raise WarehouseBusy("every warehouse connection is busy", retry_after=1)
        try:
            yield
        finally:
            self._slots.release()

    def _take(self) -> tuple[Any, bool]:
        """A pooled connection (reused: True) or a new one."""
        try:
            con = self._idle.get_nowait()
        except queue.Empty:
            pass
        else:
            if not con.closed:
                return con, True
        try:
            con = psycopg2.connect(
                self.dsn,
                connect_timeout=max(1, math.ceil(self.timeout)),
                application_name="ingest-pipeline-api",
                options=self._options,
            )
        except psycopg2.Error as exc:
            raise WarehouseUnavailable(str(exc).splitlines()[0]) from None
        con.autocommit = True  # one statement, one read-only transaction: no BEGIN/ROLLBACK trips
        return con, False

    def _give_back(self, con: Any) -> None:
        status = con.info.transaction_status if not con.closed else None
        if status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
            self._idle.put(con)
        else:
            _close(con)


def _close(con: Any) -> None:
    with contextlib.suppress(psycopg2.Error):
        con.close()
