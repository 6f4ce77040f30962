"""The closing build of each day, at 00:30 UTC the next day.

The freshness sensor (freshness.py) re-builds the days new rows touch, as they arrive; this
schedule builds every day once more after it ended, so a day without any new row (no sensor run)
still gets its rows in the rollups that carry earlier days forward (trending, leaderboards).
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ingest_pipeline.defs.metrics.assets import metrics_assets
from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.lib.resources import METRICS_MAX_RUNTIME_SECONDS, max_runtime_tags

metrics_daily_job = dg.define_asset_job(
    name="metrics_daily",
    selection=dg.AssetSelection.assets(metrics_assets),
    partitions_def=daily_partitions,
    tags=max_runtime_tags(METRICS_MAX_RUNTIME_SECONDS),
    description="Build the dbt metrics for a day (or a range of days in one run).",
)


@dg.schedule(
    cron_schedule="30 0 * * *",
    job=metrics_daily_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def metrics_daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Yesterday's partition (the partitions end with today's: the default would build that)."""
    tick = context.scheduled_execution_time or datetime.now(UTC)
    yesterday = (tick - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=yesterday, partition_key=yesterday)
