"""The whole code location loads, with the stable asset keys, checks, jobs and automation."""

import dagster as dg

from ingest_pipeline.definitions import defs as load_defs

METRICS_MODELS = (
    "event_metrics_minute",
    "event_metrics_hour",
    "event_metrics_day",
    "item_metrics_daily",
    "author_metrics_daily",
    "trending_scores",
    "leaderboard_snapshots",
    "feedback_daily",
    "log_metrics_daily",
    "pipeline_stats",
    "stg_events",
    "stg_items",
    "stg_feedback",
    "stg_log_records",
    "stg_payments",
    "stg_rejected_records",
)


def test_defs_load_with_stable_keys_checks_and_jobs():
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "raw/rest_api/records",
        "raw/csv/rows",
        "raw/rss/entries",
        "raw/playstore/reviews",
        "raw/twitter/tweets",
        "raw/discourse/posts",
        "raw/intercom/conversations",
        "raw/stripe/events",
        "normalized/items",
        "normalized/feedback",
        "normalized/payments",
        *(f"metrics/{model}" for model in METRICS_MODELS),
        # the S3 landing: events and log files into their tables, crawl batches into items,
        # webhook deliveries (Intercom, Stripe) into feedback and payments
        "normalized/events",
        "normalized/log_records",
        "landing/crawl",
        "landing/webhooks",
        # read by dbt_metrics, written by the normalizing steps (external to Dagster)
        "normalized/rejected_records",
    }
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    for entity in ("items", "feedback", "payments"):
        for name in ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous"):
            assert (f"normalized/{entity}", name) in checks
    types = ["rest_api", "csv", "rss", "playstore", "twitter", "discourse", "intercom", "stripe"]
    landing_kinds = ["logs", "events", "crawl", "webhooks"]
    assert {job.name for job in defs.jobs} == {f"ingest_{t}" for t in types} | {
        "metrics_daily",
        *(f"land_{kind}" for kind in landing_kinds),
    }
    assert {s.name for s in defs.schedules} == {f"ingest_{t}_schedule" for t in types} | {
        "metrics_daily_schedule"
    }
    # dbt's YAML tests are asset checks on the metrics assets.
    metric_checks = {name for key, name in checks if key == "metrics/leaderboard_snapshots"}
    assert "not_null_leaderboard_snapshots_rank" in metric_checks
    assert {s.name for s in defs.sensors} == {"tenants_file_sensor"} | {
        f"landing_{kind}_sensor" for kind in landing_kinds
    }
    for key in ("normalized/events", "normalized/log_records", "landing/crawl", "landing/webhooks"):
        assert (key, "all_objects_completed") in checks
        assert graph.get(dg.AssetKey(key.split("/"))).group_name == "landing"
    # dbt's staging models read the landed tables: lineage runs from the landing into metrics.
    stg_events = graph.get(dg.AssetKey(["metrics", "stg_events"]))
    assert dg.AssetKey(["normalized", "events"]) in stg_events.parent_keys
    # One group per source.
    for source_type in types:
        [raw_key] = [k for k in graph.get_all_asset_keys() if k.path[:2] == ["raw", source_type]]
        assert graph.get(raw_key).group_name == source_type
    assert graph.get(dg.AssetKey(["normalized", "feedback"])).group_name == "normalized"
    # Stripe payments: a real asset now, fed by raw/stripe/events, read by the metrics.
    payments = graph.get(dg.AssetKey(["normalized", "payments"]))
    assert payments.is_materializable and not payments.is_external
    assert payments.group_name == "normalized"
    assert payments.parent_keys == {dg.AssetKey(["raw", "stripe", "events"])}
    stg_payments = graph.get(dg.AssetKey(["metrics", "stg_payments"]))
    assert stg_payments.parent_keys == {dg.AssetKey(["normalized", "payments"])}
    ingest_stripe = defs.resolve_job_def("ingest_stripe")
    assert set(ingest_stripe.asset_layer.selected_asset_keys) == {
        dg.AssetKey(["raw", "stripe", "events"]),
        dg.AssetKey(["normalized", "payments"]),
    }
    assert graph.get(dg.AssetKey(["raw", "stripe", "events"])).partitions_def == (
        dg.DynamicPartitionsDefinition(name="stripe_instances")
    )
    assert "Atom" in graph.get(dg.AssetKey(["raw", "rss", "entries"])).description


def test_metrics_are_daily_partitioned_with_a_single_run_backfill_policy():
    graph = load_defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey(["metrics", "leaderboard_snapshots"]))
    assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
    assert node.partitions_def.timezone == "UTC"
    assert node.backfill_policy == dg.BackfillPolicy.single_run()
    # Lineage: the metrics read the normalized assets.
    stg_items = graph.get(dg.AssetKey(["metrics", "stg_items"]))
    assert stg_items.parent_keys == {dg.AssetKey(["normalized", "items"])}
