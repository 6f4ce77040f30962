"""Fast tier: Stripe events to payment rows, and the merge of rows of one payment (pure; the SQL
twin of the merge is checked on both warehouses in test_stripe_source.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import permutations
from typing import Any

import pytest

from ingest_pipeline.domain.payments import merge_payment_rows, payment_from_event

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def event(event_type: str, obj: dict[str, Any], created: int = T0 + 60) -> dict[str, Any]:
    return {"id": "evt_1", "type": event_type, "created": created, "data": {"object": obj}}


def charge(**fields: Any) -> dict[str, Any]:
    base = {"object": "charge", "id": "ch_1", "amount": 500, "currency": "EUR ", "created": T0}
    return base | fields


def row(**fields: Any) -> dict[str, Any]:
    base = {
        "tenant_id": "acme",
        "payment_id": "pi_1",
        "author_id": None,
        "item_id": None,
        "amount": 500,
        "currency": "eur",
        "status": "succeeded",
        "created_at": at(T0),
        "updated_at": at(T0 + 60),
    }
    return base | fields


def test_an_intent_counts_the_amount_received() -> None:
    intent = {"id": "pi_1", "amount": 900, "amount_received": 500, "currency": "eur"}
    payment = payment_from_event(event("payment_intent.succeeded", intent | {"created": T0}), "a")
    assert (payment["amount"], payment["status"], payment["created_at"]) == (
        500,
        "succeeded",
        at(T0),
    )
    assert payment["updated_at"] == at(T0 + 60)


def test_a_charge_belongs_to_its_intent_expanded_or_not() -> None:
    expanded = payment_from_event(
        event("charge.succeeded", charge(payment_intent={"id": "pi_9"})), "a"
    )
    assert (expanded["payment_id"], expanded["currency"]) == ("pi_9", "eur")
    refunded = payment_from_event(event("charge.succeeded", charge(refunded=True)), "a")
    assert (refunded["payment_id"], refunded["status"]) == ("ch_1", "refunded")
    meta = payment_from_event(event("charge.refunded", charge(metadata={"author_id": 7})), "a")
    assert (meta["author_id"], meta["item_id"], meta["status"]) == ("7", None, "refunded")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"amount": True}, "amount must be a non-negative integer, got True"),
        ({"metadata": ["x"]}, "metadata must be an object"),
        ({"payment_intent": 5}, "payment_intent must be an id, got 5"),
        ({"created": "yesterday"}, "data.object.created must be a unix timestamp"),
    ],
)
def test_malformed_charges_say_what_is_wrong(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        payment_from_event(event("charge.succeeded", charge(**change)), "acme")


def test_an_event_needs_a_tenant() -> None:
    with pytest.raises(ValueError, match=re.escape("charge.succeeded event evt_1: no tenant")):
        payment_from_event(event("charge.succeeded", charge()), "")


def test_refunds_are_final_and_times_widen() -> None:
    refund = row(status="refunded", created_at=at(T0 + 1), updated_at=at(T0 + 30))
    late_success = row(created_at=at(T0), updated_at=at(T0 + 90))
    merged = merge_payment_rows(refund, late_success)
    assert merged["status"] == "refunded"
    assert (merged["created_at"], merged["updated_at"]) == (at(T0), at(T0 + 90))


def test_the_newer_event_wins_a_null_never_does_and_a_tie_takes_the_greater() -> None:
    old = row(author_id="ann", amount=400, updated_at=at(T0 + 10))
    new = row(author_id=None, item_id="it-1", amount=450, updated_at=at(T0 + 20))
    merged = merge_payment_rows(old, new)
    assert (merged["author_id"], merged["item_id"], merged["amount"]) == ("ann", "it-1", 450)
    tie = merge_payment_rows(row(currency="usd"), row(currency="eur"))
    assert tie["currency"] == "usd"


def test_any_order_of_the_rows_merges_to_the_same_row() -> None:
    rows = [
        row(amount=300, updated_at=at(T0 + 5)),
        row(status="refunded", item_id="it-2", updated_at=at(T0 + 50)),
        row(author_id="bo", amount=350, created_at=at(T0 - 3), updated_at=at(T0 + 20)),
    ]
    results = []
    for order in permutations(rows):
        merged = order[0]
        for other in order[1:]:
            merged = merge_payment_rows(merged, other)
        results.append(merged)
    assert all(r == results[0] for r in results)
    assert results[0] == row(
        author_id="bo",
        item_id="it-2",
        amount=500,
        status="refunded",
        created_at=at(T0 - 3),
        updated_at=at(T0 + 50),
    )
    assert merge_payment_rows(results[0], results[0]) == results[0]
