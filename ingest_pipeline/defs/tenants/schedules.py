"""Ingest every configured instance on a schedule: one run per instance, so failures stay apart."""

from typing import Any

import dagster as dg

# Modules, not names: the defs loader collects every job a module holds, and would see twice.
from ingest_pipeline.defs.sources.csv import assets as csv_assets
from ingest_pipeline.defs.sources.rest_api import assets as rest_api_assets
from ingest_pipeline.defs.sources.rss import assets as rss_assets
from ingest_pipeline.lib.tenants import TenantsFileError, instances_of_type
from ingest_pipeline.settings import get_settings

HOURLY = "0 * * * *"


def instance_schedule(source_type: str, job: Any) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"ingest_{source_type}_hourly",
        job=job,
        cron_schedule=HOURLY,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def ingest_each_instance(context: dg.ScheduleEvaluationContext):
        try:
            instances = instances_of_type(get_settings().tenants_file, source_type)
        except TenantsFileError as exc:
            return dg.SkipReason(str(exc))
        # Only instances the tenants sensor has already turned into partitions.
        known = set(context.instance.get_dynamic_partitions(f"{source_type}_instances"))
        tick = context.scheduled_execution_time.isoformat()
        return [
            dg.RunRequest(run_key=f"{i.partition_key}:{tick}", partition_key=i.partition_key)
            for i in instances
            if i.partition_key in known
        ]

    return ingest_each_instance


ingest_rest_api_hourly = instance_schedule("rest_api", rest_api_assets.ingest_rest_api_job)
ingest_csv_hourly = instance_schedule("csv", csv_assets.ingest_csv_job)
ingest_rss_hourly = instance_schedule("rss", rss_assets.ingest_rss_job)
