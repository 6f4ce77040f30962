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
  NaN in JSON) is rejected with that reason and the rest of the file loads (logs, NDJSON).
- A file that cannot be read as a whole raises LandedFileError: the upload ends Failed with that
  reason and the other objects of the run go on. That is invalid gzip, data that is mostly not
  text (more than half of the lines of its first 8 KiB), a JSON document (a crawl array, a
  webhook body) that is invalid, not UTF-8 or nested too deeply, and a CSV file that is not CSV.
- Nothing else escapes a reader: a RecursionError is caught at the line and at the object.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

from pydantic import ValidationError

from ingest_pipeline.defs.normalized.models import APP_EVENT, ITEM, blank_to_none
from ingest_pipeline.defs.normalized.models import FEEDBACK as FEEDBACK_SHAPE
from ingest_pipeline.defs.normalized.normalize import printable, rejection_reason, unstorable_text
from ingest_pipeline.domain.entities import (
    FEEDBACK,
    REJECTED_RECORDS,
    Table,
)
from ingest_pipeline.domain.landing import MAX_WEBHOOK_BYTES, key_layout
from ingest_pipeline.domain.landing_cursor import batched
from ingest_pipeline.domain.log_formats import BadLine, LogFileError, parse_lines
from ingest_pipeline.domain.payments import payment_from_event, upsert_payments
from ingest_pipeline.domain.tenants import TenantsFileError, load_source_instances
from ingest_pipeline.domain.uploads import IN_LIST_SIZE, LandedObject
from ingest_pipeline.lib.json_depth import MAX_JSON_DEPTH, TOO_DEEP, json_too_deep
from ingest_pipeline.lib.text_bodies import MAX_LINE_BYTES, TextBodyError, TextLine, sniff
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.intercom.mapper import map_intercom_row
from ingest_pipeline.sources.raw_rows import dig

