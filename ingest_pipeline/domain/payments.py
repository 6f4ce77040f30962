"""Stripe events → `normalized.payments`: one row per (tenant, PaymentIntent), however it arrives.

Pure and shared by the pull source (raw Stripe events) and the signed webhook deliveries: both
turn an event into a row with `payment_from_event` and apply rows with `upsert_payments`.

Events of one payment come out of order (a webhook retried hours later, a replay of raw, the
pull and the push both delivering) so applying rows is a merge that gives the same row whatever
the order and however often each event is applied:

- `status`: `refunded` wins over `succeeded` (a late `payment_intent.succeeded` never un-refunds);
- `updated_at`: the greatest event time seen; `created_at`: the earliest object time seen
  (the PaymentIntent's own, once its event is seen, not its charge's a second later);
- `author_id`, `item_id`, `amount`, `currency`: a non-null value fills a null; where both rows
  have one, the newer event's (`updated_at`) wins, and on a tie the greater value (so even
  conflicting same-second events give one answer);
- a row is only rewritten when a value changes: the same event twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ingest_pipeline.domain.entities import PAYMENTS
from ingest_pipeline.lib.warehouse import Warehouse

PAYMENT_EVENT_TYPES = frozenset({"payment_intent.succeeded", "charge.succeeded", "charge.refunded"})
SUCCEEDED = "succeeded"
REFUNDED = "refunded"
# A status never goes back to a lower rank: refunds are final.
STATUS_RANK = {SUCCEEDED: 1, REFUNDED: 2}
# Columns merged as "the newer event's non-null value".
NEWEST_COLUMNS = ("author_id", "item_id", "amount", "currency")
_KEY = PAYMENTS.key


def payment_from_event(event: Mapping[str, Any], tenant_id: str) -> dict[str, Any] | None:
    """The `normalized.payments` row of a Stripe event, or None if it is no payment event.

    `payment_intent.succeeded`, `charge.succeeded` and `charge.refunded` make a row; every other
    event type is ignored (None). Raises ValueError naming what is wrong with a malformed
    payment event (no object, no id, a bad amount, ...).
    """
    event_type = event.get("type")
    if event_type not in PAYMENT_EVENT_TYPES:
        return None
    where = f"{event_type} event {event.get('id') or '(no id)'}"
    if not tenant_id:
        raise ValueError(f"{where}: no tenant")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: no data.object")
    kind = "payment_intent" if event_type.startswith("payment_intent.") else "charge"
    if obj.get("object", kind) != kind:
        raise ValueError(f"{where}: data.object is a {obj.get('object')!r}, not a {kind}")
    object_id = obj.get("id")
    if not isinstance(object_id, str) or not object_id:
        raise ValueError(f"{where}: data.object has no id")

    if kind == "payment_intent":
        payment_id = object_id
        amount = obj.get("amount_received") or obj.get("amount")
        refunded = False
    else:
        payment_id = _id_of(obj.get("payment_intent"), where) or object_id
        amount = obj.get("amount")
        refunded = event_type == "charge.refunded" or obj.get("refunded") is True
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"{where}: amount must be a non-negative integer, got {amount!r}")
    currency = obj.get("currency")
    if not isinstance(currency, str) or not currency.strip():
        raise ValueError(f"{where}: no currency")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"{where}: metadata must be an object")
    return {
        "tenant_id": tenant_id,
        "payment_id": payment_id,
        "author_id": _text(metadata.get("author_id")),
        "item_id": _text(metadata.get("item_id")),
        "amount": amount,
        "currency": currency.strip().lower(),
        "status": REFUNDED if refunded else SUCCEEDED,
        "created_at": _timestamp(obj.get("created"), f"{where}: data.object.created"),
        "updated_at": _timestamp(event.get("created"), f"{where}: created"),
    }


def merge_payment_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Two rows of one payment as one, by the rules above (the same as `upsert_payments`)."""
    merged = {k: a[k] for k in _KEY}
    newer = _compare(b.get("updated_at"), a.get("updated_at"))
    for column in NEWEST_COLUMNS:
        mine, theirs = a.get(column), b.get(column)
        if mine is None or theirs is None:
            merged[column] = theirs if mine is None else mine
        elif newer != 0:
            merged[column] = theirs if newer > 0 else mine
        else:
            merged[column] = max(mine, theirs)
    merged["status"] = max(
        (s for s in (a.get("status"), b.get("status")) if s is not None),
        key=lambda s: STATUS_RANK.get(s, 0),
        default=None,
    )
    merged["created_at"] = _extreme(min, a.get("created_at"), b.get("created_at"))
    merged["updated_at"] = _extreme(max, a.get("updated_at"), b.get("updated_at"))
    return merged


def upsert_payments(warehouse: Warehouse, rows: Sequence[Mapping[str, Any]]) -> None:
    """Merge rows into `normalized.payments` on (tenant_id, payment_id), set-based.

    Idempotent and order-independent (see the module docstring). Rows of one key within `rows`
    are merged here first: one INSERT ... ON CONFLICT cannot touch a row twice.
    """
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in _KEY)
        merged[key] = merge_payment_rows(merged[key], row) if key in merged else dict(row)
    if not merged:
        return
    now = datetime.now(UTC)
    for row in merged.values():
        row["ingested_at"] = now
    warehouse.upsert(PAYMENTS, merged.values(), on_conflict=_on_conflict())


def _on_conflict() -> str:
    """The merge rules as SQL (DuckDB and PostgreSQL alike), t = stored, excluded = incoming."""
    newer = "excluded.updated_at > t.updated_at"
    older = "excluded.updated_at < t.updated_at"
    values = {
        column: f"CASE WHEN {newer} THEN coalesce(excluded.{column}, t.{column}) "
        f"WHEN {older} THEN coalesce(t.{column}, excluded.{column}) "
        f"ELSE greatest(t.{column}, excluded.{column}) END"
        for column in NEWEST_COLUMNS
    }
    ranked = " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items())
    values["status"] = (
        f"CASE WHEN (CASE excluded.status {ranked} ELSE 0 END) > "
        f"(CASE t.status {ranked} ELSE 0 END) OR t.status IS NULL "
        f"THEN excluded.status ELSE t.status END"
    )
    # least/greatest skip nulls on both databases.
    values["created_at"] = "least(t.created_at, excluded.created_at)"
    values["updated_at"] = "greatest(t.updated_at, excluded.updated_at)"
    # The time of the write follows a real change and never counts as one.
    sets = ", ".join(
        [f"{column} = {value}" for column, value in values.items()]
        + ["ingested_at = excluded.ingested_at"]
    )
    changed = " OR ".join(
        f"({value}) IS DISTINCT FROM t.{column}" for column, value in values.items()
    )
    return f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {sets} WHERE {changed}"


def _id_of(value: Any, where: str) -> str | None:
    """An id field that Stripe may also send expanded (an object with an `id`)."""
    if isinstance(value, Mapping):
        value = value.get("id")
    if value is None or (isinstance(value, str) and value):
        return value
    raise ValueError(f"{where}: payment_intent must be an id, got {value!r}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _timestamp(value: Any, what: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a unix timestamp, got {value!r}")
    return datetime.fromtimestamp(value, tz=UTC)


def _compare(a: Any, b: Any) -> int:
    if a is None or b is None or a == b:
        return 0
    return 1 if a > b else -1


def _extreme(pick: Any, a: Any, b: Any) -> Any:
    values = [v for v in (a, b) if v is not None]
    return pick(values) if values else None
