"""An instance's freshness expectation: its `freshness:`, else twice its schedule's interval."""

from ingest_pipeline.defs.tenants.freshness import expectation
from ingest_pipeline.domain.tenants import SourceInstance


def instance(**options: str) -> SourceInstance:
    return SourceInstance(tenant="acme", type="csv", name="catalog", options=options)


def test_twice_the_schedule_interval_unless_given() -> None:
    assert expectation(instance(schedule="0 * * * *")).total_seconds() == 2 * 3600
    assert expectation(instance(schedule="*/15 * * * *")).total_seconds() == 30 * 60
    assert expectation(instance(schedule="0 * * * *", freshness="1d")).total_seconds() == 86400
