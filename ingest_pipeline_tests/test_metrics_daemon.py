"""Metrics that keep up, under the real Dagster daemon with its sensors and schedules on: events
landed for today and for three days ago reach today's minute buckets and leaderboards, and the
late day's weekly windows, within the refresh interval plus one run, with no one evaluating
anything by hand; metrics runs never overlap; a quiet interval launches nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import requests

from ingest_pipeline.domain.landing import issue_upload_url
from ingest_pipeline.settings import get_settings
from ingest_pipeline_tests.platform import running_daemon, wait_for_daemon

pytestmark = pytest.mark.integration

# Landing sensor (30 s) + landing run + refresh interval (30 s) + one metrics run, with room.
DEADLINE_SECONDS = 300


def event(n: int, kind: str, when: datetime, item: str) -> dict[str, str]:
    return {
        "event_id": f"e{n}",
        "event_type": kind,
        "occurred_at": when.isoformat(),
        "item_id": item,
        "author_id": f"author-{item}",
        "actor_id": f"user-{n}",
        "ip": f"10.0.0.{n}",
    }


# PostgreSQL: the test reads the warehouse while the daemon's runs write it.
@pytest.mark.parametrize("warehouse_url", ["postgres"], indirect=True)
def test_touched_days_are_rebuilt_by_the_daemon(env, s3_endpoint, tmp_path, monkeypatch):
    import boto3

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    if now.hour == 23 and now.minute >= 50:
        pytest.skip("too close to midnight UTC: today would end during the test")
    late = (now - timedelta(days=3)).replace(hour=12, minute=0)
    today = now.date()
    monkeypatch.setenv("INGEST_METRICS_REFRESH_MINUTES", "0.5")
    monkeypatch.setenv("INGEST_METRICS_START_DATE", (today - timedelta(days=40)).isoformat())
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="landing")
    env.write_tenants({"acme": []})
    events = [event(n, "VIEW", now - timedelta(minutes=1), "fresh") for n in range(3)]
    events += [event(10 + n, "COPY", late + timedelta(minutes=n), "late") for n in range(2)]
    upload = issue_upload_url(get_settings(), "acme", "events", "batch.ndjson")
    body = "\n".join(json.dumps(e) for e in events).encode()
    assert requests.put(upload.url, data=body, timeout=10).status_code == 200

    home, log = tmp_path / "dagster_home", tmp_path / "daemon.log"
    with running_daemon(home, log) as daemon:
        landed = time.monotonic()

        def built() -> bool:
            if not env.rows(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = 'metrics' "
                "AND table_name = 'leaderboard_snapshots'"
            ):
                return False  # no metrics run has built it yet
            return bool(
                env.rows(
                    "SELECT 1 FROM metrics.leaderboard_snapshots WHERE item_id = 'fresh' "
                    f"AND window_name = 'daily' AND metric_date = DATE '{today}'"
                )
            )

        wait_for_daemon(daemon, log, DEADLINE_SECONDS, built, "today's leaderboard has the event")
        took = time.monotonic() - landed
        with dg.DagsterInstance.from_config(str(home)) as instance:
            first = metrics_runs(instance)
            time.sleep(45)  # more than one refresh interval (30 s) without a new row
            quiet = metrics_runs(instance)
    tail = log.read_text(errors="replace")[-4000:]

    # Today's minute bucket and leaderboards.
    assert env.rows(
        "SELECT events FROM metrics.event_metrics_minute "
        f"WHERE event_type = 'VIEW' AND bucket_start = TIMESTAMP '{now - timedelta(minutes=1):%Y-%m-%d %H:%M}'"
    ) == [(3,)]
    # The late day, and the weekly windows of the days after it up to today (3 days later).
    assert env.rows(
        "SELECT copies FROM metrics.item_metrics_daily "
        f"WHERE item_id = 'late' AND metric_date = DATE '{late.date()}'"
    ) == [(2,)]
    weekly = env.rows(
        "SELECT metric_date FROM metrics.leaderboard_snapshots WHERE item_id = 'late' "
        "AND window_name = 'weekly' ORDER BY metric_date"
    )
    assert [d for (d,) in weekly] == [late.date() + timedelta(days=n) for n in range(4)], tail
    # One run built them all (the touched days and the days between are one stretch), launched
    # by the freshness sensor, and no two metrics runs ran at once.
    refreshes = [r for r in first if r.dagster_run.tags.get("ingest/metrics_refresh")]
    assert refreshes, tail
    assert refreshes[0].dagster_run.tags["dagster/asset_partition_range_start"] == str(late.date())
    assert refreshes[0].dagster_run.tags["dagster/asset_partition_range_end"] == str(today)
    spans = sorted((r.start_time, r.end_time) for r in first if r.start_time)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans)), spans
    assert took < DEADLINE_SECONDS
    # Nothing new landed: the next refresh launched nothing.
    assert [r.dagster_run.run_id for r in quiet] == [r.dagster_run.run_id for r in first]


def metrics_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return list(instance.get_run_records(dg.RunsFilter(job_name="metrics_daily")))
