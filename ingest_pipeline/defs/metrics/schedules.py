"""Yesterday's metrics every day at 00:30 UTC; late data is fixed by re-running its day."""

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

metrics_daily_schedule = dg.build_schedule_from_partitioned_job(
    metrics_daily_job,
    hour_of_day=0,
    minute_of_hour=30,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
