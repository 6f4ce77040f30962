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
        # written by every normalizing step; a real asset that records the rejects' counts
        "normalized/rejected_records",
        # deletes what the tenants' retention windows no longer keep, daily
        "operations/retention",
    }
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    for key in keys:
        if key.startswith("raw/"):
            assert (key, "instances_fresh") in checks
    for entity in ("items", "feedback", "payments"):
        for name in ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous"):
            assert (f"normalized/{entity}", name) in checks
    types = ["rest_api", "csv", "rss", "playstore", "twitter", "discourse", "intercom", "stripe"]
    landing_kinds = ["logs", "events", "crawl", "webhooks"]
    assert {job.name for job in defs.jobs} == {f"ingest_{t}" for t in types} | {
        "metrics_daily",
        "retention_daily",
        "dbt_source_freshness",
        *(f"land_{kind}" for kind in landing_kinds),
        *(f"normalize_{entity}" for entity in ("items", "feedback", "payments")),
    }
    assert {s.name for s in defs.schedules} == {f"ingest_{t}_schedule" for t in types} | {
        "metrics_daily_schedule",
        "retention_daily_schedule",
    }
    # dbt's YAML tests are asset checks on the metrics assets.
    metric_checks = {name for key, name in checks if key == "metrics/leaderboard_snapshots"}
    assert "not_null_leaderboard_snapshots_rank" in metric_checks
    assert {s.name for s in defs.sensors} == {
        "tenants_file_sensor",
        "normalize_automation_sensor",
        "metrics_freshness_sensor",
        "alert_run_failure_sensor",
        "alert_check_sensor",
        "alert_tick_failure_sensor",
        "dbt_source_freshness_sensor",
        "instance_freshness_sensor",
    } | {f"landing_{kind}_sensor" for kind in landing_kinds}
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
    assert payments.parent_keys == {
        dg.AssetKey(["raw", "stripe", "events"]),
        dg.AssetKey(["landing", "webhooks"]),
    }
    stg_payments = graph.get(dg.AssetKey(["metrics", "stg_payments"]))
    assert stg_payments.parent_keys == {dg.AssetKey(["normalized", "payments"])}
    # An instance's run is its raw partition only: the shared normalized asset has its own job.
    ingest_stripe = defs.resolve_job_def("ingest_stripe")
    assert set(ingest_stripe.asset_layer.selected_asset_keys) == {
        dg.AssetKey(["raw", "stripe", "events"])
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


def key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def test_normalize_jobs_automation_and_lineage():
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    # The landing writes into the normalized tables: lineage shows it.
    assert key("landing/crawl") in graph.get(key("normalized/items")).parent_keys
    assert key("raw/rss/entries") in graph.get(key("normalized/items")).parent_keys
    for entity in ("feedback", "payments"):
        assert key("landing/webhooks") in graph.get(key(f"normalized/{entity}")).parent_keys
    rejects = graph.get(key("normalized/rejected_records"))
    assert rejects.is_materializable and rejects.group_name == "normalized"
    assert rejects.parent_keys == {
        key(k)
        for k in (
            "normalized/items",
            "normalized/feedback",
            "normalized/payments",
            "normalized/events",
            "normalized/log_records",
            "landing/crawl",
            "landing/webhooks",
        )
    }
    # Each normalize job: the entity, its three checks and the rejects' counts; unpartitioned.
    for entity in ("items", "feedback", "payments"):
        job = defs.resolve_job_def(f"normalize_{entity}")
        assert set(job.asset_layer.selected_asset_keys) == {
            key(f"normalized/{entity}"),
            key("normalized/rejected_records"),
        }
        assert {c.name for c in job.asset_layer.asset_graph.asset_check_keys} >= {
            "natural_key_unique",
            "raw_schema_unchanged",
            "row_count_not_anomalous",
        }
        assert job.partitions_def is None
    # Declarative automation, without eager()'s any_deps_missing (a dead feed's partition is
    # missing for good) and not on top of a run in progress.
    sensor = defs.resolve_sensor_def("normalize_automation_sensor")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    for entity in ("items", "feedback", "payments", "rejected_records"):
        condition = graph.get(key(f"normalized/{entity}")).automation_condition
        assert condition is not None
        labels = _labels(condition)
        assert {"ANY_DEPS_MATCH", "newly_updated", "SINCE", "newly_requested"} <= labels
        assert "any_deps_missing" not in labels
        assert "in_progress" in labels


def test_every_asset_has_a_group_and_a_description():
    graph = load_defs().resolve_asset_graph()
    for asset_key in graph.get_all_asset_keys():
        node = graph.get(asset_key)
        assert node.group_name and node.group_name != "default", asset_key
        assert node.description and node.description.strip(), asset_key
        # dagster-dbt's fallback is the model's SQL; ours says what the model is.
        assert not node.description.lower().lstrip().startswith(("select", "with")), asset_key


def _labels(condition: dg.AutomationCondition) -> set[str]:
    snapshot = condition.get_snapshot()
    found: set[str] = set()

    def walk(node) -> None:
        found.add(node.node_snapshot.label or "")
        found.add(node.node_snapshot.name or "")
        for child in node.children:
            walk(child)

    walk(snapshot)
    return found
