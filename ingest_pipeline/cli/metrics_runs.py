"""Build the dbt metrics for a range of days as one Dagster run (demo, benchmarks, tests)."""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg

# Dagster's step-by-step DEBUG lines stay in the run's log (the UI); a terminal gets warnings,
# errors and the tools' own progress.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def build_metrics(
    defs: dg.Definitions, instance: dg.DagsterInstance, first: date, last: date
) -> Any:
    """Run `metrics_daily` for the partitions first..last (inclusive) in one run."""
    return defs.resolve_job_def("metrics_daily").execute_in_process(
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        run_config=QUIET_CONSOLE,
        raise_on_error=False,
    )
