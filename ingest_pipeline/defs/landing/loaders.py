"""Turn one landed object into normalized rows, streaming, in batches of bounded size.

The object in the bucket is the raw layer of the push sources: it is kept as it was uploaded,
and processing it again (a re-run) rewrites the same rows. Each kind has a pure reader
(`log_rows`, `event_rows`, `crawl_rows`, `webhook_document`) that turns the body into rows and
`Rejected` records; the loaders (`read_<kind>`, paired with their kind's writer in kinds.py)
validate with pydantic, upsert the good rows by their natural key and send the rejects, with
their line and reason, to normalized.rejected_records. Bodies are opened as text by
lib/text_bodies.py (gzip, strict UTF-8, the line limit) and JSON depth is judged by
lib/json_depth.py before anything is parsed.

A fault stays where it starts:

- A bad line is a reject, never the file: a line that is not text (a NUL or another control
  byte, not UTF-8), longer than INGEST_MAX_LINE_BYTES, not valid JSON, nested deeper than
  MAX_JSON_DEPTH levels, or holding text the warehouse cannot store (a NUL, a lone surrogate,
  NaN in JSON) is rejected with that reason and the rest of the file loads (logs, NDJSON). So is
  an element of a JSON array that is not an object, nested deeper than MAX_JSON_DEPTH or longer
  than INGEST_MAX_LINE_BYTES.
- A file that cannot be read as a whole raises LandedFileError: the upload ends Failed with that
  reason and the other objects of the run go on. That is invalid gzip, data that is mostly not
  text (more than half of the lines of its first 8 KiB), a JSON document (a crawl or events
  array, a webhook body) that is invalid or not UTF-8, a webhook body nested too deeply, and a
  CSV file that is not CSV. Bodies are streamed, so a fault found part-way (a damaged gzip
  tail, bytes that are not UTF-8, a JSON array that breaks off or has text after it) is raised
  when reached: the rows before it are written and counted (`LandingWriter.failed`), and the
  object uploaded again, fixed, rewrites them (every write is an upsert on the natural key, a
  reject's on its object key and line).
- Nothing else escapes a reader: a RecursionError is caught at the line and at the object.

NDJSON events and NDJSON crawl items are read in bulk (`event_batches`, `crawl_batches`): whole
blocks of text lines (`Sniffed.blocks`), parsed by Arrow's JSON reader (the fields a kind maps,
as text), mapped in Arrow compute and validated at once (`domain/bulk_validation.py`, the
validator the csv normalize path uses), the rows written as Arrow tables. The bulk path only
ever settles a line it is sure of: every other line (one Arrow would parse differently or not
at all, a mapped value that is not text, a NUL, a JSON `properties` it cannot write as the
record path writes it, a crawl line with more than MAX_JSON_DEPTH brackets, since Arrow skips
the members crawl does not map unseen, a row the bulk validator leaves open) goes through the
record path above, line by line, which writes the precise reject. The rows, the rejects (line,
reason, raw text), which line of a key wins and the file-level errors are the record path's
(`event_rows`, `crawl_rows`; a differential test runs both). JSON arrays and CSV bodies are
read by the record path only.
"""

from __future__ import annotations

import csv
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from pydantic import ValidationError

from ingest_pipeline.defs.normalized.arrow_batches import last_per_key
from ingest_pipeline.defs.normalized.models import APP_EVENT, ITEM, blank_to_none
from ingest_pipeline.defs.normalized.models import FEEDBACK as FEEDBACK_SHAPE
from ingest_pipeline.defs.normalized.normalize import printable, rejection_reason, unstorable_text
from ingest_pipeline.domain.bulk_validation import ASCII_WHITESPACE, validate_in_bulk
from ingest_pipeline.domain.entities import (
    EVENTS,
    FEEDBACK,
    ITEMS,
    REJECTED_RECORDS,
    Table,
)
from ingest_pipeline.domain.landing import MAX_WEBHOOK_BYTES, key_layout
from ingest_pipeline.domain.landing_cursor import batched
from ingest_pipeline.domain.log_formats import BadLine, LogFileError, parse_lines
from ingest_pipeline.domain.payments import payment_from_event, upsert_payments
from ingest_pipeline.domain.privacy import PrivacyRules, Pseudonymizer
from ingest_pipeline.domain.tenants import (
    MissingSecretError,
    SourceInstance,
    TenantsFileError,
    load_source_instances,
    tenant_privacy,
)
from ingest_pipeline.domain.uploads import IN_LIST_SIZE, LandedObject
from ingest_pipeline.lib.json_arrays import JsonArrayError, array_elements
from ingest_pipeline.lib.json_depth import MAX_JSON_DEPTH, TOO_DEEP, json_too_deep
from ingest_pipeline.lib.text_bodies import (
    MAX_LINE_BYTES,
    Sniffed,
    TextBlock,
    TextBodyError,
    TextLine,
    sniff,
)
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.intercom.mapper import map_intercom_row
from ingest_pipeline.sources.raw_rows import dig

BATCH_ROWS = 50_000
# Rows that come as Arrow tables are smaller than dicts, and each commit costs DuckDB a checkpoint
# that grows with the table (1M events: 9.6 s in batches of 200,000, 5.3 s of 500,000): they are
# written in batches of up to this many rows (or bytes), while the reader goes on. Larger batches
# were no faster end to end (the first and last batch are not overlapped) and cost memory.
ARROW_BATCH_ROWS = 200_000
ARROW_BATCH_BYTES = 64 * 1024 * 1024
MAX_PAYLOAD_CHARS = 2000
# What identifies where a landed row came from, per kind (source_type, source_instance).
EVENTS_SOURCE = "app_events"
LANDING_INSTANCE = "landing"
WEBHOOK_INSTANCE = "webhooks"  # a pushed row's instance when the tenant has no pull instance


