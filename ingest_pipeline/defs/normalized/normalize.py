"""Raw → normalized: read raw loads not yet normalized, map, validate, upsert; reject the rest.

One engine for every entity (items, feedback, ...): an `Entity` names its declared table, which
brings its validator, its key and the columns whose change makes a row "updated".

A source type with a batch mapper (csv) is normalized in bulk: its raw rows are read as Arrow
batches (never a Python object a value on DuckDB or PostgreSQL), mapped column by column and
validated at once (`domain.bulk_validation`); only the rows the bulk checks cannot settle, the
rows the source flagged and those of an unknown instance take the record path (one dict a row,
pydantic), which writes their rejects as before. Both paths meet again before the write, in raw
order, the last row of a key winning.

A raw batch's writes (its normalized rows, its rejects) are one transaction on one connection:
a commit a batch, not a statement; a load's marks (`normalized_loads`) are one more at its end.

Each dlt load of a raw table is consumed once (tracked in `normalized.normalized_loads`); a replay
forgets that tracking and rebuilds the normalized rows from raw alone, without calling a source.

What the database would refuse never fails the step for everyone:

- dlt's variant columns are folded into their base columns before mapping (`fold_variants`): a
  value dlt could not coerce to the inferred type is validated as the field's value (a reject
  naming the field if invalid, mapped if valid), never read as a null.
- Text is checked before the write: a NUL (`\\u0000`, which PostgreSQL text refuses) or a lone
  surrogate (not UTF-8: Arrow and both databases refuse it) in any text field makes the record a
  reject naming the field, on DuckDB too, so both warehouses hold the same rows. The check is one
  vectorized pass over the batch's Arrow table; records are looked at one by one only in a batch
  that holds such a value.
- A batch the database still refuses for a reason in its rows (a key too long for a PostgreSQL
  index, ...) is bisected until the refused records are alone: each is a reject with the
  database's error, the rest is written. More than MAX_REFUSED refused records in one batch is not
  about records any more: the batch fails, and with it its load (next rule). Each try is a
  savepoint of the batch's transaction (on DuckDB, which has none, a commit before it), so a
  refused statement does not undo the batch's other writes.
- A raw load that still cannot be normalized is quarantined: recorded in `normalized_loads` with
  `normalized_at` NULL, so it blocks no later load; one reject `<raw table>:load:<load id>` per
  instance in it, with the error; a warning in the step log. The other raw tables' loads in the
  run complete. A replay takes a quarantined load again (and clears its reject if it succeeds).
  A failure of the warehouse itself (DuckDB file busy, PostgreSQL unreachable) quarantines
  nothing: the step fails and the load stays pending.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import dagster as dg
import duckdb
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from ingest_pipeline.defs.normalized.arrow_batches import (
    ROW,
    as_array,
    count_by_instance,
    flagged_by_source,
    instance_groups,
    last_per_key,
    rows_with_nul,
    with_lineage,
)
from ingest_pipeline.defs.normalized.models import blank_to_none
from ingest_pipeline.domain.bulk_validation import validate_in_bulk
from ingest_pipeline.domain.entities import (
    FEEDBACK,
    ITEMS,
    NORMALIZED_LOADS,
    REJECTED_RECORDS,
    Table,
)
from ingest_pipeline.domain.privacy import Pseudonymizer
from ingest_pipeline.domain.tenants import MissingSecretError, SourceInstance
from ingest_pipeline.lib.warehouse import Warehouse, WarehouseBusyError, Writer
from ingest_pipeline.sources.csv.source import RAW_LINE_COLUMN, REJECT_REASON_COLUMN
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN, raw_dataset
from ingest_pipeline.sources.raw_rows import (
    BatchMapper,
    Mapper,
    fold_variants,
    variant_columns,
)

BATCH_ROWS = 50_000
# A reject rewritten with the same reason and payload keeps its load id and time.
REJECT_CONTENT_COLUMNS = ("reason", "payload")
# Past this many refused records a batch's failure is not about its records (bisecting on would
# cost two upserts a record): the load is quarantined instead.
MAX_REFUSED = 20

# Errors about the rows written (a value, a key), not about the warehouse: worth bisecting for.
# ValueError covers Arrow's conversions (UnicodeEncodeError, an integer out of range).
ROW_ERRORS: tuple[type[Exception], ...] = (
    psycopg2.DataError,
    psycopg2.IntegrityError,
    psycopg2.errors.ProgramLimitExceeded,
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.InvalidInputException,
    pa.ArrowException,
    ValueError,
    OverflowError,
)

log = dg.get_dagster_logger("normalize")


@dataclass(frozen=True)
class Entity:
    name: str
    table: Table

    @property
    def adapter(self) -> TypeAdapter:
        return self.table.validator


ENTITIES = {"items": Entity("items", ITEMS), "feedback": Entity("feedback", FEEDBACK)}

# A validated record and the raw row it came from (a refused record is rejected with its row).
Validated = tuple[dict[str, Any], dict[str, Any]]
WITHHELD = "(withheld: the tenant's pii key is missing)"


class InstancePrivacy:
    """Each instance's pseudonymizer (domain/privacy.py), made on first use. An instance whose
    key cannot be read has its rows rejected with that reason and their payload withheld: never
    written in clear, and replayed from raw once the key is back."""

    def __init__(self, instances: Mapping[tuple[str, str], SourceInstance]):
        self.instances = instances
        self._made: dict[tuple[str, str], Pseudonymizer | None] = {}

    def of(self, instance: SourceInstance) -> Pseudonymizer | None:
        """Raises MissingSecretError if the instance's key is not set."""
        key = (instance.tenant, instance.name)
        if key not in self._made:
            rules = instance.privacy
            self._made[key] = rules.pseudonymizer() if rules else None
        return self._made[key]

    def payload(self, row: Mapping[str, Any], text: str) -> str:
        """A reject's payload as the row's instance may keep it."""
        instance = self.instances.get((row[TENANT_COLUMN], row[INSTANCE_COLUMN]))
        if instance is None or instance.privacy is None:
            return text
        try:
            pseudonymizer = self.of(instance)
        except MissingSecretError:
            return WITHHELD
        return pseudonymizer.payload(text) if pseudonymizer else text


