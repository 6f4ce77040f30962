"""The warehouse: one DuckDB file (embedded default) or a PostgreSQL database.

dlt writes the raw layer through its own destinations; this module owns what dlt cannot give:
tables with enforced keys (the normalized layer) and fast set-based upserts into them.

`Warehouse` is written once for both kinds: what differs between them (connecting, streaming,
the bulk upsert, SQL types, the dlt destination, dbt's target) is its dialect object
(`lib/dialects.py`), chosen from the URL's scheme. There is one way to write a table:
`upsert(table, rows)` with the declared table (`domain/entities.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from ingest_pipeline.lib.dialects import (
    Dialect,
    DuckDBDialect,
    PostgresDialect,
    WarehouseBusyError,
    lock_holder,
    retry_while_locked,
)

__all__ = [
    "KeyedTable",
    "Transaction",
    "Warehouse",
    "WarehouseBusyError",
    "Writer",
    "lock_holder",
    "retry_while_locked",
]


class KeyedTable(Protocol):
    """What an upsert needs of a declared table (`domain.entities.Table`)."""

    @property
    def qualified(self) -> str: ...
    @property
    def key(self) -> tuple[str, ...]: ...
    @property
    def content_columns(self) -> tuple[str, ...]: ...
    def to_arrow(self, rows: Iterable[Mapping[str, Any]]) -> pa.Table: ...


@dataclass(frozen=True)
class Warehouse:
    url: str
    # How long to wait for a DuckDB file another process holds (None: the setting).
    lock_wait_seconds: float | None = None

    @cached_property
    def sql_dialect(self) -> Dialect:
        """What this kind of warehouse does its own way."""
        scheme = urlsplit(self.url).scheme
        if scheme == "duckdb":
            return DuckDBDialect(self.duckdb_path, self.lock_wait_seconds)
        if scheme.startswith("postgres"):
            return PostgresDialect(self.postgres_dsn)
        raise ValueError(
            f"unsupported warehouse URL scheme {scheme!r} (duckdb:// or postgresql://)"
        )

    @property
    def dialect(self) -> str:
        """The kind's name: "duckdb" or "postgres"."""
        return self.sql_dialect.name

    @property
    def duckdb_path(self) -> Path:
        return Path(self.url.removeprefix("duckdb:///").removeprefix("duckdb://"))

    @property
    def postgres_dsn(self) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(("postgresql", parts.netloc, parts.path, parts.query, ""))

    def dlt_destination(self) -> Any:
        return self.sql_dialect.dlt_destination()

    def connect(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API connection; committed on success, rolled back on error."""
        return self.sql_dialect.connect()

    def held_open(self) -> contextlib.AbstractContextManager[Callable[[], None]]:
        """Keep an embedded database open across many statements (`Dialect.held_open`)."""
        return self.sql_dialect.held_open()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.connect() as con:
            self.sql_dialect.execute(con, sql, params)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as con:
            return list(self.sql_dialect.execute(con, sql, params).fetchall())

    def iter_dict_batches(self, sql: str, batch_size: int = 50_000) -> Iterator[list[dict]]:
        """Stream a query's rows as lists of dicts, batch by batch (bounded memory)."""
        with self.connect() as con:
            cur = self.sql_dialect.stream(con, sql, batch_size)
            names: list[str] | None = None
            while rows := cur.fetchmany(batch_size):
                names = names or [d[0] for d in cur.description]
                yield [dict(zip(names, row, strict=True)) for row in rows]

    def iter_arrow_batches(
        self, sql: str, batch_size: int = 50_000, params: Sequence[Any] = ()
    ) -> Iterator[pa.Table]:
        """Stream a query's rows as Arrow tables of at most `batch_size` rows (bounded memory;
        no value becomes a Python object)."""
        with self.connect() as con:
            yield from self.sql_dialect.stream_arrow(con, sql, batch_size, params)

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

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]:
        """Many statements on one connection, committed together at the end (rolled back on
        error): a batch's writes pay one connection and one commit (`Transaction`)."""
        return _transaction(self)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Nothing to do: each of the warehouse's own statements is its own transaction
        (`Transaction.savepoint` is the one that matters)."""
        yield

    def upsert(
        self,
        table: KeyedTable,
        rows: Iterable[Mapping[str, Any]] | pa.Table,
        *,
        compare: Sequence[str] | None = None,
        not_older_than: str | None = None,
        on_conflict: str | None = None,
    ) -> None:
        """Insert rows into a declared table, updating a conflicting row (same key) only where
        a compared column changed. One set-based statement, whatever the number of rows.

        `rows`: dicts (every column of the table; a missing key is null) or an Arrow table of
        some of its columns (the key among them): only those columns are written. `compare`:
        the columns whose change makes a row "updated", by default the table's content columns
        among those written; the others (load ids, ingestion times) follow a real change but
        never cause one, so re-loading the same data leaves the table byte-for-byte as it was.
        Nothing to compare: a conflicting row is left alone. With `not_older_than` (a timestamp
        column), an incoming row older than the stored one changes nothing: deliveries that
        arrive out of order cannot roll a row back. `on_conflict`: an `ON CONFLICT` clause of
        the caller's own (`t` the stored row, `excluded` the incoming one), for a merge rule
        that is more than "the newer row wins" (payments).
        """
        statement = _upsert_statement(table, rows, compare, not_older_than, on_conflict)
        if statement is not None:
            with self.connect() as con:
                self.sql_dialect.insert_select(con, table.qualified, *statement)


class Writer(Protocol):
    """What writes a batch: the `Warehouse` (a transaction a statement) or a `Transaction`."""

    def upsert(
        self,
        table: KeyedTable,
        rows: Iterable[Mapping[str, Any]] | pa.Table,
        *,
        compare: Sequence[str] | None = None,
        not_older_than: str | None = None,
        on_conflict: str | None = None,
    ) -> None: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def savepoint(self) -> contextlib.AbstractContextManager[None]: ...


@dataclass(frozen=True)
class Transaction:
    """`Warehouse.transaction()`: the warehouse's writes on one connection, one commit at the
    end. A statement that may be refused runs in a `savepoint()`: its failure undoes it alone
    and the transaction goes on (`Dialect.savepoint`)."""

    warehouse: Warehouse
    con: Any

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.warehouse.sql_dialect.execute(self.con, sql, params)

    def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.warehouse.sql_dialect.execute(self.con, sql, params).fetchall())

    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        return self.warehouse.sql_dialect.savepoint(self.con)

    def upsert(
        self,
        table: KeyedTable,
        rows: Iterable[Mapping[str, Any]] | pa.Table,
        *,
        compare: Sequence[str] | None = None,
        not_older_than: str | None = None,
        on_conflict: str | None = None,
    ) -> None:
        """`Warehouse.upsert`, in this transaction."""
        statement = _upsert_statement(table, rows, compare, not_older_than, on_conflict)
        if statement is not None:
            self.warehouse.sql_dialect.insert_select(self.con, table.qualified, *statement)


@contextlib.contextmanager
def _transaction(warehouse: Warehouse) -> Iterator[Transaction]:
    with warehouse.connect() as con:
        yield Transaction(warehouse, con)


def _upsert_statement(
    table: KeyedTable,
    rows: Iterable[Mapping[str, Any]] | pa.Table,
    compare: Sequence[str] | None,
    not_older_than: str | None,
    on_conflict: str | None,
) -> tuple[pa.Table, str] | None:
    """An upsert's rows as Arrow and its `ON CONFLICT` clause; None if there is no row."""
    if not isinstance(rows, pa.Table):
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return None
        rows = table.to_arrow(rows)
    if rows.num_rows == 0:
        return None
    if on_conflict is None:
        if compare is None:
            compare = [c for c in table.content_columns if c in rows.column_names]
        on_conflict = _on_conflict(table.key, rows.column_names, compare, not_older_than)
    return rows, on_conflict


def _on_conflict(
    key: Sequence[str],
    columns: Sequence[str],
    compare: Sequence[str],
    not_older_than: str | None,
) -> str:
    """Every written non-key column set, where a compared one changed (and, with
    `not_older_than`, the incoming row is not older)."""
    if not compare:
        return f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM excluded.{c}" for c in compare)
    if not_older_than:
        column = not_older_than
        changed = (
            f"({changed}) AND (t.{column} IS NULL OR excluded.{column} IS NULL "
            f"OR excluded.{column} >= t.{column})"
        )
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets} WHERE {changed}"