Row = dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A record that is not a row: its line (or array position), why, and its raw text."""

    line_no: int
    reason: str
    raw: str


@dataclass
class LoadCounts:
    loaded: int = 0
    rejected: int = 0


class LandedFileError(ValueError):
    """The object as a whole cannot be read; the message is the upload's Failed reason and
    `counts` what was loaded before the damage was reached."""

    def __init__(self, reason: str, counts: LoadCounts | None = None) -> None:
        super().__init__(reason)
        self.counts = counts or LoadCounts()


class LandingWriter:
    """Buffers the validated rows and rejects of every object of a run and upserts them every
    BATCH_ROWS and at the end: bounded memory for a 1M-line file, and a handful of statements
    (not several per object) for a run of 500 small objects. Rows come one by one (`add`, a
    dict) or as Arrow tables of the table's schema (`add_batch`). Within a batch the last
    version of a key wins, in the order the rows came: one upsert cannot touch a row twice."""

    def __init__(
        self,
        warehouse: Warehouse,
        table: Table,
        source: str,
        replaces_object_rows: bool = False,
        not_older_than: str | None = None,
        landed_kind: str | None = None,
    ):
        self.warehouse, self.table, self.source = warehouse, table, source
        self.landed_kind = landed_kind  # whose `landing:` privacy rules apply (None: none)
        self.pseudonymizer: Pseudonymizer | None = None  # the object's tenant's, from begin()
        self._pseudonymizers: dict[str, Pseudonymizer | None] = {}
        self.replaces_object_rows = replaces_object_rows
        self.not_older_than = not_older_than
        self.rows: dict[tuple, dict[str, Any]] = {}
        self.row_order: dict[tuple, int] = {}  # each row's place among the rows that came
        self.batches: list[tuple[int, pa.Table]] = []  # (the place of its first row, rows)
        self.batched_rows = self.batched_bytes = 0
        self.order = 0
        self.rejects: list[dict[str, Any]] = []
        self.replaced_keys: list[str] = []
        self._writing: tuple[threading.Thread, list[BaseException]] | None = None
        self.now = datetime.now(UTC)
        self.obj: LandedObject | None = None
        self.counts = LoadCounts()

    def begin(self, obj: LandedObject) -> None:
        """Rows from here on belong to `obj`; `counts` are its own."""
        self.obj, self.counts = obj, LoadCounts()
        self.pseudonymizer = self._pseudonymizer_of(obj.tenant_id)
        if self.replaces_object_rows:  # its old rows go before its first rows are written
            self.replaced_keys.append(obj.key)

    def _pseudonymizer_of(self, tenant: str | None) -> Pseudonymizer | None:
        """The tenant's privacy rules for this writer's rows (domain/privacy.py), made once per
        tenant; a fault in them (no key, an unknown field) fails the object, naming it."""
        if tenant not in self._pseudonymizers:
            try:
                rules = self.privacy_rules(tenant)
                if rules is not None:
                    rules.check_fields(self.table.name, self.table.text_columns)
                self._pseudonymizers[tenant] = rules.pseudonymizer() if rules else None
            except (TenantsFileError, ValueError, MissingSecretError) as exc:
                raise LandedFileError(f"privacy rules of tenant {tenant}: {exc}") from None
        return self._pseudonymizers[tenant]

    def privacy_rules(self, tenant: str | None) -> PrivacyRules | None:
        """The rules of the tenant's `landing: {<kind>: ...}` block for this writer's kind."""
        if self.landed_kind is None or tenant is None:
            return None
        return tenant_privacy(get_settings().tenants_file, tenant).landed(self.landed_kind)

    def add(self, row: dict[str, Any]) -> None:
        if self.pseudonymizer is not None:
            row = self.pseudonymizer.record(row)
        key = tuple(row[k] for k in self.table.key)
        self.rows[key] = row
        self.row_order[key] = self.order
        self.order += 1
        self.counts.loaded += 1
        if self._full():
            self.flush()

    def add_batch(self, rows: pa.Table) -> None:
        """Validated rows as an Arrow table of the table's schema, in the order they came."""
        if rows.num_rows == 0:
            return
        if self.pseudonymizer is not None:
            rows = self.pseudonymizer.table(rows)
        self.batches.append((self.order, rows))
        self.order += rows.num_rows
        self.batched_rows += rows.num_rows
        self.batched_bytes += rows.nbytes
        self.counts.loaded += rows.num_rows
        if self._full():
            self._flush_behind()

    def _full(self) -> bool:
        return (
            len(self.rows) >= BATCH_ROWS
            or len(self.rows) + self.batched_rows >= ARROW_BATCH_ROWS
            or self.batched_bytes >= ARROW_BATCH_BYTES
        )

    def reject(
        self, line_no: int, reason: str, payload: str, instance: str, source: str | None = None
    ) -> None:
        assert self.obj is not None
        if self.pseudonymizer is not None:
            payload = self.pseudonymizer.payload(payload)
        self.rejects.append(
            {
                "tenant_id": self.obj.tenant_id,
                "source_type": source or self.source,
                "source_instance": instance,
                "record_ref": f"{self.obj.key}:{line_no}",
                # A NUL would fail the whole batch on PostgreSQL: stored as its escape.
                "reason": printable(reason),
                "payload": printable(payload[:MAX_PAYLOAD_CHARS]),
                "raw_load_id": self.obj.upload_id,
                "rejected_at": self.now,
            }
        )
        self.counts.rejected += 1
        if len(self.rejects) >= BATCH_ROWS:
            self.flush()

    def failed(self, reason: str) -> LandedFileError:
        """The rows read before the damage stay (idempotent); the reason and counts go up."""
        return LandedFileError(reason, LoadCounts(self.counts.loaded, self.counts.rejected))

    def flush(self) -> None:
        """Store everything buffered; returns once it is stored (a write still going first)."""
        self._wait()
        self._store(*self._take())

    def _flush_behind(self) -> None:
        """Store what is buffered in a thread while the reader goes on (the warehouse works
        without the GIL): one write at a time, in order; its error is raised by the next
        flush."""
        self._wait()
        work, errors = self._take(), list[BaseException]()

        def store() -> None:
            try:
                self._store(*work)
            except BaseException as exc:  # raised in the reader's thread by _wait
                errors.append(exc)

        thread = threading.Thread(target=store, name="landing-writer", daemon=True)
        thread.start()
        self._writing = (thread, errors)

    def _wait(self) -> None:
        if self._writing is not None:
            (thread, errors), self._writing = self._writing, None
            thread.join()
            if errors:
                raise errors[0]

    def _take(self) -> tuple[list[str], Iterable[dict[str, Any]] | pa.Table, list[dict[str, Any]]]:
        """What is buffered (the object keys whose old rows go, the rows, the rejects), and
        the buffers emptied."""
        rows = self._arrow_rows() if self.batches else list(self.rows.values())
        work = (self.replaced_keys, rows, self.rejects)
        self.replaced_keys, self.rows, self.row_order, self.rejects = [], {}, {}, []
        self.batches, self.batched_rows, self.batched_bytes = [], 0, 0
        return work

    def _store(
        self,
        replaced_keys: list[str],
        rows: Iterable[dict[str, Any]] | pa.Table,
        rejects: list[dict[str, Any]],
    ) -> None:
        if replaced_keys:
            column = self.table.key[0]  # object_key: log records are keyed (object_key, line_no)
            for chunk in batched(replaced_keys, IN_LIST_SIZE):
                self.warehouse.execute(
                    f"DELETE FROM {self.table.qualified} WHERE {column} IN "
                    f"({', '.join(['%s'] * len(chunk))})",
                    chunk,
                )
        self.warehouse.upsert(self.table, rows, not_older_than=self.not_older_than)
        self.warehouse.upsert(REJECTED_RECORDS, rejects)

    def _arrow_rows(self) -> pa.Table:
        """The batches and the single rows as one table, the last version of a key kept."""
        schema = self.table.arrow_schema
        parts = [(first, rows.select(schema.names)) for first, rows in self.batches]
        if self.rows:
            order = pa.array(list(self.row_order.values()), pa.int64())
            parts.append((order, self.table.to_arrow(list(self.rows.values()))))
        tables = []
        for first, rows in parts:
            if isinstance(first, int):
                first = pa.array(range(first, first + rows.num_rows), pa.int64())
            tables.append(rows.cast(schema).append_column(_ORDER, first))
        # A key that came more than once: its last version wins.
        return last_per_key(pa.concat_tables(tables), self.table.key, _ORDER).drop_columns([_ORDER])


