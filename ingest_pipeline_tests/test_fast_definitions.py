"""Fast tier: a snapshot of the definitions beside test_definitions.py's keys: which job each
schedule and sensor starts, on what cron, what each job selects, and every non-dbt check.
A change here is a change of the platform's surface: update the snapshot on purpose."""

from __future__ import annotations

import dagster as dg

SOURCES = ("rest_api", "csv", "rss", "playstore", "twitter", "discourse", "intercom", "stripe")
RAW = {
    "rest_api": "raw/rest_api/records",
    "csv": "raw/csv/rows",
    "rss": "raw/rss/entries",
    "playstore": "raw/playstore/reviews",
    "twitter": "raw/twitter/tweets",
    "discourse": "raw/discourse/posts",
    "intercom": "raw/intercom/conversations",
    "stripe": "raw/stripe/events",
}
LANDED = {
    "crawl": "landing/crawl",
    "events": "normalized/events",
    "logs": "normalized/log_records",
    "webhooks": "landing/webhooks",
}


def test_schedules_snapshot(defs: dg.Definitions) -> None:
    found = {(s.name, s.cron_schedule, s.execution_timezone, s.job_name) for s in defs.schedules}
    assert found == {
        ("metrics_daily_schedule", "30 0 * * *", "UTC", "metrics_daily"),
        ("retention_daily_schedule", "0 2 * * *", "UTC", "retention_daily"),
        *((f"ingest_{t}_schedule", "* * * * *", "UTC", f"ingest_{t}") for t in SOURCES),
    }
    assert {s.default_status for s in defs.schedules} == {dg.DefaultScheduleStatus.RUNNING}


def test_sensors_snapshot(defs: dg.Definitions) -> None:
    found = {s.name: sorted(t.job_name for t in s.targets) for s in defs.sensors}
    assert found == {
        "tenants_file_sensor": [],
        "normalize_automation_sensor": [],
        "metrics_freshness_sensor": ["metrics_daily"],
        "alert_run_failure_sensor": [],
        "alert_check_sensor": [],
        "alert_tick_failure_sensor": [],
        "instance_freshness_sensor": [],
        "dbt_source_freshness_sensor": [],
        **{f"landing_{kind}_sensor": [f"land_{kind}"] for kind in LANDED},
    }
    # The metrics refresh every INGEST_METRICS_REFRESH_MINUTES (default 10); the rest every 30 s.
    intervals = {s.name: s.minimum_interval_seconds for s in defs.sensors}
    assert intervals.pop("metrics_freshness_sensor") == 600
    assert intervals.pop("instance_freshness_sensor") == 300
    assert intervals.pop("dbt_source_freshness_sensor") == 60  # its checks' cron: hourly
    assert set(intervals.values()) == {30}
    assert {s.default_status for s in defs.sensors} == {dg.DefaultSensorStatus.RUNNING}


def test_jobs_select_snapshot(defs: dg.Definitions) -> None:
    def selected(job: str) -> set[str]:
        keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        return {key.to_user_string() for key in keys}

    for source_type, raw in RAW.items():
        assert selected(f"ingest_{source_type}") == {raw}
    for kind, asset in LANDED.items():
        assert selected(f"land_{kind}") == {asset}
    for entity in ("items", "feedback", "payments"):
        assert selected(f"normalize_{entity}") == {
            f"normalized/{entity}",
            "normalized/rejected_records",
        }
    metrics = selected("metrics_daily")
    assert len(metrics) == 16 and all(key.startswith("metrics/") for key in metrics)


def test_python_checks_snapshot(defs: dg.Definitions) -> None:
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in defs.resolve_asset_graph().asset_check_keys
        if key.asset_key.path[0] != "metrics"
    }
    assert checks == {
        *((asset, "all_objects_completed") for asset in LANDED.values()),
        *(
            (f"normalized/{entity}", name)
            for entity in ("items", "feedback", "payments")
            for name in ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous")
        ),
        # Every instance of a type loaded within its freshness expectation.
        *(
            (key.to_user_string(), "instances_fresh")
            for key in defs.resolve_asset_graph().get_all_asset_keys()
            if key.path[0] == "raw"
        ),
        # ... and normalized within it (the entities of pulled sources).
        *((f"normalized/{e}", "instances_fresh") for e in ("items", "feedback", "payments")),
        # dbt source freshness of the normalized tables with an expectation in _sources.yml.
        *(
            (f"normalized/{table}", "dbt_source_fresh")
            for table in ("items", "feedback", "events", "log_records", "payments")
        ),
    }


def test_the_code_location_loads_as_dagster_loads_it(defs: dg.Definitions) -> None:
    # What a code server does on start: every job resolved, names unique (an op named like a
    # job once failed the whole location here, while each job alone resolved).
    dg.Definitions.validate_loadable(defs)


def test_no_step_reads_another_steps_output(defs: dg.Definitions) -> None:
    """On Celery workers a step's output stays on the disk of the worker that ran it (the default
    IO manager): so no step may load one. Every input of every asset and job op is a dependency
    only (Dagster's Nothing type): what a step needs it reads from the warehouse."""
    repository = defs.get_repository_def()
    nodes = {a.node_def for a in repository.assets_defs_by_key.values() if a.node_def is not None}
    for job in repository.get_all_jobs():
        nodes.update(job.graph.node_defs)
    carried = [
        f"{node.name}.{input_def.name}"
        for node in nodes
        for input_def in node.input_defs
        if not input_def.dagster_type.is_nothing
    ]
    assert sum(len(node.input_defs) for node in nodes) > 0  # the dependencies are there
    assert carried == []
