"""Metrics that follow new and late rows: the days a write touched, re-built within minutes.

Rules kept here:
- Every asset that writes a table the rollups read records the metrics days its rows touched
  (`touched_days` metadata, domain/touched_days.py): the normalized assets and the landing
  assets. This sensor reads those materializations after its cursor (an event storage id) once
  every INGEST_METRICS_REFRESH_MINUTES and asks for the metrics runs of those days; an interval
  without new rows asks for nothing. Any write touches today, so today's partition is re-built
  at that interval while rows arrive.
- A touched day changes the rolling windows that include it: the weekly and monthly
  leaderboards of the WINDOW_DAYS - 1 days after it. Each touched day is re-built with those
  days (up to today); stretches that overlap or meet are merged, and each stretch is one run
  over that partition range (single-run backfill policy). Trending and the all-time leaderboard
  carry every earlier day forward: a day past the longest window takes a late day in when it is
  next built, and today's (the one apps read) is re-built by the same batch.
- No day is built by two runs at once: the sensor asks for nothing while a metrics run is queued
  or in progress (the days wait in the event log, after the cursor, for its next tick), and the
  metrics step takes the one slot of its pool (assets.py), which also holds back a run started
  by hand.

Why a sensor and not declarative automation: the trigger is a set of days carried in the
writers' metadata, not a partition of an upstream asset (the normalized assets are not
partitioned), and a batch of days must become one ranged run, not one run per partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from ingest_pipeline.defs.landing.kinds import LANDING_KINDS
from ingest_pipeline.defs.metrics.assets import metrics_assets
from ingest_pipeline.defs.metrics.schedules import metrics_daily_job
from ingest_pipeline.domain.touched_days import TOUCHED_DAYS
from ingest_pipeline.lib.resources import UNFINISHED_RUN_STATUSES
from ingest_pipeline.settings import get_settings

# The longest rolling window of a rollup (the monthly leaderboard: a day and the 29 before it,
# dbt_metrics/macros/leaderboard.sql).
WINDOW_DAYS = 30
PAGE = 1000


def rebuild_ranges(
    days: Iterable[date], today: date, first_day: date, window_days: int = WINDOW_DAYS
) -> list[tuple[date, date]]:
    """The inclusive day ranges to build for `days`: each day and the `window_days - 1` after
    it, within [first_day, today] (the partitions that exist), overlapping or adjacent ones
    merged, in day order."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(d for d in set(days) if first_day <= d <= today):
        last = min(day + timedelta(days=window_days - 1), today)
        if ranges and day <= ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((day, last))
    return ranges


def touching_assets() -> list[dg.AssetKey]:
    """The assets that write the rows the rollups read: the dbt sources (normalized/<table>)
    and every landing asset (some write those tables under their own key)."""
    sources = {key for key in metrics_assets.dependency_keys if key.path[0] == "normalized"}
    return sorted(sources | {kind.asset_key for kind in LANDING_KINDS}, key=str)


def touched_since(instance: dg.DagsterInstance, after: int) -> tuple[set[date], int]:
    """The days recorded by the touching assets' materializations after storage id `after`,
    and the newest storage id read (`after` when there were none)."""
    days: set[date] = set()
    newest = after
    for key in touching_assets():
        page: str | None = None
        while True:
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, after_storage_id=after),
                limit=PAGE,
                cursor=page,
                ascending=True,
            )
            for record in result.records:
                newest = max(newest, record.storage_id)
                materialization = record.asset_materialization
                entry = materialization.metadata.get(TOUCHED_DAYS) if materialization else None
                days.update(date.fromisoformat(day) for day in (entry.value if entry else []))
            if not result.has_more:
                break
            page = result.cursor
    return days, newest


def range_request(first: date, last: date, cursor: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"touched:{first}..{last}@{cursor}",
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            "ingest/metrics_refresh": "touched_days",
        },
    )


@dg.sensor(
    name="metrics_freshness_sensor",
    job=metrics_daily_job,
    minimum_interval_seconds=max(30, int(get_settings().metrics_refresh_minutes * 60)),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every INGEST_METRICS_REFRESH_MINUTES: one metrics run per stretch of the days "
    "new rows touched (and the days whose windows include them), today's included.",
)
def metrics_freshness_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    active = context.instance.get_runs(
        dg.RunsFilter(job_name=metrics_daily_job.name, statuses=UNFINISHED_RUN_STATUSES), limit=1
    )
    if active:
        return dg.SkipReason(f"metrics run {active[0].run_id} is not done: the days wait for it")
    after = int(context.cursor or 0)
    days, newest = touched_since(context.instance, after)
    today = datetime.now(UTC).date()
    first_day = date.fromisoformat(get_settings().metrics_start_date)
    ranges = rebuild_ranges(days, today, first_day)
    if not ranges:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("no new rows since the last refresh"), cursor=str(newest)
        )
    context.log.info(f"touched days {sorted(days)}: building {ranges}")
    return dg.SensorResult(
        run_requests=[range_request(first, last, newest) for first, last in ranges],
        cursor=str(newest),
    )
