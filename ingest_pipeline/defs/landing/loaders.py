"""Turn one landed object into normalized rows, streaming, in batches of bounded size.

The object in the bucket is the raw layer of the push sources: it is kept as it was uploaded,
and processing it again (a re-run) rewrites the same rows. Each loader reads the object's body as
a stream (gzip detected by content, strict UTF-8), validates every record with pydantic, upserts
the good ones by their natural key and sends the bad ones to the rejects table with the line.
A file that cannot be read at all (invalid gzip, binary junk, undecodable text, truncated JSON)
raises LandedFileError: the upload ends Failed with that reason.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TextIO

from pydantic import ValidationError

from ingest_pipeline.defs.normalized.mappers import dig, map_intercom_row
from ingest_pipeline.defs.normalized.models import APP_EVENT, ITEM, blank_to_none
from ingest_pipeline.defs.normalized.models import FEEDBACK as FEEDBACK_SHAPE
from ingest_pipeline.defs.normalized.normalize import rejection_reason
from ingest_pipeline.lib.landing import MAX_WEBHOOK_BYTES
from ingest_pipeline.lib.landing_cursor import batched
from ingest_pipeline.lib.log_formats import BadLine, LogFileError, open_text, parse_lines
from ingest_pipeline.lib.normalized_tables import (
    EVENTS,
    FEEDBACK,
    ITEMS,
    LOG_RECORDS,
    REJECTED_RECORDS,
    Table,
)
from ingest_pipeline.lib.payments import payment_from_event, upsert_payments
from ingest_pipeline.lib.tenants import TenantsFileError, load_source_instances
from ingest_pipeline.lib.uploads import IN_LIST_SIZE, LandedObject
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import get_settings

BATCH_ROWS = 50_000
MAX_PAYLOAD_CHARS = 2000
# What identifies where a landed row came from, per kind (source_type, source_instance).
EVENTS_SOURCE = "app_events"
LANDING_INSTANCE = "landing"
WEBHOOK_INSTANCE = "webhooks"  # a pushed row's instance when the tenant has no pull instance


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
        self.content = table.content_columns
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
                "reason": reason,
                "payload": payload[:MAX_PAYLOAD_CHARS],
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
        self.warehouse.upsert(
            self.table.qualified,
            self.table.to_arrow(self.rows.values()),
            self.table.key,
            self.content,
            self.not_older_than,
        )
        REJECTED_RECORDS.upsert(self.warehouse, self.rejects)
        self.rows, self.rejects = {}, []


# --------------------------------------------------------------------------- logs


def read_logs(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """Each line a row of normalized.log_records keyed (object key, line number); a line that
    does not parse goes to the rejects table with its number and the file still completes.
    A new version of the same key replaces every line of the old one (it may be shorter)."""
    try:
        for line in parse_lines(body):
            if isinstance(line, BadLine):
                writer.reject(line.line_no, line.reason, line.text, LANDING_INSTANCE)
                continue
            writer.add(
                {
                    "tenant_id": obj.tenant_id,
                    "upload_id": obj.upload_id,
                    "object_key": obj.key,
                    "line_no": line.line_no,
                    "ts": line.ts,
                    "level": line.level,
                    "service": line.service,
                    "message": line.message,
                    "attributes": json.dumps(line.attributes, default=str)
                    if line.attributes
                    else None,
                    "ingested_at": writer.now,
                }
            )
    except LogFileError as exc:
        raise writer.failed(str(exc)) from exc


# --------------------------------------------------------------------------- events


def read_events(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """NDJSON (or a JSON array) or CSV app events into normalized.events, unique on
    (tenant_id, event_id): the same batch twice, or overlapping batches, add nothing."""
    base = {
        "tenant_id": obj.tenant_id,
        "source_type": EVENTS_SOURCE,
        "source_instance": LANDING_INSTANCE,
        "raw_load_id": obj.upload_id,
        "ingested_at": writer.now,
    }
    try:
        for line_no, record, raw in _records(body, allow_csv=True):
            if isinstance(record, str):
                writer.reject(line_no, record, raw, LANDING_INSTANCE)
                continue
            try:
                row = APP_EVENT.validate_python({**_event_fields(record), **base})
            except (ValidationError, ValueError, TypeError) as exc:
                writer.reject(line_no, rejection_reason(exc), raw, LANDING_INSTANCE)
                continue
            if row["properties"] is not None:
                row["properties"] = json.dumps(row["properties"], sort_keys=True)
            writer.add(row)
    except LandedFileError as exc:
        raise writer.failed(str(exc)) from exc


_EVENT_TEXT_FIELDS = ("item_id", "author_id", "actor_id", "ip", "session_id")


def _event_fields(record: dict[str, Any]) -> dict[str, Any]:
    record = blank_to_none(record)
    event_type = record.get("event_type")
    properties = record.get("properties")
    if isinstance(properties, str):  # CSV carries the object as JSON text
        try:
            properties = json.loads(properties)
        except json.JSONDecodeError as exc:
            raise ValueError(f"properties: not valid JSON ({exc.msg})") from None
    return {
        "event_id": record.get("event_id") or record.get("idempotency_key"),
        "event_type": event_type.upper() if isinstance(event_type, str) else event_type,
        "occurred_at": record.get("occurred_at"),
        "properties": properties,
        **{name: record.get(name) for name in _EVENT_TEXT_FIELDS},
    }


# --------------------------------------------------------------------------- crawl


def read_crawl(writer: LandingWriter, obj: LandedObject, body: BinaryIO) -> None:
    """Partner item batches (JSON array or NDJSON) upserted into normalized.items on
    (tenant, 'crawl', partner, externalId): a changed item updates its row."""
    if not obj.channel:
        raise LandedFileError("crawl batches belong under crawl/<tenant>/<partner>/<name>")
    base = {
        "tenant_id": obj.tenant_id,
        "source_type": "crawl",
        "source_instance": obj.channel,
        "raw_load_id": obj.upload_id,
        "ingested_at": writer.now,
    }
    try:
        for line_no, record, raw in _records(body, allow_csv=False):
            if isinstance(record, str):
                writer.reject(line_no, record, raw, obj.channel)
                continue
            try:
                row = ITEM.validate_python({**blank_to_none(_crawl_fields(record)), **base})
            except (ValidationError, ValueError, TypeError) as exc:
                writer.reject(line_no, rejection_reason(exc), raw, obj.channel)
                continue
            writer.add(row)
    except LandedFileError as exc:
        raise writer.failed(str(exc)) from exc


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
    data = body.read(MAX_WEBHOOK_BYTES + 1)
    if len(data) > MAX_WEBHOOK_BYTES:
        raise LandedFileError(f"larger than {MAX_WEBHOOK_BYTES} bytes: not a webhook delivery")
    try:
        raw = data.decode("utf-8")
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LandedFileError(f"not a JSON delivery: {exc}") from None
    if not isinstance(document, dict):
        raise LandedFileError("a webhook delivery must be a JSON object")
    if obj.channel == "intercom":
        _intercom_delivery(writer, obj, document, raw)
    elif obj.channel == "stripe":
        _stripe_delivery(writer, obj, document, raw)
    else:
        raise LandedFileError(f"unknown webhook provider {obj.channel!r}")


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
    writer.add(row)


def _stripe_delivery(
    writer: WebhooksWriter, obj: LandedObject, event: dict[str, Any], raw: str
) -> None:
    try:
        row = payment_from_event(event, obj.tenant_id)
    except (ValueError, TypeError) as exc:
        writer.reject(1, str(exc), raw, WEBHOOK_INSTANCE, source="stripe")
        return
    if row is not None:  # other event types are not payments: nothing to store
        writer.add_payment(row)


# --------------------------------------------------------------------------- reading


# (line number, the record or why it is not one, the raw text)
_Record = tuple[int, dict[str, Any] | str, str]


def _records(body: BinaryIO, allow_csv: bool) -> Iterator[_Record]:
    """(line number, record, raw text) per record. NDJSON streams line by line; a JSON array
    is one document (read whole: send big batches as NDJSON); CSV streams with a header."""
    try:
        text = open_text(body)
        first = _first_content_line(text)
        if first is None:
            return
        line_no, line = first
        if line.lstrip().startswith("["):
            yield from _json_array(line + text.read(), line_no)
        elif line.lstrip().startswith("{"):
            yield from _ndjson(itertools.chain([line], text), line_no)
        elif allow_csv:
            yield from _csv_rows(itertools.chain([line], text), line_no)
        else:
            raise LandedFileError(f"line {line_no}: expected a JSON array or JSON lines")
    except LogFileError as exc:
        raise LandedFileError(str(exc)) from exc


def _first_content_line(text: TextIO) -> tuple[int, str] | None:
    for line_no, line in enumerate(iter(text.readline, ""), 1):
        if line.strip():
            return line_no, line
    return None


def _ndjson(lines: Iterable[str], first_no: int) -> Iterator[_Record]:
    for line_no, line in enumerate(lines, first_no):
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, f"not valid JSON ({exc.msg} at column {exc.colno})", line
            continue
        if not isinstance(record, dict):
            record = "not a JSON object"
        yield line_no, record, line


def _json_array(document: str, line_no: int) -> Iterator[_Record]:
    try:
        records = json.loads(document)
    except json.JSONDecodeError as exc:
        raise LandedFileError(
            f"truncated or invalid JSON at line {exc.lineno + line_no - 1} column {exc.colno}: "
            f"{exc.msg}"
        ) from None
    if not isinstance(records, list):
        raise LandedFileError("a JSON batch must be an array of objects")
    for index, record in enumerate(records, 1):
        raw = json.dumps(record, default=str)
        if not isinstance(record, dict):
            record = "not a JSON object"
        yield index, record, raw  # in an array, the "line" is the element's position


def _csv_rows(lines: Iterable[str], first_no: int) -> Iterator[_Record]:
    reader = csv.DictReader(lines)
    try:
        for row in reader:
            raw = json.dumps(row, default=str)
            if None in row:  # more cells than header columns
                row = f"more cells than the {len(reader.fieldnames or [])} header columns"
            yield reader.line_num + first_no - 1, row, raw
    except csv.Error as exc:
        raise LandedFileError(f"line {reader.line_num + first_no - 1}: {exc}") from None


@dataclass(frozen=True)
class Loader:
    """How one kind is read (`read`) and where its rows go (`writer`, one per run)."""

    read: Callable[[LandingWriter, LandedObject, BinaryIO], None]
    writer: Callable[[Warehouse], LandingWriter]


LOADERS = {
    "logs": Loader(
        read_logs, lambda wh: LandingWriter(wh, LOG_RECORDS, "logs", replaces_object_rows=True)
    ),
    "events": Loader(read_events, lambda wh: LandingWriter(wh, EVENTS, EVENTS_SOURCE)),
    "crawl": Loader(read_crawl, lambda wh: LandingWriter(wh, ITEMS, "crawl")),
    "webhooks": Loader(read_webhooks, WebhooksWriter),
}
