"""The warehouse: one DuckDB file (embedded default) or a PostgreSQL database.

dlt writes the raw layer through its own destinations; this module owns what dlt cannot give:
tables with enforced keys (the normalized layer) and fast set-based upserts into them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import dlt
import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv
import tenacity

# dlt's postgres destination insists on a password even where the server trusts local
# connections; any placeholder works with trust auth.
_PLACEHOLDER_PASSWORD = "unused"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Warehouse:
    url: str
    # How long to wait for a DuckDB file another process holds (None: the setting).
    lock_wait_seconds: float | None = None

    @property
    def dialect(self) -> str:
        scheme = urlsplit(self.url).scheme
        if scheme == "duckdb":
            return "duckdb"
        if scheme.startswith("postgres"):
            return "postgres"
        raise ValueError(
            f"unsupported warehouse URL scheme {scheme!r} (duckdb:// or postgresql://)"
        )

    @property
    def duckdb_path(self) -> Path:
        return Path(self.url.removeprefix("duckdb:///").removeprefix("duckdb://"))

    @property
    def postgres_dsn(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))

    def dlt_destination(self) -> Any:
        if self.dialect == "duckdb":
            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            return dlt.destinations.duckdb(credentials=str(self.duckdb_path))
        parts = urlsplit(self.postgres_dsn)
        if parts.password is None:
            userinfo = f"{parts.username or 'postgres'}:{_PLACEHOLDER_PASSWORD}"
            netloc = f"{userinfo}@{parts.hostname}:{parts.port or 5432}"
            parts = parts._replace(netloc=netloc)
        return dlt.destinations.postgres(credentials=urlunsplit(parts))

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A DB-API connection; committed on success, rolled back on error."""
        if self.dialect == "duckdb":
            self.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_duckdb(self.duckdb_path, self.lock_wait_seconds)
            try:
                con.execute("BEGIN")
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.close()
        else:
            con = psycopg2.connect(self.postgres_dsn)
            try:
                yield con
                con.commit()
            except BaseException:
                con.rollback()
                raise
            finally:
                con.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as con:
            _cursor_execute(con, sql, params)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as con:
            cur = _cursor_execute(con, sql, params)
            return list(cur.fetchall())

    def iter_dict_batches(self, sql: str, batch_size: int = 50_000) -> Iterator[list[dict]]:
        """Stream a query's rows as lists of dicts, batch by batch (bounded memory)."""
        with self.connect() as con:
            if self.dialect == "postgres":
                cur = con.cursor(name="ingest_stream")  # server-side cursor: streams
                cur.itersize = batch_size
                cur.execute(sql)
            else:
                cur = con.execute(sql)
            names: list[str] | None = None
            while rows := cur.fetchmany(batch_size):
                names = names or [d[0] for d in cur.description]
                yield [dict(zip(names, row, strict=True)) for row in rows]

    def table_columns(self, schema: str) -> dict[str, list[str]]:
        """Columns of every table in a schema, in order: {table: [column, ...]}."""
        rows = self.fetch_all(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (schema,),
        )
        tables: dict[str, list[str]] = {}
        for table, column in rows:
            tables.setdefault(table, []).append(column)
        return tables

    def upsert(
        self,
        table: str,
        rows: pa.Table,
        key_columns: Sequence[str],
        compare_columns: Sequence[str],
        not_older_than: str | None = None,
    ) -> None:
        """Insert rows, updating a conflicting row only where a compared column changed.

        Columns outside `compare_columns` (load ids, ingestion times) follow a real change but
        never cause one, so re-loading the same data leaves the table byte-for-byte as it was.
        With `not_older_than` (a timestamp column), an incoming row older than the stored one
        changes nothing: deliveries that arrive out of order cannot roll a row back.
        """
        if rows.num_rows == 0:
            return
        columns = rows.column_names
        update_columns = [c for c in columns if c not in key_columns]
        sets = ", ".join(f"{c} = excluded.{c}" for c in update_columns)
        changed = " OR ".join(f"t.{c} IS DISTINCT FROM excluded.{c}" for c in compare_columns)
        if not_older_than:
            column = not_older_than
            changed = (
                f"({changed}) AND (t.{column} IS NULL OR excluded.{column} IS NULL "
                f"OR excluded.{column} >= t.{column})"
            )
        conflict = f"ON CONFLICT ({', '.join(key_columns)}) DO NOTHING"
        if compare_columns:
            conflict = (
                f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {sets} WHERE {changed}"
            )
        self.insert_on_conflict(table, rows, conflict)

    def insert_on_conflict(self, table: str, rows: pa.Table, conflict: str) -> None:
        """`INSERT INTO table AS t ... SELECT` the rows, set-based, with the given `ON CONFLICT`
        clause (`t` the stored row, `excluded` the incoming one). DuckDB reads the Arrow table
        in place; PostgreSQL gets it by COPY into a temp table."""
        if rows.num_rows == 0:
            return
        column_list = ", ".join(rows.column_names)
        with self.connect() as con:
            if self.dialect == "duckdb":
                con.register("incoming_rows", rows)
                con.execute(
                    f"INSERT INTO {table} AS t ({column_list}) "
                    f"SELECT {column_list} FROM incoming_rows {conflict}"
                )
                con.unregister("incoming_rows")
            else:
                _postgres_copy_upsert(con, table, rows, column_list, conflict)


