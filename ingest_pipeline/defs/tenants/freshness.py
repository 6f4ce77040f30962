"""Freshness: each source instance's last successful load against its expectation.

Rules kept here:
- An instance's expectation is its `freshness:` option (`2h`, `1d`), else twice the interval of
  its schedule (an hourly instance is stale after two hours without a successful load).
- Its last load is the newest materialization of its partition of its type's raw asset. An
  instance never loaded counts from when this sensor first saw it (kept in its cursor), so a
  new instance is not stale before it had its chance.
- Its normalized rows are as fresh as the older of its last load and the last run of its
  entity's normalized asset (`normalized/<entity>`): a normalize that stopped running makes
  every instance of the entity stale there, though their raw loads go on.
- Every FRESHNESS_INTERVAL_SECONDS, `instance_freshness_sensor` records the check
  `instances_fresh` of each raw asset and of each normalized asset of a pulled entity (passed, or
  WARN naming the stale instances and their ages) as a run-less check evaluation, the UI's check
  history of the asset; the same check evaluated by hand from the UI gives the same result. Each
  stale instance is alerted (kind `stale`, repeats folded): once for its raw asset, and for its
  normalized asset only while its raw is fresh (a stale load makes both stale: one alert). The
  check sensor leaves this check to it, and the normalize runs leave it out.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from croniter import croniter

from ingest_pipeline.defs.sources.raw_assets import normalized_asset_key, raw_asset_key
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


def last_materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    """When an unpartitioned asset (a normalized entity) was last materialized."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0].timestamp if records else None


def stale_instances(
    instance: dg.DagsterInstance,
    sources: list[SourceInstance],
    first_seen: dict[str, float],
    now: float,
    normalized_at: float | None = None,
    normalized: bool = False,
) -> dict[str, dict[str, Any]]:
    """{key: why it is stale} of the given instances: in raw (keyed by partition key), or with
    `normalized` in their entity's table, last normalized at `normalized_at` (keyed by
    `type:partition key`, the instances being of several types)."""
    stale = {}
    for source in sources:
        limit = expectation(source).total_seconds()
        loaded = last_loaded(instance, source)
        seen = first_seen.get(source.partition_key, now)
        since = loaded if loaded is not None else seen
        if normalized:  # as fresh as the older of its load and the last normalize run
            since = min(since, normalized_at if normalized_at is not None else seen)
        if now - since > limit:
            key = f"{source.type}:{source.partition_key}" if normalized else source.partition_key
            stale[key] = {
                "last_loaded": loaded and datetime.fromtimestamp(loaded, UTC).isoformat(),
                "age_hours": round((now - since) / 3600, 2),
                "expected_within_hours": round(limit / 3600, 2),
            }
    return stale


def freshness_evaluation(
    asset_key: dg.AssetKey, stale: dict[str, dict[str, Any]], checked: int
) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=asset_key,
        check_name=CHECK_NAME,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"stale: {', '.join(sorted(stale))}" if stale else f"{checked} instance(s) fresh"
        ),
        metadata={"stale": dg.MetadataValue.json(stale), "instances": checked},
    )


def stale_alert(
    source_type: str, partition_key: str, why: dict[str, Any], asset: dg.AssetKey | None = None
) -> Alert:
    """A stale instance's alert: in raw (`asset` None: not loaded), or in its normalized
    `asset` (loaded, not normalized)."""
    tenant, name = partition_key.split(".", 1)
    age, limit = why["age_hours"], why["expected_within_hours"]
    what = f"last normalized {age} h ago" if asset else f"last loaded {age} h ago"
    asset = asset or raw_asset_key(source_type)
    return Alert(
        kind="stale",
        text=f"{source_type} {partition_key} is stale in {asset.to_user_string()}: {what} "
        f"(expected within {limit} h)",
        subject=f"{asset.to_user_string()}.{source_type}.{partition_key}",
        tenant=tenant,
        source_instance=name,
        partition=partition_key,
        asset=asset.to_user_string(),
        check=CHECK_NAME,
        severity="WARN",
        url=asset_url(get_settings(), asset),
    )


def pulled_entities() -> dict[str, list[str]]:
    """{entity: the source types whose instances it normalizes}."""
    found: dict[str, list[str]] = {}
    for name, kind in SOURCE_TYPES.items():
        found.setdefault(kind.entity, []).append(name)
    return found


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
    stale_in_raw: set[str] = set()
    for source_type in sorted({s.type for s in sources}):
        of_type = [s for s in sources if s.type == source_type]
        stale = stale_instances(context.instance, of_type, first_seen, now)
        context.instance.report_runless_asset_event(
            freshness_evaluation(raw_asset_key(source_type), stale, len(of_type))
        )
        for partition_key, why in stale.items():
            send(stale_alert(source_type, partition_key, why), context.instance, get_settings())
            stale_in_raw.add(f"{source_type}:{partition_key}")
    stale_count = len(stale_in_raw)
    for entity, types in pulled_entities().items():
        of_entity = [s for s in sources if s.type in types]
        if not of_entity:
            continue
        key = normalized_asset_key(entity)
        at = last_materialized(context.instance, key)
        stale = stale_instances(context.instance, of_entity, first_seen, now, at, normalized=True)
        context.instance.report_runless_asset_event(
            freshness_evaluation(key, stale, len(of_entity))
        )
        for typed_key, why in stale.items():
            if typed_key not in stale_in_raw:  # loaded but not normalized: its own alert
                source_type, partition_key = typed_key.split(":", 1)
                alert = stale_alert(source_type, partition_key, why, key)
                send(alert, context.instance, get_settings())
                stale_count += 1
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
        return check_result(freshness_evaluation(raw_asset_key(source_type), stale, len(sources)))

    return instances_fresh


def normalized_freshness_check(entity: str, types: list[str]) -> dg.AssetChecksDefinition:
    key = normalized_asset_key(entity)

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        description="Every instance's rows normalized within its freshness expectation: its "
        "last load and the last normalize run both within it. Recorded by "
        "instance_freshness_sensor every 5 minutes.",
    )
    def instances_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        sources = [s for s in load_source_instances(get_settings().tenants_file) if s.type in types]
        now = datetime.now(UTC).timestamp()
        at = last_materialized(context.instance, key)
        stale = stale_instances(context.instance, sources, {}, now, at, normalized=True)
        return check_result(freshness_evaluation(key, stale, len(sources)))

    return instances_fresh


def check_result(evaluation: dg.AssetCheckEvaluation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=evaluation.passed,
        severity=evaluation.severity,
        description=evaluation.description,
        metadata=evaluation.metadata,
    )


FRESHNESS_CHECKS = [
    *(freshness_check(t) for t in SOURCE_TYPES),
    *(normalized_freshness_check(e, types) for e, types in pulled_entities().items()),
]
