"""`normalized/payments`: Stripe payment events from raw, merged into one row per PaymentIntent.

Consumes every raw dlt load of `raw_stripe` not yet normalized (tracked in
`normalized.normalized_loads`, as the other normalized assets do). Each raw event row becomes a
row with `payment_from_event` (other event types are ignored); malformed payment events go to
`normalized.rejected_records` with the reason. Rows are applied with `upsert_payments`, an
order-independent, idempotent merge, so a replay (`replay: true`) simply re-applies every raw
load: the result is what the raw events say, and rows the webhook deliveries wrote stay.

A raw row is normalized even if its instance has left the tenants file: a payment that
happened stays a payment.
"""

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ingest_pipeline.defs.normalized.assets import NormalizeConfig, entity_parents
from ingest_pipeline.defs.normalized.automation import normalize_condition
from ingest_pipeline.defs.normalized.mappers import as_json
from ingest_pipeline.defs.normalized.metadata import normalized_metadata
from ingest_pipeline.defs.normalized.normalize import (
    consume_pending_loads,
    reject_row,
    upsert_rejects,
)
from ingest_pipeline.lib.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN
from ingest_pipeline.lib.normalized_tables import PAYMENTS, init_warehouse
from ingest_pipeline.lib.payments import payment_from_event, upsert_payments
from ingest_pipeline.lib.raw_assets import normalized_asset_key
from ingest_pipeline.lib.resources import WarehouseResource, warehouse_pool
from ingest_pipeline.lib.source_types import types_of_entity
from ingest_pipeline.lib.warehouse import Warehouse

ENTITY = "payments"
# Raw columns holding JSON that the event's reader expects as objects.
JSON_COLUMNS = ("data", "request")


def raw_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The Stripe event a raw row holds (dlt's and the instance's own columns left out)."""
    event = {k: v for k, v in row.items() if not k.startswith("_")}
    for column in JSON_COLUMNS:
        if event.get(column) is not None:
            event[column] = as_json(event[column])
    return event


def normalize_payments(
    warehouse: Warehouse, source_type: str, replay: bool = False
) -> tuple[Counter[str], Counter[str], Counter[str], int]:
    """Normalize the pending raw loads of one payment source type.

    Returns per `tenant.instance` the payments normalized (distinct per batch: a payment's
    events are one row), the events rejected and the events ignored; and the loads consumed.
    """
    normalized: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    ignored: Counter[str] = Counter()
    at = datetime.now(UTC)

    def normalize_batch(rows: list[dict[str, Any]], qualified: str) -> None:
        payments: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        touched: set[tuple[str, str]] = set()  # (tenant.instance, payment id)
        for row in rows:
            instance = f"{row[TENANT_COLUMN]}.{row[INSTANCE_COLUMN]}"
            try:
                payment = payment_from_event(raw_event(row), row[TENANT_COLUMN])
            except (ValueError, TypeError) as exc:
                rejects.append(reject_row(row, qualified, source_type, exc, at))
                rejected[instance] += 1
                continue
            if payment is None:
                ignored[instance] += 1
            else:
                payments.append(payment)
                touched.add((instance, payment["payment_id"]))
        # Counted as payments, not events: a payment's several events are one row.
        normalized.update(instance for instance, _ in touched)
        upsert_payments(warehouse, payments)  # merges rows of one payment first
        upsert_rejects(warehouse, rejects)

    loads = consume_pending_loads(warehouse, source_type, replay, normalize_batch)
    return normalized, rejected, ignored, loads


@dg.asset(
    key=normalized_asset_key(ENTITY),
    deps=entity_parents(ENTITY),  # raw/stripe/events and landing/webhooks
    group_name="normalized",
    kinds={"python"},
    automation_condition=normalize_condition(),
    pool=warehouse_pool(),
    description="Payments from Stripe events, one row per (tenant_id, payment_id = PaymentIntent "
    "id): succeeded or refunded (a refund is final), merged whatever the order the events come "
    "in; malformed payment events go to normalized.rejected_records.",
)
def normalized_payments(
    context: dg.AssetExecutionContext, config: NormalizeConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    init_warehouse(wh)
    per_instance: dict[str, dict[str, int]] = {}
    source_types = types_of_entity(ENTITY)
    for source_type in source_types:
        normalized, rejected, ignored, loads = normalize_payments(
            wh, source_type.name, config.replay
        )
        for key in normalized.keys() | rejected.keys() | ignored.keys():
            per_instance[f"{source_type.name}:{key}"] = {
                "normalized": normalized[key],
                "rejected": rejected[key],
                "ignored": ignored[key],
            }
        context.log.info(f"{source_type.name}: {loads} raw loads normalized")
    metadata = normalized_metadata(
        wh,
        PAYMENTS,
        [t.name for t in source_types],
        per_instance,
        "updated_at DESC, payment_id",
    )
    metadata["events_ignored"] = sum(v["ignored"] for v in per_instance.values())
    return dg.MaterializeResult(metadata=metadata)
