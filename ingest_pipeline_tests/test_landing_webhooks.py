"""Webhook deliveries in the landing bucket (as the intake stores them) meet the pull sources in
the same normalized rows: Stripe payments by PaymentIntent id, Intercom conversations by the
Intercom pull instance's key."""

import copy
import json
from typing import Any

import pytest

from ingest_pipeline.sandbox import intercom
from ingest_pipeline.sandbox.instances import feedback_instance, stripe_instance
from ingest_pipeline.sandbox.stripe import StripeSandbox, payment_event, sample_payment_events
from ingest_pipeline_tests.test_intake import intercom_headers, stripe_headers
from ingest_pipeline_tests.test_landing import Landing

STRIPE_KEY = "sk_test_acme_4242"
INTERCOM_TOKEN = "intercom-acme-token"


def deliver(landing: Landing, provider: str, tenant: str, document: dict[str, Any]) -> str:
    """Land a delivery where the intake puts it: webhooks/<provider>/<tenant>/<day>/<id>.json."""
    key = f"webhooks/{provider}/{tenant}/2026-01-05/{document['id']}.json"
    landing.put(key, json.dumps(document))
    return key


@pytest.fixture
def stripe_sandbox(monkeypatch):
    monkeypatch.setenv("ACME_STRIPE_KEY", STRIPE_KEY)
    sandbox = StripeSandbox()
    sandbox.server.start()
    yield sandbox
    sandbox.server.stop()


def payments(landing: Landing) -> list[tuple]:
    return landing.env.rows(
        "SELECT payment_id, author_id, item_id, amount, currency, status FROM normalized.payments "
        "ORDER BY payment_id"
    )


def test_a_stripe_payment_pushed_and_pulled_is_one_row_and_a_refund_updates_it(
    env, s3_endpoint, stripe_sandbox
):
    landing = Landing(env, s3_endpoint)
    events = sample_payment_events(2)  # two payments: succeeded (PaymentIntent and Charge)
    stripe_sandbox.add_account(STRIPE_KEY, events)
    env.write_tenants({"acme": [stripe_instance(stripe_sandbox.server.url, "ACME_STRIPE_KEY")]})
    first_payment = [
        e for e in events if e["data"]["object"].get("metadata", {}).get("item_id") == "item-1"
    ]
    for event in first_payment:  # pushed: payment_intent.succeeded and charge.succeeded
        deliver(landing, "stripe", "acme", event)
    landing.tick("webhooks")
    [(payment_id, author, item, amount, currency, status)] = payments(landing)
    intent = first_payment[0]["data"]["object"]  # the PaymentIntent
    assert (payment_id, author, item) == (intent["id"], "author-grace", "item-1")
    assert (amount, currency, status) == (1000, "usd", "succeeded") and intent["amount"] == 1000

    [outcome] = env.ingest()  # pulled: the same events and the second payment
    assert outcome.status == "ok", outcome.error
    by_item = {p[2]: (p[0], p[5]) for p in payments(landing)}
    assert by_item == {
        "item-1": (payment_id, "succeeded"),
        "item-2": (by_item["item-2"][0], "succeeded"),
    }

    refund = payment_event(
        "charge.refunded",
        payment_id,
        amount,
        created=first_payment[-1]["created"] + 1800,
        author_id=author,
        item_id=item,
    )
    deliver(landing, "stripe", "acme", refund)
    landing.tick("webhooks")
    stripe_sandbox.add_event(STRIPE_KEY, refund)
    [outcome] = env.ingest()  # the refund pulled too: still one row, still refunded
    assert outcome.status == "ok", outcome.error
    rows = {p[0]: p for p in payments(landing)}
    assert len(rows) == 2 and rows[payment_id][5] == "refunded" and rows[payment_id][3] == amount
    # A late redelivery of the original success does not un-refund it.
    deliver(
        landing, "stripe", "acme", {**first_payment[0], "id": first_payment[0]["id"] + "_again"}
    )
    landing.tick("webhooks")
    assert {p[0]: p[5] for p in payments(landing)}[payment_id] == "refunded"