def _is_lock_conflict(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


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


def _connect_duckdb(path: Path, lock_wait_seconds: float | None) -> duckdb.DuckDBPyConnection:
    """One process at a time may open a DuckDB file for writing: a sensor tick, a run, the CLI
    and the intake wait for each other instead of failing (Dagster's `duckdb_warehouse` pool
    already serializes the runs' steps)."""
    return retry_while_locked(path, lambda: duckdb.connect(str(path)), lock_wait_seconds)


T = TypeVar("T")


def retry_while_locked(
    path: Path, attempt: Callable[[], T], lock_wait_seconds: float | None = None
) -> T:
    """`attempt()`, again with backoff while it fails on the DuckDB file's lock (also when the
    lock error is wrapped, as dlt wraps it). The first wait is logged with the holder; a wait
    past INGEST_DUCKDB_LOCK_WAIT_SECONDS raises WarehouseBusyError naming it."""
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


def _lock_conflict_in(exc: BaseException | None) -> BaseException | None:
    """The DuckDB lock error in `exc` or among its causes, else None."""
    seen = 0
    while exc is not None and seen < 20:
        if _is_lock_conflict(exc):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _postgres_copy_upsert(con: Any, table: str, rows: pa.Table, column_list: str, conflict: str):
    # COPY into a temp table, then one set-based upsert: ~100k rows/s against ~6k per-row.
    cur = con.cursor()
    cur.execute(
        f"CREATE TEMP TABLE incoming_rows ON COMMIT DROP AS "
        f"SELECT {column_list} FROM {table} WITH NO DATA"
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(_jsonify_nested(rows), buffer)
    buffer.seek(0)
    cur.copy_expert(
        f"COPY incoming_rows ({column_list}) FROM STDIN WITH (FORMAT csv, HEADER)", buffer
    )
    cur.execute(
        f"INSERT INTO {table} AS t ({column_list}) "
        f"SELECT {column_list} FROM incoming_rows {conflict}"
    )


def _jsonify_nested(rows: pa.Table) -> pa.Table:
    """CSV cannot carry structs/lists: send nested columns as JSON text."""
    for index, field in enumerate(rows.schema):
        if pa.types.is_nested(field.type):
            texts = [None if v is None else json.dumps(v) for v in rows.column(index).to_pylist()]
            rows = rows.set_column(index, field.name, pa.array(texts, pa.string()))
    return rows


def _cursor_execute(con: Any, sql: str, params: Sequence[Any]) -> Any:
    if isinstance(con, duckdb.DuckDBPyConnection):
        return con.execute(sql.replace("%s", "?"), list(params))
    cur = con.cursor()
    # Without parameters psycopg2 must not read '%' in the SQL (LIKE 'a%') as a placeholder.
    cur.execute(sql, tuple(params)) if params else cur.execute(sql)
    return cur