_ORDER = "__order"


# --------------------------------------------------------------------------- writing


def _max_line_bytes() -> int:
    """INGEST_MAX_LINE_BYTES, read per run like every setting."""
    return get_settings().max_line_bytes


def _write(writer: LandingWriter, rows: Iterable[Row | Rejected | pa.Table], instance: str) -> None:
    """Each row upserted, each reject stored; a file-level fault fails this object only."""
    try:
        for row in rows:
            if isinstance(row, Rejected):
                writer.reject(row.line_no, row.reason, row.raw, instance)
            elif isinstance(row, pa.Table):
                writer.add_batch(row)
            else:
                writer.add(row)
    except LandedFileError as exc:
        raise writer.failed(str(exc)) from exc
    except RecursionError:  # the readers check depth first; this keeps it in its object anyway
        raise writer.failed(TOO_DEEP) from None


def _json_column(value: Any, name: str) -> str:
    """A JSON column's text, refused (ValueError naming the column) where a warehouse would
    refuse it: NaN/Infinity are not JSON, and PostgreSQL's jsonb refuses \\u0000."""
    try:
        text = json.dumps(value, sort_keys=True, default=str, allow_nan=False)
    except ValueError:
        raise ValueError(f"{name}: NaN or Infinity is not a JSON value") from None
    if _JSON_NUL.search(text):
        raise ValueError(f"{name}: holds a NUL character (\\u0000), which PostgreSQL cannot store")
    return text


# \u0000 as an escape, not as an escaped backslash followed by "u0000".
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


# --------------------------------------------------------------------------- logs


