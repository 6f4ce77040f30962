"""Faults stay where they start: a value one warehouse (or Python) cannot hold is a reject with
its reason, beside good rows that arrive, on both warehouses; the table stays readable."""

from ingest_pipeline_tests.conftest import csv_instance
from ingest_pipeline_tests.test_items_sources import write_csv

OUT_OF_RANGE = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")


def test_timestamps_outside_years_1_to_9999_in_utc_are_rejects_not_a_failed_run(env):
    landing = env.tmp_path / "landing"
    write_csv(
        landing,
        "items.csv",
        "sku,name,link,updated\n"
        "1,Good,https://x.example/1,2026-01-01T10:00:00+02:00\n"
        f"2,Too early,https://x.example/2,{OUT_OF_RANGE[0]}\n"
        f"3,Too late,https://x.example/3,{OUT_OF_RANGE[1]}\n"
        "4,Edge,https://x.example/4,0001-01-01T00:00:00Z\n",
    )
    env.write_tenants({"acme": [csv_instance(landing)]})
    [outcome] = env.ingest()
    assert outcome.status == "ok", outcome.error
    assert (outcome.rows_normalized, outcome.rows_rejected) == (2, 2)
    reasons = env.rows(
        "SELECT record_ref, reason FROM normalized.rejected_records ORDER BY record_ref"
    )
    assert [ref for ref, _ in reasons] == [
        "raw_csv.acme__catalog:items.csv:2",
        "raw_csv.acme__catalog:items.csv:3",
    ]
    assert all(
        r.startswith("published_at: Value error, timestamp out of range") for _, r in reasons
    )
    # Every stored timestamp reads back.
    assert [r[0] for r in env.rows("SELECT external_id FROM normalized.items ORDER BY 1")] == [
        "1",
        "4",
    ]
    assert len(env.rows("SELECT published_at FROM normalized.items")) == 2
