"""`ingest-pipeline demo`: the whole pipeline on the embedded default, against local sandboxes.

Starts loopback sandboxes (a catalog REST API, a feed server and the four feedback platforms),
writes sample CSVs and a demo tenants file under the data dir, runs `ingest` for it and prints
the summary and how to open the UI. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from ingest_pipeline.sandbox import discourse, intercom, playstore, stripe, twitter
from ingest_pipeline.sandbox.app_events import sample_events
from ingest_pipeline.sandbox.catalog_api import CatalogApi, sample_products
from ingest_pipeline.sandbox.feeds import FeedServer
from ingest_pipeline.sandbox.instances import (
    catalog_api_instance,
    catalog_csv_instance,
    feedback_instance,
    stripe_instance,
)
from ingest_pipeline.settings import get_settings

DEMO_TOKEN_ENV = "DEMO_CATALOG_TOKEN"
FEEDBACK_TENANT = "initech"
DEMO_EVENT_DAYS = 7
SAMPLE_CSV = (
    "sku;name;link;updated\n"
    "SKU-1;Espresso machine;https://shop.example/sku-1;2026-01-10T09:00:00Z\n"
    "SKU-2;Grinder;https://shop.example/sku-2;2026-01-11\n"
    "SKU-3;Milk jug;not a url;2026-01-12\n"
    ";Nameless;https://shop.example/x;2026-01-13\n"
)


def run_demo() -> int:
    settings = get_settings()
    demo_dir = (settings.data_dir / "demo").resolve()
    landing = demo_dir / "landing" / "acme" / "catalog"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "catalog.csv").write_text(SAMPLE_CSV, encoding="utf-8")

    with contextlib.ExitStack() as running:
        sandboxes = start_sandboxes(running)
        tenants_file = demo_dir / "tenants.yaml"
        tenants_file.write_text(
            yaml.safe_dump(demo_tenants(sandboxes, landing), sort_keys=False), encoding="utf-8"
        )
        os.environ["INGEST_TENANTS_FILE"] = str(tenants_file)
        print(f"demo tenants file: {tenants_file}")
        print(f"warehouse: {settings.resolved_warehouse_url}\n")
        from ingest_pipeline.cli import cmd_ingest

        status = cmd_ingest()
        first_day, today = _demo_days()
        land_demo_files(settings, running, first_day)
        build_demo_metrics(settings, first_day, today)
    print(
        "\nExplore it in the Dagster UI:  make dev   (then open http://127.0.0.1:3000)\n"
        "The demo's sandboxes stop with the demo: materializing its sources from the UI\n"
        "needs them running (`ingest-pipeline demo` again)."
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

    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.lib.landing import issue_upload_url, s3_client
    from ingest_pipeline.lib.landing_runs import process_landing
    from ingest_pipeline.lib.normalized_tables import init_warehouse
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

    from ingest_pipeline.definitions import defs as load_defs
    from ingest_pipeline.lib.metrics_runs import build_metrics
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


def start_sandboxes(running: contextlib.ExitStack) -> dict[str, Any]:
    """Every sandbox on a free loopback port, with demo data and demo secrets (this process only)."""
    os.environ.setdefault(DEMO_TOKEN_ENV, "demo-token")
    secret = _demo_secret
    sandboxes: dict[str, Any] = {
        "catalog": CatalogApi(os.environ[DEMO_TOKEN_ENV], sample_products(12)),
        "stripe": stripe.StripeSandbox(),
        "feeds": FeedServer(),
        "playstore": playstore.PlayStoreSandbox(),
        "twitter": twitter.TwitterSandbox(),
        "discourse": discourse.DiscourseSandbox(),
        "intercom": intercom.IntercomSandbox(),
    }
    sandboxes["playstore"].add_account(
        secret("playstore"), f"com.{FEEDBACK_TENANT}.app", playstore.sample_reviews(25)
    )
    sandboxes["twitter"].add_account(secret("twitter"), *twitter.sample_tweets(30))
    sandboxes["discourse"].add_account(secret("discourse"), "system", discourse.sample_posts(18))
    sandboxes["intercom"].add_account(secret("intercom"), intercom.sample_conversations(12))
    sandboxes["stripe"].add_account(secret("stripe"), stripe.sample_payment_events(12))
    for sandbox in sandboxes.values():
        sandbox.server.start()
        running.callback(sandbox.server.stop)
    # A little weather: the platforms rate-limit and fail now and then; dlt retries.
    sandboxes["twitter"].server.faults.every_nth_rate_limited = 3
    sandboxes["intercom"].server.faults.queue = [503]
    return sandboxes


def _demo_env(name: str) -> str:
    """A demo secret in this process's environment (a real deployment sets its own); its name."""
    os.environ.setdefault(name, f"demo-{name.lower()}")
    return name


def _demo_secret(platform: str) -> str:
    env = f"DEMO_{platform.upper()}_SECRET"
    os.environ.setdefault(env, f"demo-{platform}-secret")
    return os.environ[env]


def demo_tenants(sandboxes: dict[str, Any], landing: Path) -> dict[str, Any]:
    feeds_url = sandboxes["feeds"].server.url
    feedback = [
        feedback_instance(
            platform,
            FEEDBACK_TENANT,
            sandboxes[platform].server.url,
            f"DEMO_{platform.upper()}_SECRET",
        )
        for platform in ("playstore", "twitter", "discourse", "intercom")
    ]
    return {
        "tenants": {
            "acme": {
                "intake": {
                    "token_env": _demo_env("DEMO_ACME_INTAKE_TOKEN"),
                    "stripe_secret_env": _demo_env("DEMO_ACME_STRIPE_WHSEC"),
                },
                "sources": [
                    catalog_api_instance(sandboxes["catalog"].server.url, DEMO_TOKEN_ENV),
                    catalog_csv_instance(landing),
                    {"type": "rss", "name": "eng-blog", "url": f"{feeds_url}/feed.xml"},
                    stripe_instance(sandboxes["stripe"].server.url, "DEMO_STRIPE_SECRET"),
                ],
            },
            "globex": {
                "sources": [
                    {"type": "rss", "name": "news", "url": f"{feeds_url}/rdf.xml"},
                    {"type": "rss", "name": "releases", "url": f"{feeds_url}/atom.xml"},
                    {"type": "rss", "name": "dead-feed", "url": f"{feeds_url}/broken.xml"},
                ]
            },
            FEEDBACK_TENANT: {
                "intake": {"intercom_secret_env": _demo_env("DEMO_INITECH_INTERCOM_WEBHOOK")},
                "sources": feedback,
            },
        }
    }