@dataclass(frozen=True)
class Quarantine:
    """A raw load that could not be normalized: kept aside, replayable."""

    raw_table: str
    load_id: str
    instances: list[str]  # tenant.instance
    reason: str


@dataclass
class NormalizeStats:
    """Rows normalized and rejected, per `tenant.instance` of one source type; the loads
    normalized and the loads quarantined."""

    # Per raw table, so a table tried again load by load is counted once.
    by_table: dict[str, tuple[Counter[str], Counter[str]]] = field(default_factory=dict)
    loads: int = 0
    quarantined: list[Quarantine] = field(default_factory=list)

    def counters(self, raw_table: str) -> tuple[Counter[str], Counter[str]]:
        return self.by_table.setdefault(raw_table, (Counter(), Counter()))

    def forget(self, raw_table: str) -> None:
        self.by_table.pop(raw_table, None)

    def add_quarantine(self, quarantine: Quarantine) -> None:
        self.quarantined.append(quarantine)
        self.counters(quarantine.raw_table)[1].update(quarantine.instances)

    @property
    def normalized(self) -> Counter[str]:
        return sum((n for n, _ in self.by_table.values()), Counter())

    @property
    def rejected(self) -> Counter[str]:
        return sum((r for _, r in self.by_table.values()), Counter())


