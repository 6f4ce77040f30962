"""`ingest-pipeline demo`: the whole pipeline on the embedded default, against local sandboxes.

Starts the demo world (sandbox/demo_world.py: every loopback sandbox and the tenants file
rendered from tenants.example.yaml, the same `make dev` keeps running), runs `ingest` for it,
lands files through the S3 emulator and the intake, builds the metrics and prints the summary.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_pipeline.sandbox import intercom, stripe
from ingest_pipeline.sandbox.app_events import sample_events
from ingest_pipeline.sandbox.demo_world import (
    EXAMPLE_TENANTS_FILE,
    FEEDBACK_TENANT,
    start_demo_world,
)
from ingest_pipeline.settings import get_settings

DEMO_EVENT_DAYS = 7


def run_demo() -> int:
    settings = get_settings()
    with contextlib.ExitStack() as running:
        world = start_demo_world(running, settings.data_dir)
        os.environ["INGEST_TENANTS_FILE"] = str(world.tenants_file)
        print(f"demo tenants file: {world.tenants_file} (from {EXAMPLE_TENANTS_FILE.name})")
        print(f"warehouse: {settings.resolved_warehouse_url}\n")
        from ingest_pipeline.cli.commands import cmd_ingest

        status = cmd_ingest()
        first_day, today = _demo_days()
        land_demo_files(settings, running, first_day)
        build_demo_metrics(settings, first_day, today)
    print(
        "\nThe whole system running, schedules and sensors included:  make dev\n"
        "(the Dagster UI on http://127.0.0.1:3000; its settings in .data/dev.env)"
    )
    # The dead feed is there on purpose: one instance failing alone; the demo still succeeds.
    return 0 if status in (0, 1) else status


def _demo_days() -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DEMO_EVENT_DAYS - 1), today


def land_demo_files(settings: Any, running: contextlib.ExitStack, first_day: datetime) -> None:
    """Files into the landing bucket (the S3 emulator unless INGEST_S3_ENDPOINT_URL names a
    store): a week of app events and a log file through presigned URLs, a partner crawl batch
    and a broken gzip written directly; then each landing sensor once and the runs it asks for."""
    import dagster as dg
    import requests

    from ingest_pipeline.cli.landing_runs import process_landing
    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.domain.entities import init_warehouse
    from ingest_pipeline.domain.landing import issue_upload_url, s3_client
    from ingest_pipeline.lib.warehouse import Warehouse
    from ingest_pipeline.sandbox.s3 import EMULATOR_CREDENTIALS, S3Emulator

    if not settings.s3_endpoint_url:
        emulator = running.enter_context(S3Emulator())
        os.environ["INGEST_S3_ENDPOINT_URL"] = emulator.endpoint_url
        for name, value in EMULATOR_CREDENTIALS.items():
            os.environ.setdefault(name, value)
        settings = get_settings()
        print(f"\nS3 emulator (moto server): {emulator.endpoint_url}")
    client = s3_client(settings)
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=settings.landing_bucket)
    init_warehouse(Warehouse(settings.resolved_warehouse_url))
    events = sample_events("acme", first_day, DEMO_EVENT_DAYS, per_day=400)
    uploads = {
        "events": ("app-events.ndjson", "".join(_ndjson_event(e) for e in events)),
        "logs": ("api.log", DEMO_LOG),
    }
    for kind, (filename, body) in uploads.items():
        url = issue_upload_url(settings, "acme", kind, filename).url
        requests.put(url, data=body.encode(), timeout=30).raise_for_status()
    bucket = settings.landing_bucket
    client.put_object(Bucket=bucket, Key="crawl/acme/furnico/batch.json", Body=DEMO_CRAWL)
    client.put_object(Bucket=bucket, Key="logs/acme/broken.log.gz", Body=b"\x1f\x8bnot gzip")
    deliver_demo_webhooks(settings)
    with dg.DagsterInstance.get() as instance:
        ticks = process_landing(load_defs(), instance)
    print("landing: " + ", ".join(f"{t.kind} {t.runs} run(s)" for t in ticks))
    rows = Warehouse(settings.resolved_warehouse_url).fetch_all(
        "SELECT object_key, status, rows_loaded, rows_rejected, reason FROM normalized.uploads "
        "ORDER BY object_key"
    )
    for key, status, loaded, rejected, reason in rows:
        print(f"  {key[:60]:<60} {status:<9} rows={loaded} rejected={rejected} {reason or ''}")


def deliver_demo_webhooks(settings: Any) -> None:
    """Signed deliveries over HTTP to the intake service: a Stripe refund of a pulled payment
    (push and pull meet in one payments row) and an Intercom reply to a pulled conversation."""
    import requests

    from ingest_pipeline.intake.background import running_intake
    from ingest_pipeline.intake.signatures import sign_intercom, sign_stripe

    refund = stripe.payment_event(
        "charge.refunded",
        stripe.payment_intent_id(1),
        1000,
        created=stripe.BASE_TIME + 3600 + 1800,
        author_id=stripe.AUTHORS[1],
        item_id="item-1",
    )
    conversation = intercom.sample_conversations(1)[0]
    conversation["updated_at"] += 3600
    reply = {
        "type": "notification_event",
        "id": "notif_demo_1",
        "topic": "conversation.user.replied",
        "created_at": conversation["updated_at"],
        "data": {"type": "notification_event_data", "item": conversation},
    }
    with running_intake(settings) as url:
        for path, document, header, sign in [
            ("/webhooks/stripe/acme", refund, "Stripe-Signature", sign_stripe),
            (f"/webhooks/intercom/{FEEDBACK_TENANT}", reply, "X-Hub-Signature", sign_intercom),
        ]:
            body = json.dumps(document).encode()
            secret_env = (
                "DEMO_ACME_STRIPE_WHSEC" if "stripe" in path else "DEMO_INITECH_INTERCOM_WEBHOOK"
            )
            headers = {
                "Content-Type": "application/json",
                header: sign(body, os.environ[secret_env]),
            }
            answer = requests.post(url + path, data=body, headers=headers, timeout=30)
            print(f"intake {path}: {answer.status_code} {answer.json().get('status')}")


def _ndjson_event(event: dict[str, Any]) -> str:
    fields = ("event_id", "event_type", "item_id", "author_id", "actor_id", "ip")
    record = {name: event[name] for name in fields}
    return json.dumps({**record, "occurred_at": event["occurred_at"].isoformat()}) + "\n"


DEMO_LOG = (
    "2026-01-05T10:00:00Z INFO api started\n"
    "2026-01-05T10:00:01Z ERROR api upstream timeout after 30s\n"
    "a line in no known format\n"
    "2026-01-05T10:00:02Z WARN worker queue depth 120\n"
)
DEMO_CRAWL = json.dumps(
    [
        {"externalId": "f-1", "title": "Oak table", "url": "https://furnico.example/f-1"},
        {"externalId": "f-2", "title": "Desk lamp", "url": "https://furnico.example/f-2"},
    ]
).encode()


def build_demo_metrics(settings: Any, first: datetime, today: datetime) -> None:
    """The metrics for the demo week (from the landed app events) as one Dagster run, and the
    top of today's leaderboards."""
    import dagster as dg

    from ingest_pipeline.cli.metrics_runs import build_metrics
    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.lib.warehouse import Warehouse

    warehouse = Warehouse(settings.resolved_warehouse_url)
    with dg.DagsterInstance.get() as instance:
        result = build_metrics(load_defs(), instance, first.date(), today.date())
    print(
        f"\nmetrics for {first.date()} .. {today.date()}: {'ok' if result.success else 'FAILED'}"
        f"  run={result.run_id[:8]}"
    )
    top = warehouse.fetch_all(
        "SELECT window_name, rank, item_id, score FROM metrics.leaderboard_snapshots "
        "WHERE entity_type = 'item' AND metric_date = %s AND rank <= 3 "
        "ORDER BY window_name, rank",
        (today.date(),),
    )
    print("top items today (window, rank, item, score):")
    for window_name, rank, item_id, score in top:
        print(f"  {window_name:<9} #{rank} {item_id:<9} {score:g}")
