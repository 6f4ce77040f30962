"""A real run of an instance whose feed refuses connections: its step is retried by the job's
RetryPolicy (a transient fault), then fails; a feed that answers with garbage is not retried."""

from __future__ import annotations

import dagster as dg

from ingest_pipeline.sandbox.feeds import FeedServer


def retries_of(env, run_id: str) -> int:
    records = env.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY
    ).records
    return len(records)


def test_a_refused_connection_is_retried_and_a_bad_feed_is_not(duck_env, feed_server: FeedServer):
    duck_env.write_tenants(
        {
            "acme": [{"type": "rss", "name": "down", "url": "http://127.0.0.1:9/feed.xml"}],
            "initech": [
                {"type": "rss", "name": "bad", "url": feed_server.server.url + "/broken.xml"}
            ],
        }
    )
    down, bad = duck_env.ingest()
    assert down.status == "failed" and bad.status == "failed"
    assert retries_of(duck_env, down.run_id) == 2  # INGEST_STEP_RETRIES' default
    assert retries_of(duck_env, bad.run_id) == 0
