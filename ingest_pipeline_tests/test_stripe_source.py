"""Stripe payments: the sandbox's wire format, the event → row mapping, the order-independent
merge on both warehouses, and the pull source through Dagster runs into normalized.payments."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pytest
import requests

from ingest_pipeline.defs.tenants.sensors import sync_partitions
from ingest_pipeline.domain.entities import PAYMENTS, init_warehouse
from ingest_pipeline.domain.payments import merge_payment_rows, payment_from_event, upsert_payments
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.sandbox.instances import stripe_instance
from ingest_pipeline.sandbox.stripe import (
    BASE_TIME,
    StripeSandbox,
    payment_event,
    payment_intent_id,
    sample_payment_events,
)

KEYS = {"acme": "sk_test_acme_51Hx9a2b3c4d5e6f", "globex": "sk_test_globex_51Zz8y7x6w5v"}
TIMEOUT = 5
PAYMENTS_SNAPSHOT = (
    "SELECT tenant_id, payment_id, author_id, item_id, amount, currency, status, created_at, "
    "updated_at FROM normalized.payments ORDER BY 1, 2"
)
PI = "pi_3PmanualTest0001"


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeSandbox]:
    sandbox = StripeSandbox()
    sandbox.server.start()
    for tenant, key in KEYS.items():
        monkeypatch.setenv(f"{tenant.upper()}_STRIPE_KEY", key)
    yield sandbox
    sandbox.server.stop()


def instance(
    stripe: StripeSandbox, tenant: str = "acme", key_env: str | None = None, **extra: Any
) -> dict[str, Any]:
    key_env = key_env or f"{tenant.upper()}_STRIPE_KEY"
    return stripe_instance(f"{stripe.server.url}/{tenant}", key_env, **extra)


def list_events(stripe: StripeSandbox, key: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(
        f"{stripe.server.url}/v1/events", params=params, headers=headers, timeout=TIMEOUT
    )


# --- the sandbox ---------------------------------------------------------------------------


def test_sandbox_auth_errors_are_stripes(stripe):
    stripe.add_account(KEYS["acme"], sample_payment_events(1))
    missing = list_events(stripe, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    wrong = list_events(stripe, "sk_test_wrong_key_0000abcd")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"].startswith("Invalid API Key provided: sk_test_")
    assert "sk_test_wrong_key_0000abcd" not in wrong.text  # echoed masked, as Stripe does
    # Each key is one account: globex's key sees globex's events only.
    stripe.add_account(KEYS["globex"], sample_payment_events(2, account="globex"))
    acme = list_events(stripe, KEYS["acme"]).json()["data"]
    globex = list_events(stripe, KEYS["globex"]).json()["data"]
    assert len(acme) == 2 and len(globex) == 4
    assert not {e["id"] for e in acme} & {e["id"] for e in globex}


def test_sandbox_lists_newest_first_with_cursor_pages_and_created_filters(stripe):
    events = sample_payment_events(12)  # 12 payments, 3 of them refunded: 27 events
    stripe.add_account(KEYS["acme"], events)
    first = list_events(stripe, KEYS["acme"])
    body = first.json()
    assert first.status_code == 200
    assert body["object"] == "list" and body["url"] == "/v1/events" and body["has_more"] is True
    assert len(body["data"]) == 10  # Stripe's default limit
    created = [e["created"] for e in body["data"]]
    assert created == sorted(created, reverse=True)

    seen, after = [], None
    while True:
        params = {"limit": 4, **({"starting_after": after} if after else {})}
        page = list_events(stripe, KEYS["acme"], **params).json()
        seen += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert len(seen) == len(events) == 27
    assert {e["id"] for e in seen} == {e["id"] for e in events}

    newest = max(e["created"] for e in events)
    gte = list_events(stripe, KEYS["acme"], **{"created[gte]": newest}).json()["data"]
    gt = list_events(stripe, KEYS["acme"], **{"created[gt]": newest}).json()["data"]
    assert [e["created"] for e in gte] == [newest] and gt == []
    typed = list_events(stripe, KEYS["acme"], type="charge.*", limit=100).json()["data"]
    assert {e["type"] for e in typed} == {"charge.succeeded", "charge.refunded"}

    too_many = list_events(stripe, KEYS["acme"], limit=101)
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "limit"
    unknown = list_events(stripe, KEYS["acme"], starting_after="evt_nope")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "No such event: 'evt_nope'"


def test_sample_events_are_deterministic_and_shaped_like_stripes():
    events = sample_payment_events(4)
    assert events == sample_payment_events(4)
    assert [e["type"] for e in events[-3:]] == [
        "payment_intent.succeeded",
        "charge.succeeded",
        "charge.refunded",  # payment 4 of every 4
    ]
    intent, charge, refund = (e["data"]["object"] for e in events[-3:])
    assert events[-1]["object"] == "event" and events[-1]["id"].startswith("evt_")
    assert intent["object"] == "payment_intent" and intent["id"] == payment_intent_id(4)
    assert intent["amount_received"] == intent["amount"] == 2500 and intent["status"] == "succeeded"
    assert charge["object"] == "charge" and charge["payment_intent"] == intent["id"]
    assert (
        charge["metadata"]
        == intent["metadata"]
        == {"author_id": "author-grace", "item_id": "item-4"}
    )
    assert refund["refunded"] is True and refund["amount_refunded"] == 2500
    with pytest.raises(ValueError, match="unsupported event type"):
        payment_event("customer.created", PI, 100)


# --- event → row ---------------------------------------------------------------------------


def test_payment_from_event_maps_intents_charges_and_refunds():
    meta = {"author_id": "author-1", "item_id": "item-9"}
    intent = payment_event(
        "payment_intent.succeeded",
        PI,
        1250,
        created=BASE_TIME + 5,
        object_created=BASE_TIME,
        **meta,
    )
    assert payment_from_event(intent, "acme") == {
        "tenant_id": "acme",
        "payment_id": PI,
        "author_id": "author-1",
        "item_id": "item-9",
        "amount": 1250,
        "currency": "usd",
        "status": "succeeded",
        "created_at": at(BASE_TIME),
        "updated_at": at(BASE_TIME + 5),
    }
    charge = payment_from_event(payment_event("charge.succeeded", PI, 1250, **meta), "acme")
    assert charge["payment_id"] == PI and charge["status"] == "succeeded"
    refund = payment_from_event(payment_event("charge.refunded", PI, 1250, **meta), "acme")
    assert refund["status"] == "refunded" and refund["amount"] == 1250
    # A charge without a PaymentIntent is its own payment.
    lone = payment_event("charge.succeeded", PI, 300, charge="ch_lone")
    lone["data"]["object"]["payment_intent"] = None
    assert payment_from_event(lone, "acme")["payment_id"] == "ch_lone"
    # Other events are ignored, not rejected.
    assert payment_from_event(payment_event("payment_intent.created", PI, 1250), "acme") is None
    assert payment_from_event({"type": "customer.created", "data": {}}, "acme") is None


def _malformed(change: str) -> dict[str, Any]:
    event = payment_event("payment_intent.succeeded", PI, 1250, author_id="a")
    obj = event["data"]["object"]
    if change == "no object":
        event["data"] = {}
    elif change == "no id":
        del obj["id"]
    elif change == "bad amount":
        obj["amount"] = obj["amount_received"] = "12.50"
    elif change == "negative amount":
        obj["amount_received"] = -5
    elif change == "no currency":
        obj["currency"] = None
    elif change == "no created":
        del event["created"]
    elif change == "wrong object":
        obj["object"] = "charge"
    return event


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("no object", "no data.object"),
        ("no id", "has no id"),
        ("bad amount", "amount must be a non-negative integer, got '12.50'"),
        ("negative amount", "amount must be a non-negative integer"),
        ("no currency", "no currency"),
        ("no created", "created must be a unix timestamp"),
        ("wrong object", "not a payment_intent"),
    ],
)
def test_malformed_payment_events_raise_a_clear_reason(change, reason):
    with pytest.raises(ValueError, match=reason):
        payment_from_event(_malformed(change), "acme")


# --- the merge, on both warehouses -----------------------------------------------------------


@pytest.fixture
def warehouse(warehouse_url: str) -> Warehouse:
    wh = Warehouse(warehouse_url)
    init_warehouse(wh)
    return wh


def _rows(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [payment_from_event(e, "acme") for e in events]


def _lifecycle() -> list[dict[str, Any]]:
    meta = {"author_id": "author-1", "item_id": "item-9", "object_created": BASE_TIME}
    return [
        payment_event("payment_intent.succeeded", PI, 1250, created=BASE_TIME + 2, **meta),
        payment_event("charge.succeeded", PI, 1250, created=BASE_TIME + 2, **meta),
        payment_event("charge.refunded", PI, 1250, created=BASE_TIME + 900, **meta),
    ]


def test_refund_first_stays_refunded_and_replays_change_nothing(warehouse):
    intent, charge, refund = _rows(*_lifecycle())
    upsert_payments(warehouse, [refund])
    upsert_payments(warehouse, [intent])  # a late replay of the success
    upsert_payments(warehouse, [charge])
    [row] = warehouse.fetch_all(PAYMENTS_SNAPSHOT)
    assert row[1:7] == (PI, "author-1", "item-9", 1250, "usd", "refunded")
    assert row[7] == at(BASE_TIME) and row[8] == at(BASE_TIME + 900)
    # The same events again, one by one and all at once: nothing changes, not even updated_at.
    for rows in ([intent], [refund], [intent, charge, refund, intent]):
        upsert_payments(warehouse, rows)
        assert warehouse.fetch_all(PAYMENTS_SNAPSHOT) == [row]


def test_every_order_of_the_events_gives_the_same_row(warehouse):
    rows = _rows(*_lifecycle())
    # A payment whose newer charge event came without metadata: the intent's values fill in.
    other = _rows(
        payment_event("charge.succeeded", "pi_other", 700, created=BASE_TIME + 60),
        payment_event(
            "payment_intent.succeeded", "pi_other", 700, created=BASE_TIME + 10, author_id="b"
        ),
    )
    results = set()
    for i, order in enumerate(itertools.permutations(rows)):
        warehouse.execute("DELETE FROM normalized.payments")
        for row in (*order, *(other if i % 2 else other[::-1])):
            upsert_payments(warehouse, [row])
        results.add(tuple(warehouse.fetch_all(PAYMENTS_SNAPSHOT)))
    # ... and all in one call, merged in Python first.
    warehouse.execute("DELETE FROM normalized.payments")
    upsert_payments(warehouse, [rows[2], *other, rows[0], rows[1]])
    results.add(tuple(warehouse.fetch_all(PAYMENTS_SNAPSHOT)))
    assert len(results) == 1
    [(refunded, merged)] = results
    assert refunded[1:7] == (PI, "author-1", "item-9", 1250, "usd", "refunded")
    assert merged[1:7] == ("pi_other", "b", None, 700, "usd", "succeeded")
    assert merged[7:] == (at(BASE_TIME + 10), at(BASE_TIME + 60))
    python = merge_payment_rows(merge_payment_rows(rows[2], rows[0]), rows[1])
    # ingested_at is when the row last changed: the time of a write, not merged content.
    merged_columns = [c for c in PAYMENTS.column_names if c != "ingested_at"]
    assert tuple(python[c] for c in merged_columns) == refunded


# --- the pull source through Dagster ---------------------------------------------------------


def test_pages_incremental_and_rerun(env, stripe):
    events = sample_payment_events(12)  # 27 events, payments 4, 8 and 12 refunded
    stripe.add_account(KEYS["acme"], events)
    env.write_tenants({"acme": [instance(stripe, page_size=10)]})
    stripe.server.faults.queue = [429, 503]  # retried by dlt's session
    [first] = env.ingest()
    assert first.status == "ok", first.error
    assert first.rows_loaded == 27 and first.rows_normalized == 12
    pages = [r for r in stripe.server.requests if r.path.endswith("/v1/events")]
    assert len(pages) == 2 + 3  # two faults, then 10 + 10 + 7
    assert pages[2].arg("starting_after") is None and pages[2].arg("limit") == "10"
    assert pages[3].arg("starting_after") == events[-10]["id"]  # last of the first page
    assert all(r.headers["authorization"] == f"Bearer {KEYS['acme']}" for r in pages)
    statuses = dict(env.rows("SELECT payment_id, status FROM normalized.payments"))
    assert len(statuses) == 12
    assert {p for p, s in statuses.items() if s == "refunded"} == {
        payment_intent_id(n) for n in (4, 8, 12)
    }
    raw = env.rows("SELECT count(*), count(DISTINCT id) FROM raw_stripe.events")
    assert raw == [(27, 27)]

    # Two new payments: only events from the newest second seen on are asked for.
    newest = max(e["created"] for e in events)
    stripe.add_events(KEYS["acme"], sample_payment_events(2, start=13))
    stripe.server.requests.clear()
    [second] = env.ingest()
    assert second.status == "ok", second.error
    [request] = stripe.server.requests
    assert request.arg("created[gte]") == str(newest)
    assert second.rows_loaded == 4  # the one already loaded at `newest` is not loaded again
    assert env.rows("SELECT count(*) FROM normalized.payments") == [(14,)]

    before = env.rows(PAYMENTS_SNAPSHOT)
    [third] = env.ingest()
    assert third.status == "ok" and third.rows_loaded == 0
    assert env.rows(PAYMENTS_SNAPSHOT) == before

    # Replay from raw alone: the same table, without calling Stripe.
    stripe.server.requests.clear()
    result = env.defs.resolve_job_def("normalize_payments").execute_in_process(
        instance=env.instance,
        run_config={"ops": {"normalized__payments": {"config": {"replay": True}}}},
    )
    assert result.success and not stripe.server.requests
    assert env.rows(PAYMENTS_SNAPSHOT) == before


def test_one_row_per_payment_and_a_refund_updates_it(env, stripe):
    meta = {"author_id": "author-7", "item_id": "item-42", "object_created": BASE_TIME}
    stripe.add_account(
        KEYS["acme"],
        [
            payment_event("payment_intent.created", PI, 4200, created=BASE_TIME, **meta),
            payment_event("payment_intent.succeeded", PI, 4200, created=BASE_TIME + 3, **meta),
            payment_event("charge.succeeded", PI, 4200, created=BASE_TIME + 3, **meta),
        ],
    )
    env.write_tenants({"acme": [instance(stripe)]})
    [first] = env.ingest()
    assert first.status == "ok", first.error
    assert first.rows_loaded == 3 and first.rows_normalized == 1  # `created` is ignored
    assert env.rows(PAYMENTS_SNAPSHOT) == [
        (
            "acme",
            PI,
            "author-7",
            "item-42",
            4200,
            "usd",
            "succeeded",
            at(BASE_TIME),
            at(BASE_TIME + 3),
        )
    ]
    stripe.add_event(
        KEYS["acme"], payment_event("charge.refunded", PI, 4200, created=BASE_TIME + 7200, **meta)
    )
    [second] = env.ingest()
    assert second.status == "ok", second.error
    assert env.rows("SELECT status, amount, updated_at FROM normalized.payments") == [
        ("refunded", 4200, at(BASE_TIME + 7200))
    ]


def test_malformed_payment_event_goes_to_rejects_with_its_reason(env, stripe):
    bad = payment_event("payment_intent.succeeded", "pi_bad", 100, created=BASE_TIME + 1)
    bad["data"]["object"]["amount"] = bad["data"]["object"]["amount_received"] = "1,00"
    stripe.add_account(KEYS["acme"], [*sample_payment_events(2), bad])
    env.write_tenants({"acme": [instance(stripe)]})
    [outcome] = env.ingest()
    assert outcome.status == "ok", outcome.error
    assert (outcome.rows_normalized, outcome.rows_rejected) == (2, 1)
    [(source_type, reason, payload, record_ref)] = env.rows(
        "SELECT source_type, reason, payload, record_ref FROM normalized.rejected_records"
    )
    assert source_type == "stripe" and record_ref.startswith("raw_stripe.events:")
    assert "amount must be a non-negative integer" in reason and bad["id"] in reason
    assert bad["id"] in payload
    assert env.rows("SELECT count(*) FROM normalized.payments") == [(2,)]


def test_bad_api_key_fails_only_that_instance(env, stripe, monkeypatch):
    stripe.add_account(KEYS["acme"], sample_payment_events(2))
    stripe.add_account(KEYS["globex"], sample_payment_events(2, account="globex"))
    monkeypatch.setenv("REVOKED_STRIPE_KEY", "sk_live_revoked_key_9f8e7d")
    globex = instance(stripe, "globex", key_env="REVOKED_STRIPE_KEY")
    env.write_tenants({"acme": [instance(stripe)], "globex": [globex]})
    good, bad = env.ingest()
    assert good.status == "ok" and good.rows_normalized == 2
    assert bad.status == "failed"
    assert bad.error.startswith(
        "stripe source globex.payments failed: HTTPError: 401 Client Error: Unauthorized "
        f"for url: {stripe.server.url}/globex/v1/events?"
    ), bad.error
    assert "sk_live_revoked_key_9f8e7d" not in bad.error
    # Failed at once: auth errors are not retried.
    assert len([r for r in stripe.server.requests if r.path.startswith("/globex")]) == 1
    assert env.rows("SELECT DISTINCT tenant_id FROM normalized.payments") == [("acme",)]


def test_a_payments_load_that_cannot_be_normalized_is_reported_like_items(env, stripe):
    # An amount past BIGINT passes the event's checks but no warehouse column holds it: the
    # write fails, so globex's whole raw load is quarantined, while acme's normalizes.
    huge = payment_event("payment_intent.succeeded", "pi_huge", 2**63, created=BASE_TIME + 1)
    stripe.add_account(KEYS["acme"], sample_payment_events(2))
    stripe.add_account(KEYS["globex"], [huge])
    env.write_tenants({"acme": [instance(stripe)], "globex": [instance(stripe, "globex")]})
    good, bad = env.ingest()
    assert (good.status, good.rows_normalized, good.rows_rejected) == ("ok", 2, 0), good.error
    assert (bad.status, bad.rows_loaded, bad.rows_normalized, bad.rows_rejected) == (
        "ok",
        1,
        0,
        1,
    ), bad.error
    [(load_id,)] = env.rows(
        "SELECT DISTINCT _dlt_load_id FROM raw_stripe.events WHERE _tenant_id = 'globex'"
    )
    metadata = _latest_payments_metadata(env)
    [quarantine] = metadata["quarantined_loads"].value
    assert quarantine["raw_table"] == "raw_stripe.events" and quarantine["load_id"] == load_id
    assert quarantine["instances"] == ["globex.payments"]
    assert quarantine["reason"].startswith(
        "raw load not normalized (quarantined; a replay retries it): "
    )
    assert metadata["per_instance"].value == {
        "stripe:globex.payments": {"normalized": 0, "rejected": 1, "ignored": 0}
    }
    assert (metadata["rows_normalized"].value, metadata["rows_rejected"].value) == (0, 1)
    assert bad.quarantined == (f"load {load_id} of raw_stripe.events: {quarantine['reason']}",)
    [(ref,)] = env.rows("SELECT record_ref FROM normalized.rejected_records")
    assert ref == f"raw_stripe.events:load:{load_id}"
    assert env.rows("SELECT DISTINCT tenant_id FROM normalized.payments") == [("acme",)]


def test_payments_loads_failing_together_are_counted_once_load_by_load(env, stripe):
    # Both instances' raw loads pending at once: the table fails as a whole, then load by load;
    # acme's payments are counted once, globex's load is quarantined.
    huge = payment_event("payment_intent.succeeded", "pi_huge", 2**63, created=BASE_TIME + 1)
    stripe.add_account(KEYS["acme"], sample_payment_events(2))
    stripe.add_account(KEYS["globex"], [huge])
    env.write_tenants({"acme": [instance(stripe)], "globex": [instance(stripe, "globex")]})
    sync_partitions(env.instance)
    raw_job = env.defs.resolve_job_def("ingest_stripe")
    for partition in ("acme.payments", "globex.payments"):
        assert raw_job.execute_in_process(instance=env.instance, partition_key=partition).success
    normalize = env.defs.resolve_job_def("normalize_payments")
    assert normalize.execute_in_process(instance=env.instance).success
    metadata = _latest_payments_metadata(env)
    assert metadata["per_instance"].value == {
        "stripe:acme.payments": {"normalized": 2, "rejected": 0, "ignored": 0},
        "stripe:globex.payments": {"normalized": 0, "rejected": 1, "ignored": 0},
    }
    [quarantine] = metadata["quarantined_loads"].value
    assert quarantine["instances"] == ["globex.payments"]
    assert env.rows("SELECT count(*) FROM normalized.payments") == [(2,)]


def _latest_payments_metadata(env) -> dict[str, Any]:
    key = dg.AssetKey(["normalized", "payments"])
    return env.instance.get_latest_materialization_event(key).asset_materialization.metadata
