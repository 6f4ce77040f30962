"""Retention on both warehouses, through a real Dagster run of `retention_daily`: each tenant's
rows older than its windows are deleted (its own `retention:` block, else the defaults), newer
ones and other tenants' kept, in bounded batches; the counts are recorded; a second run deletes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from ingest_pipeline.domain import retention
from ingest_pipeline.domain.entities import EVENTS, INTAKE_AUDIT, LOG_RECORDS, REJECTED_RECORDS
from ingest_pipeline_tests.conftest import csv_instance

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def event(tenant: str, n: int, when: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "source_type": "app_events",
        "source_instance": "web",
        "event_id": f"e{n}",
        "event_type": "VIEW",
        "occurred_at": when,
        "raw_load_id": "L",
        "ingested_at": NOW,
    }


def reject(tenant: str, n: int, when: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "source_type": "csv",
        "source_instance": "catalog",
        "record_ref": f"r{n}",
        "reason": "bad",
        "payload": "{}",
        "rejected_at": when,
    }


def run_retention(env: Any) -> dict[str, dict[str, int]]:
    result = env.defs.resolve_job_def("retention_daily").execute_in_process(instance=env.instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("operations__retention")
    return materialization.metadata["removed"].value


def test_rows_older_than_each_tenants_windows_are_deleted(env, tmp_path, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_ROWS", 2)  # five old events: three batches
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "items.csv").write_text(
        "sku,name,link,updated\n1,a,https://x/1,2026-01-01\n2,b,https://x/2,2026-01-01\n"
    )
    env.write_tenants({"acme": [csv_instance(folder)], "globex": []})
    document = yaml.safe_load(env.tenants_file.read_text())
    document["tenants"]["acme"]["retention"] = {"events": "7d", "rejects": "12h"}
    env.tenants_file.write_text(yaml.safe_dump(document))
    [outcome] = env.ingest("acme")
    assert outcome.status == "ok", outcome
    # The raw rows of acme's load, as if it were 100 days old (raw keeps 90 by default).
    old_load = str(ago(100).timestamp())
    env.warehouse.execute("UPDATE raw_csv.acme__catalog SET _dlt_load_id = %s", (old_load,))
    wh = env.warehouse
    wh.upsert(EVENTS, [event("acme", n, ago(10)) for n in range(5)] + [event("acme", 9, ago(1))])
    wh.upsert(EVENTS, [event("globex", 1, ago(10)), event("globex", 2, ago(400))])
    wh.upsert(REJECTED_RECORDS, [reject("acme", 1, ago(1)), reject("acme", 2, ago(0.1))])
    audit = {"route": "POST /uploads/{tenant}", "verdict": "accepted", "tenant_id": "globex"}
    wh.upsert(
        INTAKE_AUDIT,
        [
            {**audit, "audit_id": "a1", "received_at": ago(31)},
            {**audit, "audit_id": "a2", "received_at": ago(29)},
        ],
    )
    log = {"tenant_id": "acme", "upload_id": "u", "object_key": "logs/acme/a.log"}
    wh.upsert(
        LOG_RECORDS,
        [
            {**log, "line_no": 1, "ts": ago(40), "ingested_at": NOW},
            {**log, "line_no": 2, "ts": None, "ingested_at": ago(40)},
            {**log, "line_no": 3, "ts": ago(2), "ingested_at": NOW},
        ],
    )

    removed = run_retention(env)
    assert removed == {
        "acme": {"rejects": 1, "audit": 0, "events": 5, "log_records": 2, "raw": 2},
        "globex": {"rejects": 0, "audit": 1, "events": 1, "log_records": 0, "raw": 0},
    }
    assert env.rows("SELECT tenant_id, event_id FROM normalized.events ORDER BY 1, 2") == [
        ("acme", "e9"),
        ("globex", "e1"),
    ]
    assert env.rows("SELECT record_ref FROM normalized.rejected_records") == [("r2",)]
    assert env.rows("SELECT audit_id FROM normalized.intake_audit") == [("a2",)]
    assert env.rows("SELECT line_no FROM normalized.log_records") == [(3,)]
    assert env.rows("SELECT count(*) FROM raw_csv.acme__catalog") == [(0,)]
    # The normalized items of the deleted raw load stay: raw retention is raw's alone.
    assert env.rows("SELECT count(*) FROM normalized.items") == [(2,)]
    # Again: nothing more to delete.
    again = run_retention(env)
    assert all(count == 0 for counts in again.values() for count in counts.values())


def test_a_bad_duration_is_refused_naming_the_tenant(env):
    env.write_tenants({"acme": []})
    document = yaml.safe_load(env.tenants_file.read_text())
    document["tenants"]["acme"]["retention"] = {"events": "a week"}
    env.tenants_file.write_text(yaml.safe_dump(document))
    result = env.defs.resolve_job_def("retention_daily").execute_in_process(
        instance=env.instance, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.to_string()
    assert "tenant acme: retention" in message and "12h or 30d" in message


def test_child_rows_go_with_their_root_rows(env):
    # dlt's child table of a nested list: no tenant column, linked by _dlt_root_id.
    env.write_tenants({"acme": []})
    wh = env.warehouse
    wh.execute("CREATE SCHEMA IF NOT EXISTS raw_rest_api")
    wh.execute(
        "CREATE TABLE raw_rest_api.products (id TEXT, _tenant_id TEXT, _source_instance TEXT, "
        "_dlt_load_id TEXT, _dlt_id TEXT)"
    )
    wh.execute(
        "CREATE TABLE raw_rest_api.products__tags (value TEXT, _dlt_root_id TEXT, "
        "_dlt_parent_id TEXT, _dlt_list_idx BIGINT, _dlt_id TEXT)"
    )
    old, new = str(ago(100).timestamp()), str(ago(1).timestamp())
    for product, load in (("p1", old), ("p2", new)):
        wh.execute(
            "INSERT INTO raw_rest_api.products VALUES (%s, 'acme', 'api', %s, %s)",
            (product, load, f"id-{product}"),
        )
        for n in range(3):
            wh.execute(
                "INSERT INTO raw_rest_api.products__tags VALUES (%s, %s, %s, %s, %s)",
                (f"t{n}", f"id-{product}", f"id-{product}", n, f"{product}-{n}"),
            )
    result = env.defs.resolve_job_def("retention_daily").execute_in_process(instance=env.instance)
    [materialization] = result.asset_materializations_for_node("operations__retention")
    assert materialization.metadata["removed"].value["acme"]["raw"] == 1
    assert materialization.metadata["raw_child_rows"].value == 3
    assert env.rows("SELECT DISTINCT _dlt_root_id FROM raw_rest_api.products__tags") == [("id-p2",)]
