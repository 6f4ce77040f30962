"""The last run of each source instance, from Dagster's instance (DAGSTER_HOME), for `stats`.

Ingest runs carry the tags `ingest/tenant` and `ingest/instance` (`<type>.<tenant>.<name>`,
`SourceInstance.run_tags`); the newest run of every instance of a tenant is one query to the
run storage (a tag bucket of one run per instance), never a scan of the run history. Dagster
is imported and its instance opened on first use (in a worker thread, never on the event
loop), and kept for the life of the service; the service warms it up at start.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

TENANT_TAG = "ingest/tenant"
INSTANCE_TAG = "ingest/instance"


def instance_tag(tenant: str, source_type: str, source_instance: str) -> str:
    """The `ingest/instance` tag value of an instance's runs (as `SourceInstance.run_tags`)."""
    return f"{source_type}.{tenant}.{source_instance}"


class LastRuns:
    """Reads run records from the Dagster instance of DAGSTER_HOME (or the one given)."""

    def __init__(self, instance: Any | None = None) -> None:
        self._instance = instance
        self._lock = threading.Lock()

    def instance(self) -> Any:
        with self._lock:
            if self._instance is None:
                import dagster as dg

                self._instance = dg.DagsterInstance.get()
            return self._instance

    def last_runs(self, tenant: str, tags: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{instance tag: its newest run (run_id, status, created_at, started_at, ended_at)}
        for those of `tags` that ran."""
        if not tags:
            return {}
        from dagster import RunsFilter
        from dagster._core.storage.dagster_run import TagBucket  # not re-exported

        records = self.instance().get_run_records(
            filters=RunsFilter(tags={TENANT_TAG: tenant}),
            bucket_by=TagBucket(tag_key=INSTANCE_TAG, bucket_limit=1, tag_values=list(tags)),
        )
        runs: dict[str, dict[str, Any]] = {}
        for record in records:
            run = record.dagster_run
            tag = run.tags.get(INSTANCE_TAG)
            if tag in runs or tag not in tags:
                continue
            runs[tag] = {
                "run_id": run.run_id,
                "status": run.status.value,
                "created_at": _iso(record.create_timestamp),
                "started_at": _iso(record.start_time),
                "ended_at": _iso(record.end_time),
            }
        return runs

    def close(self) -> None:
        with self._lock:
            if self._instance is not None:
                self._instance.dispose()
                self._instance = None


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()