def test_an_intercom_conversation_pulled_and_pushed_is_one_row(duck_env, s3_endpoint, monkeypatch):
    monkeypatch.setenv("ACME_INTERCOM_TOKEN", INTERCOM_TOKEN)
    sandbox = intercom.IntercomSandbox()
    sandbox.server.start()
    try:
        landing = Landing(duck_env, s3_endpoint)
        sandbox.add_account(INTERCOM_TOKEN, intercom.sample_conversations(2))
        duck_env.write_tenants(
            {
                "acme": [
                    feedback_instance("intercom", "acme", sandbox.server.url, "ACME_INTERCOM_TOKEN")
                ]
            }
        )
        [outcome] = duck_env.ingest()
        assert outcome.status == "ok", outcome.error
    finally:
        sandbox.server.stop()
    conversation = copy.deepcopy(intercom.sample_conversations(1)[0])
    conversation["updated_at"] += 3600
    conversation["source"]["body"] = "<p>Conversation 1, edited by the customer</p>"
    deliver(
        landing,
        "intercom",
        "acme",
        notification("notif_1", "conversation.user.replied", conversation),
    )
    newcomer = copy.deepcopy(intercom.sample_conversations(1, start=9)[0])
    deliver(
        landing, "intercom", "acme", notification("notif_2", "conversation.user.created", newcomer)
    )
    deliver(
        landing,
        "intercom",
        "acme",
        {"type": "notification_event", "id": "notif_3", "topic": "ping", "data": {"item": {}}},
    )
    landing.tick("webhooks")

    stale = copy.deepcopy(conversation)
    stale["updated_at"] -= 7200  # an older delivery arriving late
    stale["source"]["body"] = "<p>stale text</p>"
    deliver(
        landing, "intercom", "acme", notification("notif_4", "conversation.admin.replied", stale)
    )
    landing.tick("webhooks")

    rows = duck_env.rows(
        "SELECT source_instance, external_id, text FROM normalized.feedback ORDER BY external_id"
    )
    assert rows == [
        ("main", conversation["id"], "Conversation 1, edited by the customer"),
        ("main", intercom.sample_conversations(1, start=2)[0]["id"], rows[1][2]),
        ("main", newcomer["id"], rows[2][2]),
    ]
    statuses = {
        k.rsplit("/", 1)[1]: (u["status"], u["rows_loaded"]) for k, u in landing.uploads().items()
    }
    assert statuses["notif_3.json"] == ("Completed", 0)  # a ping carries no conversation


def notification(notification_id: str, topic: str, conversation: dict[str, Any]) -> dict[str, Any]:
    """An Intercom webhook notification as Intercom sends it."""
    return {
        "type": "notification_event",
        "app_id": "acme-app",
        "id": notification_id,
        "topic": topic,
        "created_at": conversation["updated_at"],
        "data": {"type": "notification_event_data", "item": conversation},
    }


def test_a_delivery_that_is_not_json_fails_alone(duck_env, s3_endpoint):
    landing = Landing(duck_env, s3_endpoint)
    duck_env.write_tenants({"acme": []})
    landing.put("webhooks/stripe/acme/2026-01-05/evt_broken.json", b'{"id": "evt_broken", ')
    landing.put("webhooks/github/acme/2026-01-05/x.json", b"{}")  # not a provider we take
    landing.tick("webhooks")
    outcomes = {
        k: (u["status"], u["reason"], u["rows_loaded"], u["rows_rejected"])
        for k, u in landing.uploads().items()
    }
    not_json = "at line 1 column 22: Expecting property name enclosed in double quotes"
    layout = "webhooks/<intercom|stripe>/<tenant>/<yyyy-mm-dd>/<event id>.json"
    assert outcomes == {
        "webhooks/stripe/acme/2026-01-05/evt_broken.json": (
            "Failed",
            f"not a JSON delivery {not_json}",
            0,
            0,
        ),
        # Refused by its key before it is read: no rows counted at all.
        "webhooks/github/acme/2026-01-05/x.json": (
            "Failed",
            f"key outside the layout {layout}",
            None,
            None,
        ),
    }
    assert landing.env.rows("SELECT count(*) FROM normalized.rejected_records") == [(0,)]


def test_signed_deliveries_through_the_intake_service_become_rows(intake, s3_endpoint):
    """Over real HTTP: the intake verifies and lands, the sensor and its run do the rest."""
    succeeded = payment_event(
        "payment_intent.succeeded", "pi_e2e", 1500, author_id="a1", item_id="i1"
    )
    refunded = payment_event(
        "charge.refunded",
        "pi_e2e",
        1500,
        created=succeeded["created"] + 60,
        author_id="a1",
        item_id="i1",
    )
    for event in (succeeded, refunded, succeeded):  # the last one is a redelivery
        body = json.dumps(event).encode()
        assert intake.post("/webhooks/stripe/acme", body, **stripe_headers(body)).status_code == 200
    conversation = intercom.sample_conversations(1, start=5)[0]
    body = json.dumps(notification("notif_e2e", "conversation.user.created", conversation)).encode()
    assert intake.post("/webhooks/intercom/acme", body, **intercom_headers(body)).status_code == 200

    landing = Landing(intake.env, s3_endpoint, create_bucket=False)
    landing.tick("webhooks")
    assert payments(landing) == [("pi_e2e", "a1", "i1", 1500, "usd", "refunded")]
    assert intake.env.rows(
        "SELECT source_type, source_instance, external_id FROM normalized.feedback"
    ) == [
        (
            "intercom",
            "webhooks",
            conversation["id"],
        )  # no Intercom pull instance: instance "webhooks"
    ]
    statuses = {u["status"] for u in landing.uploads().values()}
    assert (
        statuses == {"Completed"} and len(landing.uploads()) == 3
    )  # the redelivery landed nothing
