"""Build the dbt metrics for a range of days as one Dagster run (demo, benchmarks, tests)."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

# Dagster's step-by-step DEBUG lines stay in the run's log (the UI); a terminal gets warnings,
# errors and the tools' own progress.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# With INGEST_LOG_FORMAT=json (defs/run_logs.py) a log collector reads the lines, not a person:
# every event is one, as in the runs the daemon starts.
EVERY_EVENT = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


def console_config(job: dg.JobDefinition) -> dict[str, Any]:
    """The run config of a run the CLI executes: its console logger's level."""
    from ingest_pipeline.defs.run_logs import json_console_logger

    return EVERY_EVENT if job.loggers.get("console") is json_console_logger else QUIET_CONSOLE


def build_metrics(
    defs: dg.Definitions, instance: dg.DagsterInstance, first: date, last: date
) -> Any:
    """Run `metrics_daily` for the partitions first..last (inclusive) in one run."""
    job = defs.resolve_job_def("metrics_daily")
    return job.execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config=console_config(job),
        raise_on_error=False,
    )
