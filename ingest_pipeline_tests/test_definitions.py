"""The whole code location loads, with the stable asset keys, checks, jobs and automation."""

import dagster as dg

from ingest_pipeline.definitions import defs as load_defs


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
        "normalized/items",
        "normalized/feedback",
    }
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    for entity in ("items", "feedback"):
        for name in ("natural_key_unique", "raw_schema_unchanged", "row_count_not_anomalous"):
            assert (f"normalized/{entity}", name) in checks
    types = ["rest_api", "csv", "rss", "playstore", "twitter", "discourse", "intercom"]
    assert {job.name for job in defs.jobs} == {f"ingest_{t}" for t in types}
    assert {s.name for s in defs.schedules} == {f"ingest_{t}_schedule" for t in types}
    assert {s.name for s in defs.sensors} == {"tenants_file_sensor"}
    # One group per source.
    for source_type in types:
        [raw_key] = [k for k in graph.get_all_asset_keys() if k.path[:2] == ["raw", source_type]]
        assert graph.get(raw_key).group_name == source_type
    assert graph.get(dg.AssetKey(["normalized", "feedback"])).group_name == "normalized"
