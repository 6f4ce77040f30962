"""`normalized/payments`: Stripe payment events from raw, merged into one row per PaymentIntent.

Consumes every raw dlt load of `raw_stripe` not yet normalized (tracked in
`normalized.normalized_loads`, as the other normalized assets do). Each raw event row becomes a
row with `payment_from_event` (other event types are ignored); malformed payment events go to
`normalized.rejected_records` with the reason. Rows are applied with `upsert_payments`, an
order-independent, idempotent merge, so a replay (`replay: true`) simply re-applies every raw
load: the result is what the raw events say, and rows the webhook deliveries wrote stay.

A raw row is normalized even if its instance has left the tenants file: a payment that
happened stays a payment. A raw load that cannot be normalized at all is quarantined as for items
and feedback (`consume_pending_loads`), and the materialization reports it the same way: the
`quarantined_loads` metadata, and a reject per instance counted in `per_instance`.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ingest_pipeline.defs.normalized.assets import NormalizeConfig, entity_parents
from ingest_pipeline.defs.normalized.automation import normalize_condition
from ingest_pipeline.defs.normalized.metadata import normalized_metadata
from ingest_pipeline.defs.normalized.normalize import (
    NormalizeStats,
    consume_pending_loads,
    reject_row,
    upsert_rejects,
)
from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key
from ingest_pipeline.domain.entities import PAYMENTS, init_warehouse
from ingest_pipeline.domain.payments import payment_from_event, upsert_payments
from ingest_pipeline.lib.resources import WarehouseResource, normalize_pool
from ingest_pipeline.lib.source_types import types_of_entity
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN
from ingest_pipeline.sources.raw_rows import as_json

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


@dataclass
class PaymentStats(NormalizeStats):
    """`NormalizeStats` (payments normalized, events rejected, loads normalized and quarantined)
    plus the events ignored (not payment events), per raw table like the other counts."""

    ignored_by_table: dict[str, Counter[str]] = field(default_factory=dict)

    def ignored_counter(self, raw_table: str) -> Counter[str]:
        return self.ignored_by_table.setdefault(raw_table, Counter())

    def forget(self, raw_table: str) -> None:
        super().forget(raw_table)
        self.ignored_by_table.pop(raw_table, None)

    @property
    def ignored(self) -> Counter[str]:
        return sum(self.ignored_by_table.values(), Counter())


def normalize_payments(
    warehouse: Warehouse, source_type: str, replay: bool = False
) -> PaymentStats:
    """Normalize the pending raw loads of one payment source type.

    Counts per `tenant.instance` the payments normalized (distinct per batch: a payment's
    events are one row), the events rejected and the events ignored; and the loads consumed
    and quarantined, as `normalize_source_type` does for items and feedback: a raw table whose
    loads fail together is counted again load by load, a quarantined load is one reject per
    instance in it.
    """
    stats = PaymentStats()
    at = datetime.now(UTC)

    def normalize_batch(rows: list[dict[str, Any]], qualified: str) -> None:
        payments: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        touched: set[tuple[str, str]] = set()  # (tenant.instance, payment id)
        rejected: Counter[str] = Counter()
        ignored: Counter[str] = Counter()
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
        upsert_payments(warehouse, payments)  # merges rows of one payment first
        upsert_rejects(warehouse, rejects)
        # Counted once written (a batch that fails counts nothing), as payments, not events:
        # a payment's several events are one row.
        table_normalized, table_rejected = stats.counters(qualified)
        table_normalized.update(instance for instance, _ in touched)
        table_rejected.update(rejected)
        stats.ignored_counter(qualified).update(ignored)

    stats.loads = consume_pending_loads(
        warehouse, source_type, replay, normalize_batch, stats.forget, stats.add_quarantine
    )
    return stats


@dg.asset(
    key=normalized_asset_key(ENTITY),
    deps=entity_parents(ENTITY),  # raw/stripe/events and landing/webhooks
    group_name="normalized",
    kinds={"python"},
    automation_condition=normalize_condition(),
    pool=normalize_pool(ENTITY),
    description="Payments from Stripe events, one row per (tenant_id, payment_id = PaymentIntent "
    "id): succeeded or refunded (a refund is final), merged whatever the order the events come "
    "in; malformed payment events go to normalized.rejected_records.",
)
def normalized_payments(
    context: dg.AssetExecutionContext, config: NormalizeConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    wh = warehouse.get()
    init_warehouse(wh)
    started = datetime.now(UTC)
    per_instance: dict[str, dict[str, int]] = {}
    quarantined: list[dict[str, object]] = []
    source_types = types_of_entity(ENTITY)
    for source_type in source_types:
        stats = normalize_payments(wh, source_type.name, config.replay)
        normalized, rejected, ignored = stats.normalized, stats.rejected, stats.ignored
        for key in normalized.keys() | rejected.keys() | ignored.keys():
            per_instance[f"{source_type.name}:{key}"] = {
                "normalized": normalized[key],
                "rejected": rejected[key],
                "ignored": ignored[key],
            }
        quarantined += [vars(q) for q in stats.quarantined]
        context.log.info(f"{source_type.name}: {stats.loads} raw loads normalized")
    metadata = normalized_metadata(
        wh,
        PAYMENTS,
        [t.name for t in source_types],
        per_instance,
        "updated_at DESC, payment_id",
        started,
    )
    metadata["events_ignored"] = sum(v["ignored"] for v in per_instance.values())
    # Raw loads that could not be normalized at all (a replay retries them), as items/feedback.
    metadata["quarantined_loads"] = dg.MetadataValue.json(quarantined)
    return dg.MaterializeResult(metadata=metadata)
