"""Run every instance on its own cron: the tenants file's `schedule:` or its type's default.

One schedule per source type ticks every minute and asks for a run of each instance whose cron
is due at that minute, one run per instance, so one instance's failure stays its own. The
tenants file is read at each tick: added instances are scheduled, removed ones stop. An
instance whose previous run is still queued or running is not asked for again (its runs would
only pile up in the queue), nor one paused after failing on authentication (pauses.py); the
tick says so.
"""

from typing import Any

import dagster as dg
from croniter import croniter

from ingest_pipeline.defs.tenants.pauses import paused
from ingest_pipeline.domain.tenants import SourceInstance, TenantsFileError, instances_of_type
from ingest_pipeline.lib.resources import UNFINISHED_RUN_STATUSES
from ingest_pipeline.lib.source_types import SOURCE_TYPES, SourceType
from ingest_pipeline.settings import get_settings

EVERY_MINUTE = "* * * * *"


def is_due(cron: str, moment: Any) -> bool:
    return croniter.match(cron, moment)


def _has_active_run(instance: dg.DagsterInstance, source: SourceInstance) -> bool:
    tag = {"ingest/instance": source.run_tags["ingest/instance"]}
    runs_filter = dg.RunsFilter(tags=tag, statuses=UNFINISHED_RUN_STATUSES)
    return bool(instance.get_run_records(filters=runs_filter, limit=1))


def instance_schedule(source_type: SourceType) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{source_type.job_name}_schedule",
        job_name=source_type.job_name,
        cron_schedule=EVERY_MINUTE,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs each {source_type.name} instance on its `schedule` "
        f"(default {source_type.default_cron!r}).",
    )
    def ingest_due_instances(context: dg.ScheduleEvaluationContext):
        try:
            instances = instances_of_type(get_settings().tenants_file, source_type.name)
        except TenantsFileError as exc:
            return dg.SkipReason(str(exc))
        # Only instances the tenants sensor has already turned into partitions.
        known = set(context.instance.get_dynamic_partitions(source_type.partitions_name))
        tick = context.scheduled_execution_time
        due = [
            i
            for i in instances
            if i.partition_key in known
            and is_due(i.options.get("schedule", source_type.default_cron), tick)
        ]
        stopped = paused(context.instance, [i.run_tags["ingest/instance"] for i in due])
        for i in [i for i in due if i.run_tags["ingest/instance"] in stopped]:
            context.log.warning(
                f"{i.partition_key}: paused after failing on authentication; "
                f"`ingest-pipeline resume {i.tenant} {i.name}` lifts it"
            )
        due = [i for i in due if i.run_tags["ingest/instance"] not in stopped]
        busy = [i for i in due if _has_active_run(context.instance, i)]
        for i in busy:
            context.log.info(
                f"{i.partition_key}: the previous run is still active; not asked again"
            )
        requests = [
            dg.RunRequest(
                run_key=f"{i.partition_key}:{tick.isoformat()}",
                partition_key=i.partition_key,
                tags=i.run_tags,
            )
            for i in due
            if i not in busy
        ]
        if requests:
            return requests
        return dg.SkipReason(
            f"no {source_type.name} instance due at {tick:%H:%M} UTC"
            + (f" ({len(busy)} still running)" if busy else "")
            + (f" (paused: {', '.join(sorted(stopped))})" if stopped else "")
        )

    return ingest_due_instances


instance_schedules = [instance_schedule(t) for t in SOURCE_TYPES.values()]
