"""Fast tier: every run of a source instance carries its tenant and source-instance tags,
however it is launched (the job's own tags for a partition, the schedules' requests), and a
landing run holds one tenant's objects and carries that tenant's tag."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ingest_pipeline.defs.landing.sensors import _run_requests, per_tenant_batches
from ingest_pipeline.domain.tenants import instance_run_tags
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib.source_types import SOURCE_TYPES

TICK = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ACME_TAGS = {
    "ingest/tenant": "acme",
    "ingest/source": "main",
    "ingest/source_type": "rss",
    "ingest/instance": "rss.acme.main",
    "ingest/source_instance": "rss:acme.main",
}


def test_an_instances_tags_name_its_tenant_and_source_instance() -> None:
    assert instance_run_tags("rss", "acme.main") == ACME_TAGS
    # The same partition key under two source types is two source instances.
    assert instance_run_tags("csv", "acme.main")["ingest/source_instance"] == "csv:acme.main"


@pytest.mark.parametrize("source_type", sorted(SOURCE_TYPES))
def test_every_run_of_a_partition_carries_the_instance_tags(
    defs: dg.Definitions, source_type: str
) -> None:
    """UI launches, backfills and `execute_in_process` take a job's tags for a partition."""
    job = defs.resolve_job_def(SOURCE_TYPES[source_type].job_name)
    tags = job.get_tags_for_partition_key("initech.main", selected_asset_keys=None)
    assert tags.items() >= instance_run_tags(source_type, "initech.main").items()
    assert tags["ingest/source_instance"] == f"{source_type}:initech.main"


def test_scheduled_runs_carry_the_instance_tags(
    defs: dg.Definitions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = {
        t: {"sources": [{"type": "rss", "name": "main", "url": f"http://127.0.0.1:9/{t}.xml"}]}
        for t in ("acme", "initech")
    }
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text(yaml.safe_dump({"tenants": tenants}), encoding="utf-8")
    monkeypatch.setenv("INGEST_TENANTS_FILE", str(tenants_file))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(SOURCE_TYPES["rss"].partitions_name, ["acme.main"])
        instance.add_dynamic_partitions(SOURCE_TYPES["rss"].partitions_name, ["initech.main"])
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=TICK,
            repository_def=defs.get_repository_def(),
        )
        schedule = defs.resolve_schedule_def("ingest_rss_schedule")
        requests = schedule.evaluate_tick(context).run_requests or []
    by_partition = {r.partition_key: r.tags for r in requests}
    assert set(by_partition) == {"acme.main", "initech.main"}
    assert by_partition["acme.main"].items() >= ACME_TAGS.items()
    assert by_partition["initech.main"]["ingest/source_instance"] == "rss:initech.main"


def landed(n: int, tenant: str) -> LandedObject:
    key = f"events/{tenant}/batch-{n}.ndjson"
    return LandedObject(f"u{n}", tenant, "events", key, f"e{n}", 10)


def test_landing_runs_are_batched_per_tenant_and_tagged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_LANDING_OBJECTS_PER_RUN", "2")
    # Oldest first, two tenants interleaved: 3 of acme, 2 of initech; one of acme to retry.
    new = [landed(1, "acme"), landed(2, "initech"), landed(3, "acme"), landed(4, "initech")]
    new.append(landed(5, "acme"))
    assert [[o.upload_id for o in b] for b in per_tenant_batches(new, 2)] == [
        ["u1", "u3"],
        ["u5"],
        ["u2", "u4"],
    ]
    requests = _run_requests("events", new, [landed(6, "acme")], now=1_773_000_000.0)
    tenants = []
    for request in requests:
        [op_config] = request.run_config["ops"].values()
        objects = op_config["config"]["objects"]
        assert {o["tenant_id"] for o in objects} == {request.tags["ingest/tenant"]}
        tenants.append(request.tags["ingest/tenant"])
    assert tenants == ["acme", "acme", "initech", "acme"]
    assert len({r.run_key for r in requests}) == len(requests)