def read_logs(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """Each line a row of normalized.log_records keyed (object key, line number); a line that
    does not parse goes to the rejects table with its number and the file still completes.
    A new version of the same key replaces every line of the old one (it may be shorter)."""
    _write(writer, log_rows(obj, body, writer.now, _max_line_bytes()), LANDING_INSTANCE)


def log_rows(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected]:
    """The log_records rows and rejects of one log file; LandedFileError if it cannot be read."""
    try:
        for line in parse_lines(body, max_line_bytes=max_line_bytes):
            if isinstance(line, BadLine):
                yield Rejected(line.line_no, line.reason, line.text)
                continue
            fields = {"level": line.level, "service": line.service, "message": line.message}
            try:
                attributes = _json_column(line.attributes, "attributes")
                why = unstorable_text(fields)
            except ValueError as exc:
                why = str(exc)
            if why is not None:
                raw = json.dumps({**fields, **line.attributes}, default=str)
                yield Rejected(line.line_no, f"line {line.line_no}: {why}", raw)
                continue
            yield {
                "tenant_id": obj.tenant_id,
                "upload_id": obj.upload_id,
                "object_key": obj.key,
                "line_no": line.line_no,
                "ts": line.ts,
                **fields,
                "attributes": attributes if line.attributes else None,
                "ingested_at": now,
            }
    except LogFileError as exc:
        raise LandedFileError(str(exc)) from exc


# --------------------------------------------------------------------------- events


def read_events(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """NDJSON (or a JSON array) or CSV app events into normalized.events, unique on
    (tenant_id, event_id): the same batch twice, or overlapping batches, add nothing."""
    _write(writer, event_batches(obj, body, writer.now, _max_line_bytes()), LANDING_INSTANCE)


def _origin(
    obj: LandedObject, source_type: str, source_instance: str | None, now: datetime
) -> dict[str, Any]:
    """The columns saying where a landed row comes from (its object is its raw load)."""
    return {
        "tenant_id": obj.tenant_id,
        "source_type": source_type,
        "source_instance": source_instance,
        "raw_load_id": obj.upload_id,
        "ingested_at": now,
    }


def event_rows(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected]:
    """The events rows and rejects of one batch; LandedFileError if it cannot be read."""
    base = _origin(obj, EVENTS_SOURCE, LANDING_INSTANCE, now)
    for line_no, record, raw in _records(body, True, max_line_bytes):
        yield _event(line_no, record, raw, base)


def _event(line_no: int, record: dict[str, Any] | str, raw: str, base: Row) -> Row | Rejected:
    """The record path of one event: its row, or the reject with its reason."""
    if isinstance(record, str):
        return Rejected(line_no, record, raw)
    try:
        row = APP_EVENT.validate_python({**_event_fields(record), **base})
        if row["properties"] is not None:
            row["properties"] = _json_column(row["properties"], "properties")
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        return Rejected(line_no, _reason(exc), raw)
    return _storable(row, line_no, raw)


def _reason(exc: Exception) -> str:
    return TOO_DEEP if isinstance(exc, RecursionError) else rejection_reason(exc)


def _storable(row: Row, line_no: int, raw: str) -> Row | Rejected:
    """The row, or a reject if a text value holds what the warehouse cannot store."""
    why = unstorable_text(row)
    return row if why is None else Rejected(line_no, why, raw)


_EVENT_TEXT_FIELDS = ("item_id", "author_id", "actor_id", "ip", "session_id")


def _event_fields(record: dict[str, Any]) -> dict[str, Any]:
    record = blank_to_none(record)
    event_type = record.get("event_type")
    properties = record.get("properties")
    if isinstance(properties, str):  # CSV carries the object as JSON text
        properties = _json_cell(properties, "properties")
    return {
        "event_id": record.get("event_id") or record.get("idempotency_key"),
        "event_type": event_type.upper() if isinstance(event_type, str) else event_type,
        "occurred_at": record.get("occurred_at"),
        "properties": properties,
        **{name: record.get(name) for name in _EVENT_TEXT_FIELDS},
    }


def _json_cell(text: str, name: str) -> Any:
    """A CSV cell holding JSON, parsed; ValueError naming the column."""
    if json_too_deep(text):
        raise ValueError(f"{name}: {TOO_DEEP}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise ValueError(f"{name}: not valid JSON ({exc})") from None


# --------------------------------------------------------------------------- events in bulk

BULK_LINES = 10_000  # NDJSON lines judged together (bounded by BULK_CHARS too)
BULK_THREADS = 2  # groups of lines judged at once
BULK_CHARS = 8 * 1024 * 1024
# When most lines of a group went by the record path (Arrow refused them, e.g. a partner's ids
# are numbers where the bulk path reads text), the rest of the object goes there straight:
# halving groups Arrow refuses line after line cost more than the record path alone (16.1 s
# against 12.3 s for 100,000 crawl items with numeric ids).
GIVE_UP_LINES = 1000
GIVE_UP_SHARE = 0.9
# A line longer than this goes to the record path: no number in it can pass Python's digit limit.
BULK_LINE_CHARS = 4300
_EVENT_TEXTS = ("event_id", "idempotency_key", "event_type", "occurred_at", *_EVENT_TEXT_FIELDS)
# The fields the bulk path reads as text: any other JSON kind there makes Arrow refuse the lines.
_EVENT_JSON_SCHEMA = pa.schema([(name, pa.string()) for name in _EVENT_TEXTS])
_JSON_BLOCK_BYTES = 1024 * 1024
# What json.dumps writes unescaped (ensure_ascii): printable ASCII but the quote and backslash.
_PLAIN_JSON_TEXT = r"^[ !#-\[\]-~]*$"
# A first character Python's str.strip() may take for whitespace beyond ASCII's.
_MAYBE_BLANK = r"^[\x00-\x1f\x85\pZ]"


@dataclass(frozen=True)
class _BulkKind:
    """What the NDJSON bulk reader needs of a kind: the fields Arrow reads (as text), whether
    Arrow infers the others (events: `properties`) or skips them, how a parsed group is settled
    (`settle(parsed, base)`: the rows, EVENTS' or ITEMS' schema and `__row`, and the parsed rows
    left open) and the record path of one line."""

    table: Table
    json_schema: pa.Schema
    unread_fields: str  # Arrow's unexpected_field_behavior: "infer" or "ignore"
    settle: Callable[[pa.Table, Row], tuple[pa.Table, pa.Array]]
    record: Callable[[int, dict[str, Any] | str, str, Row], Row | Rejected]


def event_batches(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected | pa.Table]:
    """`event_rows`, with NDJSON read in bulk: its rows come as Arrow tables of EVENTS' schema
    (in line order), its rejects as the record path gives them. JSON arrays and CSV go through
    the record path."""
    base = _origin(obj, EVENTS_SOURCE, LANDING_INSTANCE, now)
    yield from _in_bulk(_EVENTS_IN_BULK, body, max_line_bytes, base, allow_csv=True)


def _in_bulk(
    kind: _BulkKind, body: BinaryIO, max_line_bytes: int, base: Row, allow_csv: bool
) -> Iterator[Row | Rejected | pa.Table]:
    """A body of `kind`: NDJSON in bulk, a JSON array (or CSV) by the record path."""
    try:
        source = sniff(body)
        first = source.peek()
    except TextBodyError as exc:
        raise LandedFileError(str(exc)) from exc
    if first is not None and first[1] != b"{":
        for line_no, record, raw in _records_of(source, first, allow_csv, max_line_bytes):
            yield kind.record(line_no, record, raw, base)
        return
    yield from _ndjson_in_bulk(kind, source, max_line_bytes, base)


def _ndjson_in_bulk(
    kind: _BulkKind, source: Sniffed, max_line_bytes: int, base: Row
) -> Iterator[Row | Rejected | pa.Table]:
    """The lines in groups of BULK_LINES, BULK_THREADS groups judged at once (Arrow's kernels
    work without the GIL), their results in line order."""
    texts: list[pa.Array] = []
    numbers: list[pa.Array] = []
    lines = chars = 0
    judging: deque[Future[tuple[list[pa.Table | Rejected], int, int]]] = deque()
    in_bulk = True
    with ThreadPoolExecutor(BULK_THREADS, thread_name_prefix="landing-bulk") as pool:

        def judge() -> None:
            group = (kind, pa.concat_arrays(texts), pa.concat_arrays(numbers), base, in_bulk)
            judging.append(pool.submit(_lines_in_bulk, *group))

        def judged() -> list[pa.Table | Rejected]:
            nonlocal in_bulk
            results, by_record, count = judging.popleft().result()
            if count >= GIVE_UP_LINES and by_record >= GIVE_UP_SHARE * count:
                in_bulk = False  # this object's lines are not Arrow's: stop paying for both
            return results

        try:
            for item in source.blocks(max_line_bytes):
                if isinstance(item, TextLine):
                    if item.problem is not None:
                        yield Rejected(item.line_no, item.problem, item.text)
                        continue
                    text, first_no = pa.array([item.text], pa.string()), item.line_no
                else:
                    text, first_no = _block_lines(item), item.first_line_no
                texts.append(text)
                numbers.append(pa.array(range(first_no, first_no + len(text)), pa.int64()))
                lines, chars = lines + len(text), chars + len(item.text)
                if lines >= BULK_LINES or chars >= BULK_CHARS:
                    judge()
                    texts, numbers, lines, chars = [], [], 0, 0
                while judging and (len(judging) > BULK_THREADS or judging[0].done()):
                    yield from judged()
        except TextBodyError as exc:
            if texts:  # the rows before the damage count, as on the record path
                judge()
            while judging:
                yield from judged()
            raise LandedFileError(str(exc)) from exc
        if texts:
            judge()
        while judging:
            yield from judged()


def _block_lines(block: TextBlock) -> pa.Array:
    """A block's lines (blank ones included: each line keeps its number)."""
    text = block.text[:-1] if block.text.endswith("\n") else block.text
    return pc.split_pattern(pa.array([text], pa.string()), "\n").flatten()


def _lines_in_bulk(
    kind: _BulkKind, lines: pa.Array, numbers: pa.Array, base: Row, in_bulk: bool = True
) -> tuple[list[pa.Table | Rejected], int, int]:
    """The rows (one table, in line order) and rejects of these lines, how many lines went by
    the record path and how many there were: each line the bulk path is sure of settled at
    once, every other one by the record path (all of them when not `in_bulk`)."""
    results: list[pa.Table | Rejected] = []
    trimmed = pc.utf8_trim(lines, characters=ASCII_WHITESPACE)
    if not in_bulk or unstorable_text(base) is not None:  # the record path says why
        candidate = pa.array([False] * len(lines), pa.bool_())
    else:
        candidate = _bulk_candidates(kind, trimmed)
    positions = pa.array(range(len(lines)), pa.int64()).filter(candidate)
    settled: list[pa.Table] = []
    record: list[pa.Array] = [pc.indices_nonzero(pc.invert(candidate)).cast(pa.int64())]
    for group in _parsed_groups(kind, trimmed.filter(candidate), positions):
        if isinstance(group, pa.Array):
            record.append(group)
            continue
        parsed, at = group
        rows, open_rows = kind.settle(parsed, base)
        settled.append(rows.append_column(_ORDER, at.take(rows["__row"])).drop_columns(["__row"]))
        record.append(at.take(open_rows))
    rows = []
    by_record = 0
    for position in sorted(pa.concat_arrays(record).to_pylist()):
        raw = lines[position].as_py().strip()
        if not raw:
            continue  # a blank line: counted, nothing else
        by_record += 1
        result = kind.record(numbers[position].as_py(), _json_record(raw), raw, base)
        if isinstance(result, Rejected):
            results.append(result)
        else:
            rows.append((position, result))
    if rows:
        table = kind.table.to_arrow([row for _, row in rows])
        order = pa.array([position for position, _ in rows], pa.int64())
        settled.append(table.append_column(_ORDER, order))
    if settled:
        table = pa.concat_tables(settled)
        results.append(table.take(pc.sort_indices(table[_ORDER])).drop_columns([_ORDER]))
    return results, by_record, len(lines)


def _bulk_candidates(kind: _BulkKind, trimmed: pa.Array) -> pa.Array:
    """An object on its line (nothing after it, nothing before), not long: a candidate. Depth is
    judged on what Arrow parses (`_nesting`), or where Arrow skips the members it does not read
    by json_too_deep's first rule (its brackets counted)."""
    candidate = pc.and_(
        pc.and_(pc.starts_with(trimmed, "{"), pc.ends_with(trimmed, "}")),
        pc.less_equal(pc.binary_length(trimmed), BULK_LINE_CHARS),
    )
    if kind.unread_fields == "ignore":
        brackets = pc.count_substring_regex(trimmed, r"[\[{]")
        candidate = pc.and_(candidate, pc.less_equal(brackets, MAX_JSON_DEPTH))
    return candidate


def _parsed_groups(
    kind: _BulkKind, texts: pa.Array, positions: pa.Array
) -> Iterator[tuple[pa.Table, pa.Array] | pa.Array]:
    """The lines parsed by Arrow (table, the lines' positions), or positions Arrow refused (the
    record path's): a group Arrow refuses is halved until the lines it refuses are few."""
    if len(texts) == 0:
        return
    joined = pc.binary_join(
        pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), "\n"
    )
    data = joined[0].as_buffer()
    try:
        parsed = pa_json.read_json(
            pa.BufferReader(data),
            read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK_BYTES, use_threads=False),
            parse_options=pa_json.ParseOptions(
                explicit_schema=kind.json_schema,
                unexpected_field_behavior=kind.unread_fields,
                newlines_in_values=False,
            ),
        )
    except (pa.ArrowException, ValueError, OverflowError):
        parsed = None
    if (
        parsed is not None
        and parsed.num_rows == len(texts)  # one object per line, no more
        and 1 + max(map(_nesting, parsed.schema.types), default=0) <= MAX_JSON_DEPTH
    ):
        yield parsed, positions
    elif len(texts) <= 16:
        yield positions
    else:
        half = len(texts) // 2
        yield from _parsed_groups(kind, texts[:half], positions[:half])
        yield from _parsed_groups(kind, texts[half:], positions[half:])


def _nesting(kind: pa.DataType) -> int:
    """How deep values of an Arrow type nest (an object or array: one level): the deepest any
    parsed line's JSON can nest below its own object."""
    if pa.types.is_struct(kind):
        return 1 + max((_nesting(kind.field(i).type) for i in range(kind.num_fields)), default=0)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return 1 + _nesting(kind.value_type)
    return 0


def _settled_events(parsed: pa.Table, base: Row) -> tuple[pa.Table, pa.Array]:
    """The rows the bulk path settles (EVENTS' schema and `__row`, the parsed row each comes
    from), and the parsed rows left to the record path."""
    n = parsed.num_rows
    column = {name: parsed.column(name).combine_chunks() for name in _EVENT_TEXTS}
    # _event_fields: the event id, or the idempotency key where the id is blank (or absent)
    event_id = column["event_id"]
    trimmed = pc.utf8_trim(event_id, characters=ASCII_WHITESPACE)
    blank = pc.fill_null(pc.equal(trimmed, ""), True)
    sure = pc.invert(pc.fill_null(pc.match_substring_regex(trimmed, _MAYBE_BLANK), False))
    event_id = pc.if_else(blank, column["idempotency_key"], event_id)
    # the type upper-cased as str.upper() does: ASCII only here
    event_type = column["event_type"]
    sure = pc.and_(sure, pc.fill_null(pc.string_is_ascii(event_type), True))
    fields = {
        "event_id": event_id,
        "event_type": pc.ascii_upper(event_type),
        "occurred_at": column["occurred_at"],
        **{name: column[name] for name in _EVENT_TEXT_FIELDS},
    }
    for values in fields.values():  # a NUL (from a \u0000 escape) is for the record path
        sure = pc.and_(sure, pc.invert(pc.fill_null(pc.match_substring(values, "\x00"), False)))
    properties = pa.nulls(n, pa.string())
    if "properties" in parsed.column_names:  # an object (or null); text is the record path's
        given_properties = parsed.column("properties").combine_chunks()
        if pa.types.is_struct(given_properties.type) or pa.types.is_null(given_properties.type):
            properties, written = _json_texts(given_properties)
            sure = pc.and_(sure, written)
        else:
            sure = pc.and_(sure, pc.is_null(given_properties))
    given = pa.array(range(n), pa.int64()).filter(sure)
    if len(given) == 0:
        empty = EVENTS.arrow_schema.empty_table().append_column("__row", pa.array([], pa.int64()))
        return empty, pa.array(range(n), pa.int64())
    lineage = {
        name: pa.repeat(pa.scalar(value, EVENTS.arrow_schema.field(name).type), len(given))
        for name, value in base.items()
    }
    # properties: settled above (an object written as its JSON text); null for the validator
    nulls = {"properties": pa.nulls(len(given), pa.string())}
    candidates = pa.table({**{k: v.filter(sure) for k, v in fields.items()}, **nulls, **lineage})
    verdict = validate_in_bulk(EVENTS, candidates)
    valid_rows = given.take(verdict.valid_rows)
    rows = verdict.valid.set_column(
        EVENTS.arrow_schema.get_field_index("properties"),
        "properties",
        properties.take(valid_rows),
    ).append_column("__row", valid_rows)
    left = pa.concat_arrays(
        [pc.indices_nonzero(pc.invert(sure)).cast(pa.int64()), given.take(verdict.record_rows)]
    )
    return rows, left


def _json_texts(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """JSON values as `_json_column` writes them (json.dumps, keys sorted), and for each row
    whether the text is certainly that: objects of objects, integers, booleans and plain ASCII
    text. A null member (absent or null: Arrow cannot tell them apart), a float, a list, text
    json.dumps would escape and every other kind leave the row to the record path."""
    n = len(values)
    if pa.types.is_null(values.type):
        return pa.nulls(n, pa.string()), pa.array([True] * n, pa.bool_())
    valid = pc.is_valid(values)
    if pa.types.is_struct(values.type):
        names = [values.type.field(i).name for i in range(values.type.num_fields)]
        if not all(re.fullmatch(_PLAIN_JSON_TEXT, name) for name in names):
            return pa.nulls(n, pa.string()), pc.invert(valid)
        sure = valid
        pieces: list[Any] = []
        for name in sorted(names):
            child = values.field(name)
            text, written = _json_texts(child)
            sure = pc.and_(sure, pc.and_(written, pc.is_valid(child)))
            pieces.append(f'"{name}": ' if not pieces else f', "{name}": ')
            pieces.append(text)
        if not pieces:
            text = pc.if_else(valid, pa.scalar("{}"), pa.scalar(None, pa.string()))
        else:
            text = pc.binary_join_element_wise("{", *pieces, "}", "")
    elif pa.types.is_integer(values.type):
        text, sure = values.cast(pa.string()), pa.array([True] * n, pa.bool_())
    elif pa.types.is_boolean(values.type):
        text = pc.if_else(values, pa.scalar("true"), pa.scalar("false"))
        sure = pa.array([True] * n, pa.bool_())
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        text = pc.binary_join_element_wise('"', values.cast(pa.string()), '"', "")
        sure = pc.fill_null(pc.match_substring_regex(values, _PLAIN_JSON_TEXT), True)
    else:
        return pa.nulls(n, pa.string()), pc.invert(valid)
    sure = pc.fill_null(sure, False)
    # a null value is written as null (no text) and settled
    return pc.if_else(valid, text, pa.scalar(None, pa.string())), pc.or_(pc.invert(valid), sure)


_EVENTS_IN_BULK = _BulkKind(EVENTS, _EVENT_JSON_SCHEMA, "infer", _settled_events, _event)


# --------------------------------------------------------------------------- crawl


def read_crawl(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """Partner item batches (JSON array or NDJSON) upserted into normalized.items on
    (tenant, 'crawl', partner, externalId): a changed item updates its row."""
    if not obj.channel:
        raise LandedFileError(f"crawl batches belong under {key_layout('crawl').pattern}")
    _write(writer, crawl_batches(obj, body, writer.now, _max_line_bytes()), obj.channel)


def crawl_rows(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected]:
    """The items rows and rejects of one partner batch; LandedFileError if it cannot be read."""
    base = _origin(obj, "crawl", obj.channel, now)
    for line_no, record, raw in _records(body, False, max_line_bytes):
        yield _crawl_item(line_no, record, raw, base)


def _crawl_item(line_no: int, record: dict[str, Any] | str, raw: str, base: Row) -> Row | Rejected:
    """The record path of one partner item: its row, or the reject with its reason."""
    if isinstance(record, str):
        return Rejected(line_no, record, raw)
    try:
        row = ITEM.validate_python({**blank_to_none(_crawl_fields(record)), **base})
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        return Rejected(line_no, _reason(exc), raw)
    return _storable(row, line_no, raw)


# Each items field and the names a partner may give it, in the order they are tried: the first
# that is present and not "" is taken.
_CRAWL_NAMES = {
    "external_id": ("externalId", "external_id", "id"),
    "title": ("title", "name"),
    "summary": ("summary", "description"),
    "url": ("url", "link"),
    "author": ("author", "authorName"),
    "published_at": ("publishedAt", "published_at"),
    "updated_at": ("updatedAt", "updated_at"),
}


def _crawl_fields(record: dict[str, Any]) -> dict[str, Any]:
    def first(names: tuple[str, ...]) -> Any:
        return next((record[n] for n in names if record.get(n) not in (None, "")), None)

    return {field: first(names) for field, names in _CRAWL_NAMES.items()}


# --------------------------------------------------------------------------- crawl in bulk

# The names the bulk path reads, as text: a number (or any other JSON kind) under one of them
# makes Arrow refuse the line, which goes to the record path. The item's other members are
# skipped (not typed, so they never make Arrow refuse a group).
_CRAWL_JSON_SCHEMA = pa.schema(
    [(name, pa.string()) for names in _CRAWL_NAMES.values() for name in names]
)


def crawl_batches(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected | pa.Table]:
    """`crawl_rows`, with NDJSON read in bulk: its rows come as Arrow tables of ITEMS' schema (in
    line order), its rejects as the record path gives them. A JSON array goes through the record
    path (lib/json_arrays.py reads it element by element)."""
    base = _origin(obj, "crawl", obj.channel, now)
    yield from _in_bulk(_CRAWL_IN_BULK, body, max_line_bytes, base, allow_csv=False)


def _settled_crawl(parsed: pa.Table, base: Row) -> tuple[pa.Table, pa.Array]:
    """The items the bulk path settles (ITEMS' schema and `__row`, the parsed row each comes
    from), and the parsed rows left to the record path: `_crawl_fields` in Arrow compute, then
    ITEMS' bulk validator (the one the csv normalize path uses)."""
    n = parsed.num_rows
    sure = pa.array([True] * n, pa.bool_())
    fields: dict[str, pa.Array] = {}
    for field, names in _CRAWL_NAMES.items():
        given = [parsed.column(name).combine_chunks() for name in names]
        # the first name present and not "" (blank text is taken, then made absent by the
        # validator, as blank_to_none does on the record path)
        value = pc.coalesce(
            *(pc.if_else(pc.equal(v, ""), pa.scalar(None, pa.string()), v) for v in given)
        )
        # a NUL (from a \u0000 escape) is for the record path, which names the field
        sure = pc.and_(sure, pc.invert(pc.fill_null(pc.match_substring(value, "\x00"), False)))
        fields[field] = value
    given_rows = pa.array(range(n), pa.int64()).filter(sure)
    lineage = {
        name: pa.repeat(pa.scalar(value, ITEMS.arrow_schema.field(name).type), len(given_rows))
        for name, value in base.items()
    }
    candidates = pa.table({**{k: v.filter(sure) for k, v in fields.items()}, **lineage})
    verdict = validate_in_bulk(ITEMS, candidates)
    rows = verdict.valid.append_column("__row", given_rows.take(verdict.valid_rows))
    left = pa.concat_arrays(
        [pc.indices_nonzero(pc.invert(sure)).cast(pa.int64()), given_rows.take(verdict.record_rows)]
    )
    return rows, left


_CRAWL_IN_BULK = _BulkKind(ITEMS, _CRAWL_JSON_SCHEMA, "ignore", _settled_crawl, _crawl_item)


# --------------------------------------------------------------------------- webhooks


class WebhooksWriter(LandingWriter):
    """Deliveries landed by the intake: Intercom conversations into normalized.feedback (on the
    Intercom pull source's key, so a conversation pulled and pushed is one row; a delivery older
    than the row changes nothing) and Stripe payment events into normalized.payments."""

    def __init__(self, warehouse: Warehouse):
        super().__init__(warehouse, FEEDBACK, "intercom", not_older_than="updated_at")
        self.payments: list[dict[str, Any]] = []
        self.intercom_instances = _intercom_instances()

    def privacy_rules(self, tenant: str | None) -> PrivacyRules | None:
        """A pushed conversation is pseudonymized by the rules of the pull source it joins."""
        instance = self.intercom_instances.get(tenant or "")
        return instance.privacy if instance else None

    def add_payment(self, row: dict[str, Any]) -> None:
        self.payments.append(row)
        self.counts.loaded += 1
        if len(self.payments) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        super().flush()
        upsert_payments(self.warehouse, self.payments)
        self.payments = []


def _intercom_instances() -> dict[str, SourceInstance]:
    """tenant → its Intercom pull instance: pushed conversations join the pulled rows."""
    try:
        instances = load_source_instances(get_settings().tenants_file)
    except TenantsFileError:
        return {}
    found: dict[str, SourceInstance] = {}
    for instance in instances:
        if instance.type == "intercom":
            found.setdefault(instance.tenant, instance)
    return found


def read_webhooks(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """One delivery, as the intake verified and stored it (the provider's raw JSON body)."""
    assert isinstance(writer, WebhooksWriter)
    document, raw = webhook_document(body.read(MAX_WEBHOOK_BYTES + 1))
    try:
        if obj.channel == "intercom":
            _intercom_delivery(writer, obj, document, raw)
        elif obj.channel == "stripe":
            _stripe_delivery(writer, obj, document, raw)
        else:
            raise LandedFileError(f"unknown webhook provider {obj.channel!r}")
    except RecursionError:  # the depth is checked first; this keeps it in its object anyway
        raise LandedFileError(TOO_DEEP) from None


def webhook_document(data: bytes) -> tuple[dict[str, Any], str]:
    """A delivery body as (the JSON object, its text); LandedFileError if it is not one."""
    if len(data) > MAX_WEBHOOK_BYTES:
        raise LandedFileError(f"larger than {MAX_WEBHOOK_BYTES} bytes: not a webhook delivery")
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LandedFileError(f"not a JSON delivery: {exc}") from None
    document = _json_document(raw, "not a JSON delivery")
    if not isinstance(document, dict):
        raise LandedFileError("a webhook delivery must be a JSON object")
    return document, raw


def _json_document(text: str, what: str, depth: int = MAX_JSON_DEPTH) -> Any:
    """A whole-object JSON document parsed, or LandedFileError saying why it is not one."""
    if json_too_deep(text, depth):
        raise LandedFileError(TOO_DEEP)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LandedFileError(
            f"{what} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise LandedFileError(f"{what}: {exc}") from None
    except RecursionError:  # json_too_deep should have said so; never let it past the object
        raise LandedFileError(TOO_DEEP) from None


def _intercom_delivery(
    writer: WebhooksWriter, obj: LandedObject, notification: dict[str, Any], raw: str
) -> None:
    item = dig(notification, "data.item")
    topic = str(notification.get("topic") or "")
    if not topic.startswith("conversation.") or not isinstance(item, dict):
        return  # a topic without a conversation (ping, contact.*): nothing to store
    pulled = writer.intercom_instances.get(obj.tenant_id)
    instance = pulled.name if pulled else WEBHOOK_INSTANCE
    try:
        row = FEEDBACK_SHAPE.validate_python(
            {
                **blank_to_none(map_intercom_row(item, None)),
                "tenant_id": obj.tenant_id,
                "source_type": "intercom",
                "source_instance": instance,
                "raw_load_id": obj.upload_id,
                "ingested_at": writer.now,
            }
        )
    except (ValidationError, ValueError, TypeError) as exc:
        writer.reject(1, rejection_reason(exc), raw, instance, source="intercom")
        return
    if (why := unstorable_text(row)) is not None:
        writer.reject(1, why, raw, instance, source="intercom")
        return
    writer.add(row)


def _stripe_delivery(
    writer: WebhooksWriter, obj: LandedObject, event: dict[str, Any], raw: str
) -> None:
    try:
        row = payment_from_event(event, obj.tenant_id)
    except (ValueError, TypeError) as exc:
        writer.reject(1, str(exc), raw, WEBHOOK_INSTANCE, source="stripe")
        return
    if row is not None and (why := unstorable_text(row)) is not None:
        writer.reject(1, why, raw, WEBHOOK_INSTANCE, source="stripe")
        return
    if row is not None:  # other event types are not payments: nothing to store
        writer.add_payment(row)


# --------------------------------------------------------------------------- reading


# (line number, the record or why it is not one, the raw text)
_Record = tuple[int, dict[str, Any] | str, str]


def _records(body: BinaryIO, allow_csv: bool, max_line_bytes: int) -> Iterator[_Record]:
    """(line number, record, raw text) per record, by the first byte that is not blank: `{` is
    NDJSON (line by line, each line judged alone), `[` one JSON array (element by element, each
    element judged alone; its "line" is its position), anything else CSV with a header (a
    document), where allowed."""
    try:
        source = sniff(body)
        first = source.peek()
    except TextBodyError as exc:
        raise LandedFileError(str(exc)) from exc
    yield from _records_of(source, first, allow_csv, max_line_bytes)


def _records_of(
    source: Sniffed, first: tuple[int, bytes] | None, allow_csv: bool, max_line_bytes: int
) -> Iterator[_Record]:
    """`_records` of a body already sniffed, `first` its first byte that is not blank."""
    try:
        if first is None or first[1] == b"{":
            yield from _ndjson(source.lines(max_line_bytes))
            return
        line_no, byte = first
        if byte == b"[":
            yield from _json_array(source.text(), max_line_bytes)
        elif allow_csv:
            yield from _csv_rows(source.text(), line_no)
        else:
            raise LandedFileError(f"line {line_no}: expected a JSON array or JSON lines")
    except TextBodyError as exc:
        raise LandedFileError(str(exc)) from exc


def _ndjson(lines: Iterable[TextLine]) -> Iterator[_Record]:
    for line in lines:
        if line.problem is not None:
            yield line.line_no, line.problem, line.text
            continue
        text = line.text.strip()
        yield line.line_no, _json_record(text), text


def _json_record(text: str) -> dict[str, Any] | str:
    """One NDJSON line's object, or why it is not one."""
    if json_too_deep(text):
        return TOO_DEEP
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at column {exc.colno})"
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        return f"not valid JSON ({exc})"
    except RecursionError:  # json_too_deep should have said so; never let it past the line
        return TOO_DEEP
    return record if isinstance(record, dict) else "not a JSON object"


def _json_array(text: TextIO, max_element_bytes: int) -> Iterator[_Record]:
    """Each element of a JSON array as it is read (lib/json_arrays.py: json.loads' values, never
    the whole array in memory); an element that is not an object, nested too deep or longer
    than the line limit is a reject, a document that breaks off fails when the break is reached
    (after the elements before it)."""
    try:
        for element in array_elements(text, max_element_bytes, what="truncated or invalid JSON"):
            if element.problem is not None:
                yield element.index, element.problem, element.text
                continue
            record = element.value
            raw = json.dumps(record, default=str)
            if not isinstance(record, dict):
                record = "not a JSON object"
            yield element.index, record, raw  # in an array, the "line" is the element's position
    except JsonArrayError as exc:
        raise LandedFileError(str(exc)) from None


def _csv_rows(text: TextIO, first_no: int) -> Iterator[_Record]:
    for _ in range(first_no - 1):
        text.readline()  # blank lines before the header
    reader = csv.DictReader(text)
    try:
        for row in reader:
            raw = json.dumps(row, default=str)
            if None in row:  # more cells than header columns
                row = f"more cells than the {len(reader.fieldnames or [])} header columns"
            yield reader.line_num + first_no - 1, row, raw
    except csv.Error as exc:
        raise LandedFileError(f"line {reader.line_num + first_no - 1}: {exc}") from None
