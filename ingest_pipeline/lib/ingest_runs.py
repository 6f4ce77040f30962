"""Run source instances through Dagster (recorded in the instance like any run), one run each."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ingest_pipeline.lib.metrics_runs import QUIET_CONSOLE
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.lib.tenants import SourceInstance


@dataclass
class InstanceOutcome:
    instance: SourceInstance
    status: str  # "ok" or "failed"
    rows_loaded: int
    rows_normalized: int
    rows_rejected: int
    seconds: float
    run_id: str
    error: str = ""

    def summary_line(self) -> str:
        line = (
            f"{self.instance.type:<9} {self.instance.partition_key:<28} {self.status:<6} "
            f"loaded={self.rows_loaded:<8} normalized={self.rows_normalized:<8} "
            f"rejected={self.rows_rejected:<6} {self.seconds:6.1f}s  run={self.run_id[:8]}"
        )
        return line + (f"\n    error: {self.error}" if self.error else "")


def ingest_instance(
    defs: dg.Definitions, instance_store: dg.DagsterInstance, source: SourceInstance
) -> InstanceOutcome:
    kind = SOURCE_TYPES[source.type]
    job = defs.resolve_job_def(kind.job_name)
    started = time.monotonic()
    result = job.execute_in_process(
        instance=instance_store,
        partition_key=source.partition_key,
        raise_on_error=False,
        run_config=QUIET_CONSOLE,
        tags={"ingest/tenant": source.tenant, "ingest/source": source.name},
    )
    metadata = _materialization_metadata(result)
    raw = metadata.get(("raw", source.type), {})
    per_instance = metadata.get(("normalized", kind.entity), {}).get("per_instance", {})
    counts = per_instance.get(f"{source.type}:{source.partition_key}", {})
    return InstanceOutcome(
        instance=source,
        status="ok" if result.success else "failed",
        rows_loaded=int(raw.get("rows_loaded", 0)),
        rows_normalized=int(counts.get("normalized", 0)),
        rows_rejected=int(counts.get("rejected", 0)),
        seconds=time.monotonic() - started,
        run_id=result.run_id,
        error="" if result.success else _failure_message(result),
    )


def _materialization_metadata(result: Any) -> dict[tuple[str, ...], dict[str, Any]]:
    """{key path[:2]: {metadata name: plain value}} for this run's materializations."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        found[tuple(materialization.asset_key.path[:2])] = {
            name: value.value for name, value in materialization.metadata.items()
        }
    return found


def _failure_message(result: Any) -> str:
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        failure = event.step_failure_data
        # Our own dg.Failure carries its description; any other error, its message.
        if failure.user_failure_data and failure.user_failure_data.description:
            message = failure.user_failure_data.description
        elif failure.error:
            message = failure.error.message or ""
        else:
            continue
        return (message.strip().splitlines() or ["run failed"])[0][:500]
    return "run failed"
