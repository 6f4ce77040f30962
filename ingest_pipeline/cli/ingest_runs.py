"""Run source instances through Dagster (recorded in the instance like any run), one run each.

An instance is two runs: its raw partition (`ingest_<type>`), then, only if that succeeded, the
entity's `normalize_<entity>` (unpartitioned: it takes every pending raw load). A failed raw run
is the instance's failure alone; normalize is not run for it, so the shared normalized asset and
its checks never show another instance's fault. The counts per instance come from the
normalized materialization's `per_instance` metadata, and the loads it quarantined from its
`quarantined_loads` metadata: shown in the summary line, not a failure (exit code 0).

The runs' steps go where INGEST_EXECUTOR says: in this process (`in_process`, the default:
Dagster's `execute_in_process`), or by `dg.execute_job` on a job the workers rebuild from this
module (`ingest_job`), on Celery workers or in processes of their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ingest_pipeline.cli.metrics_runs import console_config
from ingest_pipeline.defs.sources.raw_assets import normalize_job_name
from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import SOURCE_TYPES

# The normalize run names the raw run it followed, so the UI can go from one to the other.
AFTER_RUN_TAG = "ingest/after_run"


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
    # This instance's raw loads the normalize run quarantined: "load <id> of <table>: <reason>".
    quarantined: tuple[str, ...] = ()

    def summary_line(self) -> str:
        """One line, and under it the error or each quarantined load: a run that succeeded but
        set loads aside says `quarantined=K` (still `ok`: a replay retries them)."""
        line = (
            f"{self.instance.type:<9} {self.instance.partition_key:<28} {self.status:<6} "
            f"loaded={self.rows_loaded:<8} normalized={self.rows_normalized:<8} "
            f"rejected={self.rows_rejected:<6} {self.seconds:6.1f}s  run={self.run_id[:8]}"
        )
        if self.quarantined:
            line += f"  quarantined={len(self.quarantined)}"
        notes = [f"quarantined: {q}" for q in self.quarantined]
        notes += [f"error: {self.error}"] if self.error else []
        return "\n    ".join([line, *notes])


def ingest_instance(
    defs: dg.Definitions, instance_store: dg.DagsterInstance, source: SourceInstance
) -> InstanceOutcome:
    """The raw run of one instance, then its entity's normalize run; `run_id` is the raw run."""
    kind = SOURCE_TYPES[source.type]
    started = time.monotonic()
    tags = source.run_tags
    with _executed(defs, instance_store, kind.job_name, tags, source.partition_key) as raw_run:
        raw = _materialization_metadata(raw_run).get(("raw", source.type), {})
    counts: dict[str, Any] = {}
    quarantined: tuple[str, ...] = ()
    last = raw_run
    # Nothing loaded and nothing left from before: no normalize run (a re-run on unchanged
    # input is the raw run's check alone).
    if raw_run.success and (int(raw.get("rows_loaded", 0)) or _pending(source.type)):
        after = {**tags, AFTER_RUN_TAG: raw_run.run_id}
        with _executed(defs, instance_store, normalize_job_name(kind.entity), after) as last:
            normalized = _materialization_metadata(last).get(("normalized", kind.entity), {})
        counts = normalized.get("per_instance", {}).get(f"{source.type}:{source.partition_key}", {})
        quarantined = _quarantined(normalized, source.partition_key)
    return InstanceOutcome(
        instance=source,
        status="ok" if last.success else "failed",
        rows_loaded=int(raw.get("rows_loaded", 0)),
        rows_normalized=int(counts.get("normalized", 0)),
        rows_rejected=int(counts.get("rejected", 0)),
        seconds=time.monotonic() - started,
        run_id=raw_run.run_id,
        error="" if last.success else _failure_message(last),
        quarantined=quarantined,
    )


@contextlib.contextmanager
def _executed(
    defs: dg.Definitions,
    instance_store: dg.DagsterInstance,
    job_name: str,
    tags: dict[str, str],
    partition_key: str | None = None,
) -> Iterator[Any]:
    """One run of `job_name` to its end, failed or not: its result (events, success, run id)."""
    from ingest_pipeline.settings import get_settings

    job = defs.resolve_job_def(job_name)
    if get_settings().executor == "in_process":
        yield job.execute_in_process(
            instance=instance_store,
            partition_key=partition_key,
            raise_on_error=False,
            run_config=console_config(job),
            tags=tags,
        )
        return
    rebuilt = dg.build_reconstructable_job(__name__, ingest_job.__name__, (job_name,))
    partition = {"dagster/partition": partition_key} if partition_key else {}
    with dg.execute_job(
        rebuilt,
        instance=instance_store,
        run_config=console_config(job),
        tags={**tags, **partition},
        raise_on_error=False,
    ) as result:
        yield result


def ingest_job(job_name: str) -> dg.JobDefinition:
    """The job `job_name` of the ingest definitions: what a worker (or a step's own process)
    rebuilds to run a step of an `ingest-pipeline ingest` run."""
    from ingest_pipeline.definitions import ingest_defs

    return ingest_defs().resolve_job_def(job_name)


def _pending(source_type: str) -> bool:
    from ingest_pipeline.defs.normalized.normalize import has_pending_loads
    from ingest_pipeline.lib.warehouse import Warehouse
    from ingest_pipeline.settings import get_settings

    warehouse = Warehouse(get_settings().resolved_warehouse_url)
    return has_pending_loads(warehouse, source_type)


def _quarantined(metadata: dict[str, Any], partition_key: str) -> tuple[str, ...]:
    """The quarantined loads (`quarantined_loads` metadata) holding this instance's rows."""
    return tuple(
        f"load {q['load_id']} of {q['raw_table']}: {q['reason']}"
        for q in metadata.get("quarantined_loads") or []
        if partition_key in q.get("instances", [])
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