BATCH_ROWS = 50_000
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
    (not several per object) for a run of 500 small objects. Within a batch the last version
    of a key wins: one upsert cannot touch a row twice."""

    def __init__(
        self,
        warehouse: Warehouse,
        table: Table,
        source: str,
        replaces_object_rows: bool = False,
        not_older_than: str | None = None,
    ):
        self.warehouse, self.table, self.source = warehouse, table, source
        self.replaces_object_rows = replaces_object_rows
        self.not_older_than = not_older_than
        self.rows: dict[tuple, dict[str, Any]] = {}
        self.rejects: list[dict[str, Any]] = []
        self.replaced_keys: list[str] = []
        self.now = datetime.now(UTC)
        self.obj: LandedObject | None = None
        self.counts = LoadCounts()

    def begin(self, obj: LandedObject) -> None:
        """Rows from here on belong to `obj`; `counts` are its own."""
        self.obj, self.counts = obj, LoadCounts()
        if self.replaces_object_rows:  # its old rows go before its first rows are written
            self.replaced_keys.append(obj.key)

    def add(self, row: dict[str, Any]) -> None:
        self.rows[tuple(row[k] for k in self.table.key)] = row
        self.counts.loaded += 1
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def reject(
        self, line_no: int, reason: str, payload: str, instance: str, source: str | None = None
    ) -> None:
        assert self.obj is not None
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
        if self.replaced_keys:
            column = self.table.key[0]  # object_key: log records are keyed (object_key, line_no)
            for chunk in batched(self.replaced_keys, IN_LIST_SIZE):
                self.warehouse.execute(
                    f"DELETE FROM {self.table.qualified} WHERE {column} IN "
                    f"({', '.join(['%s'] * len(chunk))})",
                    chunk,
                )
            self.replaced_keys = []
        self.warehouse.upsert(self.table, self.rows.values(), not_older_than=self.not_older_than)
        self.warehouse.upsert(REJECTED_RECORDS, self.rejects)
        self.rows, self.rejects = {}, []


# --------------------------------------------------------------------------- writing


def _max_line_bytes() -> int:
    """INGEST_MAX_LINE_BYTES, read per run like every setting."""
    return get_settings().max_line_bytes


def _write(writer: LandingWriter, rows: Iterable[Row | Rejected], instance: str) -> None:
    """Each row upserted, each reject stored; a file-level fault fails this object only."""
    try:
        for row in rows:
            if isinstance(row, Rejected):
                writer.reject(row.line_no, row.reason, row.raw, instance)
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
    _write(writer, event_rows(obj, body, writer.now, _max_line_bytes()), LANDING_INSTANCE)


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
        if isinstance(record, str):
            yield Rejected(line_no, record, raw)
            continue
        try:
            row = APP_EVENT.validate_python({**_event_fields(record), **base})
            if row["properties"] is not None:
                row["properties"] = _json_column(row["properties"], "properties")
        except (ValidationError, ValueError, TypeError, RecursionError) as exc:
            yield Rejected(line_no, _reason(exc), raw)
            continue
        yield _storable(row, line_no, raw)


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


# --------------------------------------------------------------------------- crawl


def read_crawl(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """Partner item batches (JSON array or NDJSON) upserted into normalized.items on
    (tenant, 'crawl', partner, externalId): a changed item updates its row."""
    if not obj.channel:
        raise LandedFileError(f"crawl batches belong under {key_layout('crawl').pattern}")
    _write(writer, crawl_rows(obj, body, writer.now, _max_line_bytes()), obj.channel)


def crawl_rows(
    obj: LandedObject, body: BinaryIO, now: datetime, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Row | Rejected]:
    """The items rows and rejects of one partner batch; LandedFileError if it cannot be read."""
    base = _origin(obj, "crawl", obj.channel, now)
    for line_no, record, raw in _records(body, False, max_line_bytes):
        if isinstance(record, str):
            yield Rejected(line_no, record, raw)
            continue
        try:
            row = ITEM.validate_python({**blank_to_none(_crawl_fields(record)), **base})
        except (ValidationError, ValueError, TypeError, RecursionError) as exc:
            yield Rejected(line_no, _reason(exc), raw)
            continue
        yield _storable(row, line_no, raw)


def _crawl_fields(record: dict[str, Any]) -> dict[str, Any]:
    def first(*names: str) -> Any:
        return next((record[n] for n in names if record.get(n) not in (None, "")), None)

    return {
        "external_id": first("externalId", "external_id", "id"),
        "title": first("title", "name"),
        "summary": first("summary", "description"),
        "url": first("url", "link"),
        "author": first("author", "authorName"),
        "published_at": first("publishedAt", "published_at"),
        "updated_at": first("updatedAt", "updated_at"),
    }


# --------------------------------------------------------------------------- webhooks


class WebhooksWriter(LandingWriter):
    """Deliveries landed by the intake: Intercom conversations into normalized.feedback (on the
    Intercom pull source's key, so a conversation pulled and pushed is one row; a delivery older
    than the row changes nothing) and Stripe payment events into normalized.payments."""

    def __init__(self, warehouse: Warehouse):
        super().__init__(warehouse, FEEDBACK, "intercom", not_older_than="updated_at")
        self.payments: list[dict[str, Any]] = []
        self.intercom_instances = _intercom_instances()

    def add_payment(self, row: dict[str, Any]) -> None:
        self.payments.append(row)
        self.counts.loaded += 1
        if len(self.payments) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        super().flush()
        upsert_payments(self.warehouse, self.payments)
        self.payments = []


def _intercom_instances() -> dict[str, str]:
    """tenant → its Intercom pull instance: pushed conversations join the pulled rows."""
    try:
        instances = load_source_instances(get_settings().tenants_file)
    except TenantsFileError:
        return {}
    found: dict[str, str] = {}
    for instance in instances:
        if instance.type == "intercom":
            found.setdefault(instance.tenant, instance.name)
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
    instance = writer.intercom_instances.get(obj.tenant_id, WEBHOOK_INSTANCE)
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
    NDJSON (line by line, each line judged alone), `[` one JSON array (read whole: send big
    batches as NDJSON), anything else CSV with a header (a document), where allowed."""
    try:
        source = sniff(body)
        first = source.peek()
        if first is None or first[1] == b"{":
            yield from _ndjson(source.lines(max_line_bytes))
            return
        line_no, byte = first
        if byte == b"[":
            yield from _json_array(source.text().read())
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


def _json_array(document: str) -> Iterator[_Record]:
    # The array itself is one level: its records may nest as deep as NDJSON lines.
    records = _json_document(document, "truncated or invalid JSON", MAX_JSON_DEPTH + 1)
    if not isinstance(records, list):
        raise LandedFileError("a JSON batch must be an array of objects")
    for index, record in enumerate(records, 1):
        raw = json.dumps(record, default=str)
        if not isinstance(record, dict):
            record = "not a JSON object"
        yield index, record, raw  # in an array, the "line" is the element's position


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
