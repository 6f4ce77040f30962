"""The whole code location loads, with the stable asset keys, checks, jobs and automation."""

import dagster as dg

from ingest_pipeline.definitions import defs as load_defs


def test_defs_load_with_stable_keys_checks_and_jobs():
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"raw/rest_api/records", "raw/csv/rows", "raw/rss/entries", "normalized/items"} <= keys
    checks = {key.name for key in graph.asset_check_keys}
    assert checks == {"items_natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous"}
    assert {job.name for job in defs.jobs} == {"ingest_rest_api", "ingest_csv", "ingest_rss"}
    assert {s.name for s in defs.schedules} == {
        "ingest_rest_api_hourly",
        "ingest_csv_hourly",
        "ingest_rss_hourly",
    }
    assert {s.name for s in defs.sensors} == {"tenants_file_sensor"}
    # One group per source.
    groups = {
        graph.get(dg.AssetKey(["raw", t, r])).group_name
        for t, r in [("rest_api", "records"), ("csv", "rows"), ("rss", "entries")]
    }
    assert groups == {"rest_api", "csv", "rss"}