def normalize_source_type(
    warehouse: Warehouse,
    entity: Entity,
    source_type: str,
    mapper: Mapper,
    instances: Iterable[SourceInstance],
    replay: bool = False,
    batch_mapper: BatchMapper | None = None,
) -> NormalizeStats:
    """Normalize the source type's pending raw loads. With a `batch_mapper`, a raw table without
    variant columns is read as Arrow batches and validated in bulk (`normalize_in_bulk`), rows
    the bulk checks cannot settle by the record path; without one, every row by the record
    path."""
    stats = NormalizeStats()
    by_key = {(i.tenant, i.name): i for i in instances}
    privacy = InstancePrivacy(by_key)
    ingested_at = datetime.now(UTC)
    rejected: list[dict[str, Any]] = []  # the record path's rejects, written by finish()

    def by_record(rows: list[dict[str, Any]], qualified: str) -> list[Validated]:
        validated, rejects = _validate(
            rows, qualified, entity, source_type, mapper, privacy, ingested_at
        )
        rejected.extend(rejects)
        return validated

    def finish(
        writer: Writer, qualified: str, written: Mapping[str, int], refused: list[Refused]
    ) -> None:
        rejects = rejected + [
            reject_row(r, qualified, source_type, e, ingested_at, privacy) for r, e in refused
        ]
        rejected.clear()
        if refused:
            refs = ", ".join(f"{qualified}:{_row_ref(r)}" for r, _ in refused[:5])
            log.warning(f"{len(refused)} records the warehouse cannot store, rejected: {refs}")
        upsert_rejects(writer, rejects)
        normalized, rejected_counts = stats.counters(qualified)
        normalized.update(written)
        rejected_counts.update(f"{r['tenant_id']}.{r['source_instance']}" for r in rejects)

    def normalize_batch(rows: list[dict[str, Any]], qualified: str) -> None:
        validated = by_record(rows, qualified)
        with warehouse.transaction() as batch:
            records, refused = write_records(batch, entity.table, validated)
            written = Counter(f"{r['tenant_id']}.{r['source_instance']}" for r in records)
            finish(batch, qualified, written, refused)

    def normalize_arrow(raw: pa.Table, qualified: str) -> None:
        assert batch_mapper is not None
        lineage = {"source_type": source_type, "ingested_at": ingested_at}
        records = normalize_in_bulk(
            raw,
            entity.table,
            batch_mapper,
            privacy,
            lineage,
            partial(by_record, qualified=qualified),
        )
        with warehouse.transaction() as batch:
            written, refused = write_arrow_records(batch, entity.table, raw, records)
            finish(batch, qualified, written, refused)

    stats.loads = consume_pending_loads(
        warehouse,
        source_type,
        replay,
        normalize_batch,
        stats.forget,
        stats.add_quarantine,
        normalize_arrow if batch_mapper else None,
    )
    return stats


def normalize_in_bulk(
    raw: pa.Table,
    table: Table,
    batch_mapper: BatchMapper,
    privacy: InstancePrivacy,
    lineage: Mapping[str, Any],
    by_record: Callable[[list[dict[str, Any]]], list[Validated]],
) -> pa.Table:
    """A raw batch's valid records (with the ROW of the raw row each came from; one per key):
    each instance's rows mapped by `batch_mapper` and validated in bulk; the rows the source
    flagged, of an instance not in the tenants file, or not settled in bulk, by the record path
    (`by_record`, which keeps their rejects)."""
    flagged = flagged_by_source(raw)
    settled: list[pa.Table] = []
    to_record_path = [pc.indices_nonzero(flagged)]
    load_ids = as_array(raw.column("_dlt_load_id"))
    for (tenant, name), rows in instance_groups(raw):
        rows = rows.filter(pc.invert(flagged.take(rows)))
        instance = privacy.instances.get((tenant, name))
        mapped = batch_mapper(raw.take(rows), instance) if instance and len(rows) else None
        if mapped is not None and instance is not None and instance.privacy is not None:
            mapped = _pseudonymized(privacy, instance, mapped)
        if mapped is None:  # nothing the bulk path can do with them
            to_record_path.append(rows)
            continue
        given = {**lineage, "tenant_id": tenant, "source_instance": name}
        verdict = validate_in_bulk(
            table, with_lineage(mapped, len(rows), given, load_ids.take(rows))
        )
        settled.append(verdict.valid.append_column(ROW, rows.take(verdict.valid_rows)))
        to_record_path.append(rows.take(verdict.record_rows))
    numbers = pa.concat_arrays([a.cast(pa.int64()) for a in to_record_path])
    numbers = numbers.take(pc.sort_indices(numbers))
    sources = raw.take(numbers).to_pylist()
    position = {id(row): n for row, n in zip(sources, numbers.to_pylist(), strict=True)}
    validated = by_record(sources)
    recorded = table.to_arrow([record for record, _ in validated])
    recorded = recorded.append_column(
        ROW, pa.array([position[id(source)] for _, source in validated], pa.int64())
    )
    return last_per_key(pa.concat_tables([*settled, recorded]), table.key)


