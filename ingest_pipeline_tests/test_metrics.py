"""dbt_metrics through Dagster on DuckDB and PostgreSQL, against hand-computed values.

Day D = 2026-01-10, tenant t1, weights view 1, copy 3, save 4, fork 5, vote 2, half-life 7 days.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from ingest_pipeline.cli.metrics_runs import QUIET_CONSOLE, build_metrics
from ingest_pipeline.domain.entities import (
    EVENTS,
    FEEDBACK,
    LOG_RECORDS,
    PAYMENTS,
    REJECTED_RECORDS,
)
from ingest_pipeline.domain.payments import upsert_payments
from ingest_pipeline.domain.touched_days import touched_days
from ingest_pipeline_tests.test_definitions import METRICS_MODELS

D = datetime(2026, 1, 10, tzinfo=UTC)
WEEK_BEFORE = D - timedelta(days=7)


def at(day: datetime, hh: int, mm: int, ss: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm, second=ss)


def event(n: int, kind: str, when: datetime, item: str, author: str, ip: str) -> dict[str, Any]:
    return {
        "tenant_id": "t1",
        "source_type": "app_events",
        "source_instance": "web",
        "event_id": f"e{n}",
        "event_type": kind,
        "occurred_at": when,
        "item_id": item,
        "author_id": author,
        "actor_id": f"user-{ip}",
        "ip": ip,
        "session_id": None,
        "properties": None,
        "raw_load_id": "L1",
        "ingested_at": when,
    }


def fixture_events() -> list[dict[str, Any]]:
    ip_a = [
        at(D, 10, 0),
        at(D, 10, 9, 59),
        at(D, 10, 10),
        at(D, 10, 20),
        at(D, 10, 30),
        at(D, 10, 40),
        at(D, 10, 50),
    ]  # counted: 10:00 10:10 10:20 10:30 10:40 (cap 5)
    ip_b = [at(D, 10, 5), at(D, 10, 14, 59)]  # counted: 10:05 only (9m59s later)
    rows = [event(n, "VIEW", t, "i1", "a1", "A") for n, t in enumerate(ip_a)]
    rows += [event(10 + n, "view", t, "i1", "a1", "B") for n, t in enumerate(ip_b)]
    kinds = ["COPY", "COPY", "SAVE", "FORK", "VOTE", "VOTE", "VOTE"]
    rows += [event(20 + n, k, at(D, 11, n), "i1", "a1", "A") for n, k in enumerate(kinds)]
    rows += [
        event(30, "VIEW", at(D, 12, 0), "i2", "a2", "C"),
        event(31, "COPY", at(D, 12, 1), "i2", "a2", "C"),
        event(32, "SAVE", at(D, 12, 2), "i3", "a2", "C"),
    ]
    rows += [event(40 + n, "FORK", at(WEEK_BEFORE, 9, n), "i4", "a3", "D") for n in range(2)]
    return rows


def load(env: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    env.warehouse.upsert(table, rows)


@pytest.fixture
def metrics_env(env):
    load(env, EVENTS, fixture_events())
    payment = {
        "tenant_id": "t1",
        "author_id": "a1",
        "item_id": "i1",
        "currency": "eur",
        "created_at": at(D, 9, 0),
        "updated_at": at(D, 9, 0),
    }
    load(
        env,
        PAYMENTS,
        [
            {**payment, "payment_id": "pi_1", "amount": 500, "status": "succeeded"},
            {**payment, "payment_id": "pi_2", "amount": 250, "status": "succeeded"},
            {**payment, "payment_id": "pi_3", "amount": 1000, "status": "refunded"},
        ],
    )
    feedback = {
        "tenant_id": "t1",
        "source_type": "playstore",
        "source_instance": "main",
        "created_at": at(D, 8, 0),
        "raw_load_id": "L",
        "ingested_at": at(D, 8, 0),
    }
    load(
        env,
        FEEDBACK,
        [{**feedback, "external_id": f"r{n}", "rating": r} for n, r in enumerate([5, 3, None])],
    )
    log = {
        "tenant_id": "t1",
        "upload_id": "u1",
        "object_key": "logs/t1/a.log",
        "service": "api",
        "ts": at(D, 7, 0),
        "ingested_at": at(D, 7, 0),
    }
    load(
        env,
        LOG_RECORDS,
        [
            {**log, "line_no": n, "level": lvl}
            for n, lvl in enumerate(["INFO", "INFO", "info", "ERROR"])
        ],
    )
    reject = {
        "tenant_id": "t1",
        "source_type": "app_events",
        "source_instance": "web",
        "reason": "bad",
        "payload": "{}",
        "raw_load_id": "L1",
        "rejected_at": at(D, 6, 0),
    }
    load(env, REJECTED_RECORDS, [{**reject, "record_ref": f"x:{n}"} for n in range(2)])
    return env


def build(env: Any, first: datetime, last: datetime | None = None) -> Any:
    """Materialize the metrics for one day, or a range of days as one run."""
    result = build_metrics(env.defs, env.instance, first.date(), (last or first).date())
    assert result.success
    checks = [e for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(c.event_specific_data.passed for c in checks)
    return result


# The marts: every model of the snapshot but the staging views.
MARTS = tuple(m for m in METRICS_MODELS if not m.startswith("stg_"))


def row_counts(result: Any) -> dict[str, int]:
    """`dagster/row_count` of each model materialized in the run."""
    counts = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        entry = materialization.metadata.get("dagster/row_count")
        if entry is not None:
            counts[materialization.asset_key.path[-1]] = entry.value
    return counts


def rows(env: Any, sql: str) -> list[tuple]:
    return [tuple(float(v) if isinstance(v, float) else v for v in r) for r in env.rows(sql)]


def test_item_and_author_metrics_with_anti_gaming(metrics_env):
    build(metrics_env, D)
    assert rows(
        metrics_env,
        "SELECT item_id, raw_views, views, copies, saves, forks, votes "
        "FROM metrics.item_metrics_daily WHERE metric_date = '2026-01-10' ORDER BY 1",
    ) == [
        ("i1", 9, 6, 2, 1, 1, 3),
        ("i2", 1, 1, 1, 0, 0, 0),
        ("i3", 0, 0, 0, 1, 0, 0),
    ]
    assert rows(
        metrics_env,
        "SELECT author_id, views, copies, saves, donation_count, donation_amount "
        "FROM metrics.author_metrics_daily WHERE metric_date = '2026-01-10' ORDER BY 1",
    ) == [
        ("a1", 6, 2, 1, 2, 750),
        ("a2", 1, 1, 1, 0, 0),
    ]


def test_event_feedback_log_and_pipeline_rollups(metrics_env):
    result = build(metrics_env, D)
    # Each mart's materialization carries its table's row count, on DuckDB (counted after dbt
    # released the file) and on PostgreSQL; views (staging) are not counted.
    counts = row_counts(result)
    assert counts == {
        model: rows(metrics_env, f"SELECT count(*) FROM metrics.{model}")[0][0] for model in MARTS
    }
    assert counts["event_metrics_day"] == 5 and counts["feedback_daily"] == 1
    # And the rows it wrote per day of its window: in the metadata and in metrics_builds.
    written = {
        e.step_materialization_data.materialization.asset_key.path[-1]: (
            e.step_materialization_data.materialization.metadata["rows_by_day"].value
        )
        for e in result.get_asset_materialization_events()
        if "rows_by_day" in e.step_materialization_data.materialization.metadata
    }
    assert written["event_metrics_day"] == {"2026-01-10": 5}
    assert set(written) == set(MARTS)
    assert rows(
        metrics_env,
        f"SELECT model, metric_date, rows_written FROM normalized.metrics_builds "
        f"WHERE run_id = '{result.run_id}' AND model IN ('event_metrics_day', 'feedback_daily')"
        " ORDER BY model",
    ) == [("event_metrics_day", "2026-01-10", 5), ("feedback_daily", "2026-01-10", 1)]
    day = "metric_date = '2026-01-10'"
    assert rows(
        metrics_env,
        f"SELECT event_type, events, distinct_actors FROM metrics.event_metrics_day "
        f"WHERE {day} ORDER BY 1",
    ) == [("COPY", 3, 2), ("FORK", 1, 1), ("SAVE", 2, 2), ("VIEW", 10, 3), ("VOTE", 3, 1)]
    assert rows(
        metrics_env,
        "SELECT events FROM metrics.event_metrics_hour WHERE event_type = 'VIEW' "
        "AND extract(hour FROM bucket_start) = 10",
    ) == [(9,)]
    assert rows(
        metrics_env,
        "SELECT count(*), sum(events) FROM metrics.event_metrics_minute WHERE event_type = 'VIEW'",
    ) == [(10, 10)]
    assert rows(
        metrics_env,
        f"SELECT source_type, feedback_count, rated_count, avg_rating "
        f"FROM metrics.feedback_daily WHERE {day}",
    ) == [("playstore", 3, 2, 4.0)]
    assert rows(
        metrics_env,
        f"SELECT level, lines, service_lines, error_rate FROM "
        f"metrics.log_metrics_daily WHERE {day} ORDER BY 1",
    ) == [("ERROR", 1, 4, 0.25), ("INFO", 3, 4, 0.25)]
    assert rows(
        metrics_env,
        f"SELECT source_type, rows_loaded, rows_rejected FROM "
        f"metrics.pipeline_stats WHERE {day} ORDER BY 1",
    ) == [("app_events", 19, 2), ("playstore", 3, 0)]


def test_range_in_one_run_decay_and_leaderboard_windows(metrics_env):
    build(metrics_env, WEEK_BEFORE, D)  # eight days, one run
    trending = dict(
        rows(
            metrics_env,
            "SELECT item_id, trending_score FROM metrics.trending_scores "
            "WHERE metric_date = '2026-01-10'",
        )
    )
    assert trending["i1"] == pytest.approx(27.0)
    assert trending["i4"] == pytest.approx(10 * 2 ** (-7 / 7))  # a week old: half
    assert trending["i2"] == pytest.approx(4.0) and trending["i3"] == pytest.approx(4.0)
    mid = rows(
        metrics_env,
        "SELECT trending_score FROM metrics.trending_scores "
        "WHERE item_id = 'i4' AND metric_date = '2026-01-06'",
    )
    assert mid[0][0] == pytest.approx(10 * 2 ** (-3 / 7))

    def board(window: str, entity: str) -> list[tuple]:
        column = "item_id" if entity == "item" else "author_id"
        return rows(
            metrics_env,
            f"SELECT rank, {column}, score FROM metrics.leaderboard_snapshots "
            f"WHERE metric_date = '2026-01-10' AND window_name = '{window}' "
            f"AND entity_type = '{entity}' ORDER BY rank",
        )

    # i2 and i3 tie at 4: the lower id ranks first. i4 (8 days... 7 days old) is out of the week.
    assert board("daily", "item") == [(1, "i1", 27), (2, "i2", 4), (3, "i3", 4)]
    assert board("weekly", "item") == [(1, "i1", 27), (2, "i2", 4), (3, "i3", 4)]
    assert board("monthly", "item") == [(1, "i1", 27), (2, "i4", 10), (3, "i2", 4), (4, "i3", 4)]
    assert board("all_time", "item") == board("monthly", "item")
    assert board("monthly", "author") == [(1, "a1", 27), (2, "a3", 10), (3, "a2", 8)]
    # The week-old day has its own snapshot.
    assert rows(
        metrics_env,
        "SELECT item_id, rank FROM metrics.leaderboard_snapshots "
        "WHERE metric_date = '2026-01-03' AND window_name = 'daily' AND entity_type = 'item'",
    ) == [("i4", 1)]


def test_late_event_rematerialized_and_rerun_identical(metrics_env):
    build(metrics_env, D)
    snapshot = "SELECT * FROM metrics.item_metrics_daily ORDER BY tenant_id, item_id, metric_date"
    board = (
        "SELECT window_name, entity_type, rank, item_id, author_id, score FROM "
        "metrics.leaderboard_snapshots ORDER BY 1, 2, 3"
    )
    before = (metrics_env.rows(snapshot), metrics_env.rows(board))
    build(metrics_env, D)
    assert (metrics_env.rows(snapshot), metrics_env.rows(board)) == before

    load(metrics_env, EVENTS, [event(99, "VOTE", at(D, 23, 59, 59), "i3", "a2", "C")])
    build(metrics_env, D)
    assert rows(
        metrics_env, "SELECT votes FROM metrics.item_metrics_daily WHERE item_id = 'i3'"
    ) == [(1,)]
    assert rows(
        metrics_env,
        "SELECT rank, item_id, score FROM metrics.leaderboard_snapshots "
        "WHERE window_name = 'daily' AND entity_type = 'item' ORDER BY rank",
    ) == [(1, "i1", 27), (2, "i3", 6), (3, "i2", 4)]


def test_one_mart_alone_on_a_fresh_warehouse(metrics_env):
    """Nothing of the metrics was ever built: a mart selected alone builds, the views and marts
    it reads are created first (marts empty: their days are not this run's)."""
    job = metrics_env.defs.resolve_job_def("metrics_daily")
    for model in ("trending_scores", "event_metrics_day"):
        result = job.execute_in_process(
            instance=metrics_env.instance,
            partition_key=D.date().isoformat(),
            asset_selection=[dg.AssetKey(["metrics", model])],
            run_config=QUIET_CONSOLE,
            raise_on_error=False,
        )
        assert result.success, model
        built = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert built == {model}
    assert rows(metrics_env, "SELECT count(*) FROM metrics.item_metrics_daily") == [(0,)]
    assert rows(metrics_env, "SELECT count(*) FROM metrics.trending_scores") == [(0,)]
    assert rows(metrics_env, "SELECT sum(events) FROM metrics.event_metrics_day") == [(19,)]


def test_touched_days_are_the_days_of_the_rows_written_since(metrics_env):
    """The days a write touched, read back from the warehouse: only rows written since the
    run's start count (the fixture's rows are older), payments included (upsert_payments stamps
    them), a feedback row without its own time on the day it was ingested, plus today."""
    since = datetime.now(UTC)
    late, older = D - timedelta(days=3), D - timedelta(days=20)
    load(metrics_env, EVENTS, [{**event(50, "VIEW", late, "i1", "a1", "A"), "ingested_at": since}])
    upsert_payments(
        metrics_env.warehouse,
        [{"tenant_id": "t1", "payment_id": "pi_9", "status": "succeeded", "created_at": older}],
    )
    feedback = {"tenant_id": "t1", "source_type": "playstore", "source_instance": "main"}
    load(
        metrics_env,
        FEEDBACK,
        [{**feedback, "external_id": "r9", "raw_load_id": "L", "ingested_at": since}],
    )
    tables = ("events", "payments", "feedback", "log_records", "items")
    today = since.date()
    assert touched_days(metrics_env.warehouse, tables, since, wrote_rows=True) == sorted(
        [older.date(), late.date(), today]
    )
    # Re-sending the same payment changes nothing, so it touches nothing.
    after = datetime.now(UTC)
    upsert_payments(
        metrics_env.warehouse,
        [{"tenant_id": "t1", "payment_id": "pi_9", "status": "succeeded", "created_at": older}],
    )
    assert touched_days(metrics_env.warehouse, tables, after, wrote_rows=False) == []
