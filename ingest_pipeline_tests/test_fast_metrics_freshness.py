"""The metrics refresh's pure parts: which day ranges a set of touched days re-builds, the day
expressions kept in step with the staging models, today's partition and the closing schedule."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg

from ingest_pipeline.defs.metrics.freshness import WINDOW_DAYS, rebuild_ranges
from ingest_pipeline.defs.metrics.partitions import daily_partitions
from ingest_pipeline.defs.metrics.schedules import metrics_daily_schedule
from ingest_pipeline.domain.touched_days import DAY_EXPRESSIONS

STAGING = Path(__file__).resolve().parents[1] / "dbt_metrics" / "models" / "staging"
TODAY = date(2026, 12, 7)
START = date(2025, 1, 1)


def test_a_late_day_rebuilds_the_window_after_it_up_to_today() -> None:
    # A late event on the 3rd: its weekly and monthly windows end on the 3rd .. 3rd + 29.
    third = date(2026, 11, 3)
    assert rebuild_ranges([third], TODAY, START) == [
        (third, third + timedelta(days=WINDOW_DAYS - 1))
    ]
    # Three days ago: up to today, not beyond.
    assert rebuild_ranges([TODAY - timedelta(days=3)], TODAY, START) == [
        (TODAY - timedelta(days=3), TODAY)
    ]


def test_overlapping_and_adjacent_stretches_merge_and_far_ones_stay_apart() -> None:
    days = [date(2026, 6, 1), date(2026, 6, 10), date(2026, 7, 1), date(2026, 9, 1), TODAY]
    assert rebuild_ranges(days, TODAY, START) == [
        (date(2026, 6, 1), date(2026, 7, 30)),  # 6/1..6/30, 6/10..7/9, 7/1..7/30 merged
        (date(2026, 9, 1), date(2026, 9, 30)),
        (TODAY, TODAY),
    ]
    # 7/31 starts right after 7/30 ends: one stretch.
    assert rebuild_ranges([date(2026, 7, 1), date(2026, 7, 31)], TODAY, START) == [
        (date(2026, 7, 1), date(2026, 8, 29))
    ]


def test_days_without_a_partition_are_left_out() -> None:
    assert rebuild_ranges([date(2024, 12, 31), TODAY + timedelta(days=1)], TODAY, START) == []
    assert rebuild_ranges([], TODAY, START) == []


def test_day_expressions_are_the_staging_models_own() -> None:
    for table, expression in DAY_EXPRESSIONS.items():
        model = (STAGING / f"stg_{table}.sql").read_text()
        assert f"utc_day('{expression}')" in model, table


def test_partitions_include_today() -> None:
    today = datetime.now(UTC).date().isoformat()
    assert daily_partitions.get_last_partition_key() == today


def test_closing_schedule_builds_yesterday() -> None:
    tick = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = metrics_daily_schedule(context)
    assert request.partition_key == "2026-12-06"