def _pseudonymized(
    privacy: InstancePrivacy, instance: SourceInstance, mapped: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """A mapped batch under its instance's privacy rules; None (the record path, which rejects
    them with the reason) if its key cannot be read."""
    try:
        pseudonymizer = privacy.of(instance)
    except MissingSecretError:
        return None
    return pseudonymizer.columns(mapped) if pseudonymizer else mapped


Refused = tuple[dict[str, Any], Exception]  # a raw row and why the warehouse cannot store it


def write_records(
    writer: Writer, table: Table, validated: list[Validated]
) -> tuple[list[dict[str, Any]], list[Refused]]:
    """Upsert validated records; returns the records written and (raw row, why) of those
    refused: text a database cannot store, found before the write, then whatever the database
    still refuses, found by bisecting."""
    rows = storable_arrow(table, [record for record, _ in validated])
    refused: list[Refused] = []
    if rows is None:  # rare: look at each record, then build the batch again
        kept = []
        for record, source in validated:
            if why := unstorable_text(record):
                refused.append((source, ValueError(why)))
            else:
                kept.append((record, source))
        validated = kept
        rows = table.to_arrow([record for record, _ in validated])
    records = [record for record, _ in validated]
    failed = upsert_bisecting(
        writer,
        table,
        lambda start, stop: table.to_arrow(records[start:stop]),
        lambda n: validated[n][1],
        refused,
        (0, len(records)),
        rows,
    )
    failed_set = set(failed)
    return [r for n, r in enumerate(records) if n not in failed_set], refused


def write_arrow_records(
    writer: Writer, table: Table, raw: pa.Table, records: pa.Table
) -> tuple[dict[str, int], list[Refused]]:
    """Upsert a bulk batch's records (`normalize_in_bulk`); returns the rows written per
    instance and (raw row, why) of those refused, as `write_records` does."""
    refused: list[Refused] = []

    def source_of(n: int) -> dict[str, Any]:
        return raw.slice(records.column(ROW)[n].as_py(), 1).to_pylist()[0]

    nul = rows_with_nul(records)
    if pc.any(nul).as_py():  # rare: name the field of each, keep the others
        for n in pc.indices_nonzero(nul).to_pylist():
            why = unstorable_text(records.slice(n, 1).to_pylist()[0])
            refused.append((source_of(n), ValueError(why or "text holds a NUL character")))
        records = records.filter(pc.invert(nul))
    rows = records.drop_columns([ROW])
    failed = upsert_bisecting(
        writer,
        table,
        lambda start, stop: rows.slice(start, stop - start),
        source_of,
        refused,
        (0, rows.num_rows),
        rows,
    )
    if failed:
        rows = rows.filter(pc.invert(pc.is_in(pa.array(range(rows.num_rows)), pa.array(failed))))
    return count_by_instance(rows), refused


def storable_arrow(table: Table, records: list[dict[str, Any]]) -> pa.Table | None:
    """The records as Arrow, or None if a text value holds a NUL or a lone surrogate."""
    try:
        rows = table.to_arrow(records)
    except UnicodeEncodeError:  # a lone surrogate is not UTF-8
        return None
    for column, kind in zip(rows.columns, rows.schema.types, strict=True):
        if pa.types.is_string(kind) and pc.any(pc.match_substring(column, "\x00")).as_py():
            return None
    return rows


def unstorable_text(record: Mapping[str, Any]) -> str | None:
    """Why a record's text cannot be stored (naming the field), or None."""
    for name, value in record.items():
        if type(value) is not str:
            continue
        if "\x00" in value:
            return f"{name}: text holds a NUL character (\\u0000), which PostgreSQL cannot store"
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return f"{name}: text holds a lone surrogate, which is not valid UTF-8"
    return None


def upsert_bisecting(
    writer: Writer,
    table: Table,
    rows_of: Callable[[int, int], pa.Table],
    source_of: Callable[[int], dict[str, Any]],
    refused: list[Refused],
    span: tuple[int, int],
    rows: pa.Table | None = None,
) -> list[int]:
    """Upsert the records `span` (start, stop) as `rows_of(start, stop)` gives them (`rows`:
    already built); if the database refuses them for a reason in its rows, each half again,
    down to single records, which are added to `refused` (with `source_of(n)`, their raw row)
    and whose numbers are returned. Each try is a savepoint of the writer's transaction: a
    refused one leaves the transaction as it was before it."""
    start, stop = span
    if start == stop:
        return []
    try:
        with writer.savepoint():
            writer.upsert(table, rows_of(start, stop) if rows is None else rows)
        return []
    except ROW_ERRORS as exc:
        if stop - start == 1:
            if sum(isinstance(e, RefusedError) for _, e in refused) >= MAX_REFUSED:
                raise RuntimeError(f"more than {MAX_REFUSED} records refused: {exc}") from exc
            refused.append((source_of(start), RefusedError(_one_line(exc))))
            return [start]
    middle = (start + stop) // 2
    halves = [(start, middle), (middle, stop)]
    return [
        n
        for half in halves
        for n in upsert_bisecting(writer, table, rows_of, source_of, refused, half)
    ]


class RefusedError(Exception):
    """The database refused a single record: the reason is its error."""

    def __str__(self) -> str:
        return f"refused by the warehouse: {self.args[0]}"


def _one_line(exc: Exception, limit: int = 500) -> str:
    """An error as one line for a reason (a database's DETAIL can quote a whole row)."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:limit]


def consume_pending_loads(
    warehouse: Warehouse,
    source_type: str,
    replay: bool,
    normalize_batch: Callable[[list[dict[str, Any]], str], None],
    on_retry: Callable[[str], None] | None = None,
    on_quarantine: Callable[[Quarantine], None] | None = None,
    normalize_arrow: Callable[[pa.Table, str], None] | None = None,
) -> int:
    """Hand every row of the raw loads not yet normalized (every load, with `replay`) to
    `normalize_batch(rows, raw_table)` in batches of BATCH_ROWS (variant columns folded in), or,
    with `normalize_arrow` and a table without variant columns, to `normalize_arrow(batch,
    raw_table)` as Arrow batches; then record those loads as normalized. A raw table whose loads fail together is tried again load
    by load (`on_retry(raw_table)` first: forget its counts); a load that fails alone is
    quarantined (`on_quarantine`). Returns how many loads were normalized."""
    loads = 0
    schema = raw_dataset(source_type)
    for table, columns in instance_tables(warehouse, schema).items():
        qualified = f"{schema}.{table}"
        load_ids = pending_loads(warehouse, qualified, replay)
        if not load_ids:
            continue
        consume = _consumer(warehouse, qualified, columns, replay, normalize_batch, normalize_arrow)
        try:
            consume(load_ids)
            loads += len(load_ids)
            continue
        except Exception as exc:
            if _is_warehouse_failure(exc):
                raise
            if len(load_ids) == 1:
                _quarantine(warehouse, source_type, qualified, load_ids[0], exc, on_quarantine)
                continue
        if on_retry:
            on_retry(qualified)
        for load_id in load_ids:
            try:
                consume([load_id])
                loads += 1
            except Exception as exc:
                if _is_warehouse_failure(exc):
                    raise
                _quarantine(warehouse, source_type, qualified, load_id, exc, on_quarantine)
    return loads


def _consumer(
    warehouse: Warehouse,
    qualified: str,
    columns: list[str],
    replay: bool,
    normalize_batch: Callable[[list[dict[str, Any]], str], None],
    normalize_arrow: Callable[[pa.Table, str], None] | None = None,
) -> Callable[[list[str]], None]:
    variants = variant_columns(columns)

    def consume(load_ids: list[str]) -> None:
        if normalize_arrow and not variants:
            with warehouse.held_open() as turn:
                for batch in raw_arrow_batches(warehouse, qualified, columns, load_ids):
                    normalize_arrow(batch, qualified)
                    turn()
        else:
            query = raw_rows_query(qualified, columns, load_ids)
            for rows in warehouse.iter_dict_batches(query, BATCH_ROWS):
                if variants:
                    fold_variants(rows, variants)
                normalize_batch(rows, qualified)
        with warehouse.transaction() as done:
            if replay:
                clear_quarantine(done, qualified, load_ids)
            mark_normalized(done, qualified, load_ids)

    return consume


def _is_warehouse_failure(exc: Exception) -> bool:
    """The warehouse itself failed (busy, unreachable, out of space): no load is to blame."""
    if isinstance(exc, psycopg2.errors.ProgramLimitExceeded):
        return False
    return isinstance(
        exc,
        WarehouseBusyError
        | psycopg2.OperationalError
        | psycopg2.InterfaceError
        | duckdb.IOException
        | duckdb.ConnectionException,
    )


def _quarantine(
    warehouse: Warehouse,
    source_type: str,
    qualified: str,
    load_id: str,
    exc: Exception,
    on_quarantine: Callable[[Quarantine], None] | None,
) -> None:
    """Set a raw load aside: a reject per instance in it, marked with no `normalized_at`."""
    reason = f"raw load not normalized (quarantined; a replay retries it): {_one_line(exc)}"
    owners = warehouse.fetch_all(
        f"SELECT {TENANT_COLUMN}, {INSTANCE_COLUMN}, count(*) FROM {qualified} "
        f"WHERE _dlt_load_id = '{load_id}' GROUP BY 1, 2 ORDER BY 1, 2"
    )
    at = datetime.now(UTC)
    rejects = [
        {
            "tenant_id": tenant,
            "source_type": source_type,
            "source_instance": name,
            "record_ref": quarantine_ref(qualified, load_id),
            "reason": printable(reason),
            "payload": json.dumps({"raw_table": qualified, "load_id": load_id, "rows": rows}),
            "raw_load_id": load_id,
            "rejected_at": at,
        }
        for tenant, name, rows in owners
    ]
    with warehouse.transaction() as aside:
        upsert_rejects(aside, rejects)
        mark_normalized(aside, qualified, [load_id], quarantined=True)
    quarantine = Quarantine(qualified, load_id, [f"{t}.{n}" for t, n, _ in owners], reason)
    log.warning(
        f"quarantined raw load {load_id} of {qualified} "
        f"({', '.join(quarantine.instances)}): {reason}"
    )
    if on_quarantine:
        on_quarantine(quarantine)


def quarantine_ref(qualified: str, load_id: str) -> str:
    return f"{qualified}:load:{load_id}"


def clear_quarantine(writer: Writer, qualified: str, load_ids: list[str]) -> None:
    """A load normalized on replay is no longer a reject, nor marked quarantined."""
    refs = ", ".join(f"'{quarantine_ref(qualified, i)}'" for i in load_ids)
    in_list = ", ".join(f"'{i}'" for i in load_ids)
    writer.execute(f"DELETE FROM {REJECTED_RECORDS.qualified} WHERE record_ref IN ({refs})")
    writer.execute(
        f"DELETE FROM {NORMALIZED_LOADS.qualified} WHERE raw_table = '{qualified}' "
        f"AND load_id IN ({in_list}) AND normalized_at IS NULL"
    )


def instance_tables(warehouse: Warehouse, schema: str) -> dict[str, list[str]]:
    """Raw tables holding instance rows (dlt's own tables and child tables have no tenant)."""
    return {
        table: columns
        for table, columns in sorted(warehouse.table_columns(schema).items())
        if TENANT_COLUMN in columns and not table.startswith("_dlt")
    }


def raw_rows_query(qualified: str, columns: list[str], load_ids: list[str]) -> str:
    """Every row of these loads of a raw table, in load (and file line) order."""
    order = "_dlt_load_id, _file, _line" if "_file" in columns else "_dlt_load_id"
    in_list = ", ".join(f"'{load_id}'" for load_id in load_ids)  # dlt load ids are numeric
    return f"SELECT * FROM {qualified} WHERE _dlt_load_id IN ({in_list}) ORDER BY {order}"


def raw_arrow_batches(
    warehouse: Warehouse, qualified: str, columns: list[str], load_ids: list[str]
) -> Iterator[pa.Table]:
    """`raw_rows_query`'s rows as Arrow batches. On DuckDB, which would sort them in this
    process (memory growing with the loads), a table of file lines is read in line ranges of
    BATCH_ROWS, file by file and load by load: each query sorts one batch."""
    if not warehouse.sql_dialect.single_process or "_file" not in columns:
        yield from warehouse.iter_arrow_batches(
            raw_rows_query(qualified, columns, load_ids), BATCH_ROWS
        )
        return
    in_list = ", ".join(f"'{load_id}'" for load_id in load_ids)
    spans = warehouse.fetch_all(
        f"SELECT _dlt_load_id, _file, min(_line), max(_line) FROM {qualified} "
        f"WHERE _dlt_load_id IN ({in_list}) GROUP BY 1, 2 ORDER BY 1, 2"
    )
    for load_id, file, first, last in spans:
        for start in range(first, last + 1, BATCH_ROWS):
            query = (
                f"SELECT * FROM {qualified} WHERE _dlt_load_id = %s AND _file = %s "
                f"AND _line >= %s AND _line < %s ORDER BY _line"
            )
            params = (load_id, file, start, start + BATCH_ROWS)
            # Read whole (one batch) before it is handed on: no read stays open while the
            # batch is written, so `held_open`'s turn can let the file go.
            yield from list(warehouse.iter_arrow_batches(query, BATCH_ROWS, params))


def upsert_rejects(writer: Writer, rejects: list[dict[str, Any]]) -> None:
    """Write reject rows (a re-processed raw row rewrites its own reject)."""
    writer.upsert(REJECTED_RECORDS, dedupe_rejects(rejects), compare=REJECT_CONTENT_COLUMNS)


def has_pending_loads(warehouse: Warehouse, source_type: str) -> bool:
    """Whether a raw load of the source type waits to be normalized."""
    schema = raw_dataset(source_type)
    tables = instance_tables(warehouse, schema)
    return any(pending_loads(warehouse, f"{schema}.{table}", False) for table in tables)


def pending_loads(warehouse: Warehouse, qualified: str, replay: bool) -> list[str]:
    done = (
        ""
        if replay
        else (
            f" EXCEPT SELECT load_id FROM {NORMALIZED_LOADS.qualified} WHERE raw_table = '{qualified}'"
        )
    )
    rows = warehouse.fetch_all(f"SELECT DISTINCT _dlt_load_id FROM {qualified}{done}")
    return sorted(row[0] for row in rows)


def mark_normalized(
    writer: Writer, qualified: str, load_ids: list[str], quarantined: bool = False
) -> None:
    """Record loads as consumed; a quarantined one has no `normalized_at`."""
    now = None if quarantined else datetime.now(UTC)
    marks = [{"raw_table": qualified, "load_id": i, "normalized_at": now} for i in load_ids]
    writer.upsert(NORMALIZED_LOADS, marks)  # a mark is written once


def _validate(
    rows: list[dict[str, Any]],
    qualified: str,
    entity: Entity,
    source_type: str,
    mapper: Mapper,
    privacy: InstancePrivacy,
    ingested_at: datetime,
) -> tuple[list[Validated], list[dict[str, Any]]]:
    """Records with the raw row of each, and rejects."""
    # Keyed by natural key: the last version of a record within a batch wins (one upsert
    # statement cannot touch the same row twice).
    records: dict[tuple[str, ...], Validated] = {}
    rejects: list[dict[str, Any]] = []
    for row in rows:
        tenant, name = row[TENANT_COLUMN], row[INSTANCE_COLUMN]
        instance = privacy.instances.get((tenant, name))
        try:
            if instance is None:
                raise ValueError(f"{source_type} source {tenant}.{name} is not in the tenants file")
            if reason := row.get(REJECT_REASON_COLUMN):  # the source found the row bad already
                raise ValueError(reason)
            fields = blank_to_none(mapper(row, instance))
            if (pseudonymizer := privacy.of(instance)) is not None:
                fields = pseudonymizer.record(fields)
            record = entity.adapter.validate_python(
                {
                    **fields,
                    "tenant_id": tenant,
                    "source_type": source_type,
                    "source_instance": name,
                    "raw_load_id": row["_dlt_load_id"],
                    "ingested_at": ingested_at,
                }
            )
        except (ValidationError, ValueError, TypeError, MissingSecretError) as exc:
            rejects.append(reject_row(row, qualified, source_type, exc, ingested_at, privacy))
            continue
        records[tuple(record[k] for k in entity.table.key)] = (record, row)
    return list(records.values()), dedupe_rejects(rejects)


def reject_row(
    row: Mapping[str, Any],
    qualified: str,
    source_type: str,
    exc: Exception,
    at: datetime,
    privacy: InstancePrivacy | None = None,
) -> dict[str, Any]:
    payload = _payload(row)
    return {
        "tenant_id": row[TENANT_COLUMN],
        "source_type": source_type,
        "source_instance": row[INSTANCE_COLUMN],
        "record_ref": printable(f"{qualified}:{_row_ref(row)}"),
        "reason": printable(rejection_reason(exc)),
        "payload": privacy.payload(row, payload) if privacy else payload,
        "raw_load_id": row["_dlt_load_id"],
        "rejected_at": at,
    }


def _payload(row: Mapping[str, Any]) -> str:
    # A row the source rejected already (a CSV line) has no fields: the line is its payload.
    if row.get(REJECT_REASON_COLUMN):
        return printable(row.get(RAW_LINE_COLUMN) or "")
    payload = {k: v for k, v in row.items() if not k.startswith("_dlt")}
    return json.dumps(payload, default=str, sort_keys=True)


def _row_ref(row: Mapping[str, Any]) -> str:
    # A file line is stable across re-loads of the same file; otherwise dlt's row id.
    if "_file" in row and "_line" in row:
        return f"{row['_file']}:{row['_line']}"
    return str(row["_dlt_id"])


def dedupe_rejects(rejects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({tuple(r[k] for k in REJECTED_RECORDS.key): r for r in rejects}.values())


def rejection_reason(exc: Exception) -> str:
    """Why a record was rejected: pydantic's errors as `field: message`, else the message."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def printable(text: str) -> str:
    """Text every warehouse stores: a NUL or a lone surrogate written as its escape."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()
