"""Freshness: each source instance's last successful load against its expectation.

Rules kept here:
- An instance's expectation is its `freshness:` option (`2h`, `1d`), else twice the interval of
  its schedule (an hourly instance is stale after two hours without a successful load).
- Its last load is the newest materialization of its partition of its type's raw asset. An
  instance never loaded counts from when this sensor first saw it (kept in its cursor), so a
  new instance is not stale before it had its chance.
- Every FRESHNESS_INTERVAL_SECONDS, `instance_freshness_sensor` records the check
  `instances_fresh` of each raw asset (passed, or WARN naming the stale instances and their
  ages) as a run-less check evaluation, the UI's check history of the asset; the same check
  evaluated by hand from the UI gives the same result. Each stale instance is alerted (kind
  `stale`, repeats folded); the check sensor leaves this check to it.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from croniter import croniter

from ingest_pipeline.defs.sources.raw_assets import raw_asset_key
from ingest_pipeline.domain.tenants import SourceInstance, TenantsFileError, load_source_instances
from ingest_pipeline.lib.alerts import Alert, asset_url, send
from ingest_pipeline.lib.durations import parse_duration
from ingest_pipeline.lib.source_types import SOURCE_TYPES
from ingest_pipeline.settings import get_settings

CHECK_NAME = "instances_fresh"
FRESHNESS_INTERVAL_SECONDS = 300


def expectation(source: SourceInstance) -> timedelta:
    """The instance's `freshness`, else twice its schedule's interval."""
    if source.options.get("freshness"):
        return parse_duration(source.options["freshness"])
    cron = source.options.get("schedule") or SOURCE_TYPES[source.type].default_cron
    runs = croniter(cron, datetime(2026, 1, 1, tzinfo=UTC))
    first, second = runs.get_next(datetime), runs.get_next(datetime)
    return 2 * (second - first)


def last_loaded(instance: dg.DagsterInstance, source: SourceInstance) -> float | None:
    """When the instance's raw partition was last materialized (a successful load)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=raw_asset_key(source.type), asset_partitions=[source.partition_key]
        ),
        limit=1,
    ).records
    return records[0].timestamp if records else None


def stale_instances(
    instance: dg.DagsterInstance,
    sources: list[SourceInstance],
    first_seen: dict[str, float],
    now: float,
) -> dict[str, dict[str, Any]]:
    """{partition key: why it is stale} of the given instances (one source type's)."""
    stale = {}
    for source in sources:
        limit = expectation(source).total_seconds()
        loaded = last_loaded(instance, source)
        since = loaded if loaded is not None else first_seen.get(source.partition_key, now)
        if now - since > limit:
            stale[source.partition_key] = {
                "last_loaded": loaded and datetime.fromtimestamp(loaded, UTC).isoformat(),
                "age_hours": round((now - since) / 3600, 2),
                "expected_within_hours": round(limit / 3600, 2),
            }
    return stale


def freshness_evaluation(
    source_type: str, stale: dict[str, dict[str, Any]], checked: int
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=raw_asset_key(source_type),
        check_name=CHECK_NAME,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"stale: {', '.join(sorted(stale))}" if stale else f"{checked} instance(s) fresh"
        ),
        metadata={"stale": dg.MetadataValue.json(stale), "instances": checked},
    )


def stale_alert(source_type: str, partition_key: str, why: dict[str, Any]) -> Alert:
    tenant, name = partition_key.split(".", 1)
    age, limit = why["age_hours"], why["expected_within_hours"]
    return Alert(
        kind="stale",
        text=f"{source_type} {partition_key} is stale: last loaded {age} h ago "
        f"(expected within {limit} h)",
        subject=f"{source_type}.{partition_key}",
        tenant=tenant,
        source_instance=name,
        partition=partition_key,
        asset=raw_asset_key(source_type).to_user_string(),
        check=CHECK_NAME,
        severity="WARN",
        url=asset_url(get_settings(), raw_asset_key(source_type)),
    )


@dg.sensor(
    name="instance_freshness_sensor",
    minimum_interval_seconds=FRESHNESS_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Each source instance's last successful load against its freshness "
    "expectation: the raw assets' check instances_fresh, and an alert per stale instance.",
)
def instance_freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    try:
        sources = load_source_instances(get_settings().tenants_file)
    except TenantsFileError as exc:
        return dg.SensorResult(skip_reason=str(exc), cursor=context.cursor)
    now = datetime.now(UTC).timestamp()
    first_seen = json.loads(context.cursor or "{}")
    first_seen = {s.partition_key: first_seen.get(s.partition_key, now) for s in sources}
    stale_count = 0
    for source_type in sorted({s.type for s in sources}):
        of_type = [s for s in sources if s.type == source_type]
        stale = stale_instances(context.instance, of_type, first_seen, now)
        context.instance.report_runless_asset_event(
            freshness_evaluation(source_type, stale, len(of_type))
        )
        for partition_key, why in stale.items():
            send(stale_alert(source_type, partition_key, why), context.instance, get_settings())
        stale_count += len(stale)
    return dg.SensorResult(
        skip_reason=f"{len(sources)} instances checked, {stale_count} stale",
        cursor=json.dumps(first_seen),
    )


def freshness_check(source_type: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_asset_key(source_type),
        name=CHECK_NAME,
        description="Every instance loaded successfully within its freshness expectation "
        "(its `freshness:`, else twice its schedule's interval). Recorded by "
        "instance_freshness_sensor every 5 minutes.",
    )
    def instances_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sources = [
            s for s in load_source_instances(get_settings().tenants_file) if s.type == source_type
        ]
        now = datetime.now(UTC).timestamp()
        stale = stale_instances(context.instance, sources, {}, now)
        evaluation = freshness_evaluation(source_type, stale, len(sources))
        return dg.AssetCheckResult(
            passed=evaluation.passed,
            severity=evaluation.severity,
            description=evaluation.description,
            metadata=evaluation.metadata,
        )

    return instances_fresh


FRESHNESS_CHECKS = [freshness_check(t) for t in SOURCE_TYPES]
