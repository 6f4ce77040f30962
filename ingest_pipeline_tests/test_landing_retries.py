"""Uploads taken again: an object the store could not serve for a transient reason goes back to
Queued and the sensor takes it after its backoff; an upload left Processing by a run that died
is taken again at once; both are bounded by MAX_ATTEMPTS, then Failed with the last reason.
Real S3 emulator, real DuckDB, real Dagster runs; the store outage is a closed port."""

from __future__ import annotations

import json

import boto3
import dagster as dg
import pytest
from botocore.config import Config

from ingest_pipeline.defs.landing.assets import process_objects
from ingest_pipeline.domain.uploads import MAX_ATTEMPTS, LandedObject, mark_processing
from ingest_pipeline.lib.ports import free_port
from ingest_pipeline_tests.test_landing import Landing


@pytest.fixture
def landing(duck_env, s3_endpoint, monkeypatch) -> Landing:
    monkeypatch.setenv("INGEST_LANDING_RETRY_CHECK_SECONDS", "0")  # look on every tick
    duck_env.write_tenants({"acme": [], "globex": []})
    return Landing(duck_env, s3_endpoint)


def _event(event_id: str) -> str:
    return json.dumps(
        {"event_id": event_id, "event_type": "view", "occurred_at": "2026-01-05T10:00:00Z"}
    )


def _unreachable_store():
    """An S3 client for an endpoint where nothing listens: every read is a connection error."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=1),
    )


def _objects(landing: Landing) -> list[LandedObject]:
    """The objects of one tick's runs (one run per tenant), in launch order."""
    objects = []
    for request in landing.evaluate("events").run_requests:
        [config] = request.run_config["ops"].values()
        objects += [LandedObject(**o) for o in config["config"]["objects"]]
    return objects


def _uploads(landing: Landing) -> dict[str, tuple]:
    rows = landing.env.rows(
        "SELECT object_key, status, attempts, reason, retry_after IS NOT NULL "
        "FROM normalized.uploads"
    )
    return {key: rest for key, *rest in rows}


def _backoff_over(landing: Landing) -> None:
    landing.env.warehouse.execute(
        "UPDATE normalized.uploads SET retry_after = now() - INTERVAL 1 SECOND "
        "WHERE retry_after IS NOT NULL"
    )


def test_a_store_outage_requeues_the_objects_and_the_sensor_takes_them_after_the_backoff(landing):
    landing.put("events/acme/a.ndjson", _event("a1") + "\n" + _event("a2"))
    landing.put("events/globex/b.ndjson", _event("b1"))
    objects = _objects(landing)

    results = process_objects(
        landing.env.warehouse, _unreachable_store(), "landing", "events", objects
    )

    assert [r.status for r in results] == ["Queued", "Queued"]
    for status, attempts, reason, backing_off in _uploads(landing).values():
        assert (status, attempts, backing_off) == ("Queued", 1, True)
        assert reason.startswith(f"attempt 1 of {MAX_ATTEMPTS} failed, retried: cannot read")
        assert "Could not connect to the endpoint URL" in reason
    assert landing.tick("events") == []  # still backing off: nothing launched

    _backoff_over(landing)
    retries = landing.tick("events")  # one run per tenant

    assert all(r.run_key.startswith("events:retry@") for r in retries)
    assert sorted(r.tags["ingest/tenant"] for r in retries) == ["acme", "globex"]
    assert {k: tuple(v[:2]) for k, v in _uploads(landing).items()} == {
        "events/acme/a.ndjson": ("Completed", 2),
        "events/globex/b.ndjson": ("Completed", 2),
    }
    assert landing.env.rows("SELECT tenant_id, event_id FROM normalized.events ORDER BY 2") == [
        ("acme", "a1"),
        ("acme", "a2"),
        ("globex", "b1"),
    ]
    assert landing.tick("events") == []  # done: not taken again


def test_an_object_the_store_never_serves_is_failed_after_its_last_attempt(landing):
    landing.put("events/acme/a.ndjson", _event("a1"))
    objects = _objects(landing)  # launch 1
    for _ in range(MAX_ATTEMPTS - 1):
        process_objects(landing.env.warehouse, _unreachable_store(), "landing", "events", objects)
        _backoff_over(landing)
        objects = _objects(landing)  # launched again
    process_objects(landing.env.warehouse, _unreachable_store(), "landing", "events", objects)

    status, attempts, reason, backing_off = _uploads(landing)["events/acme/a.ndjson"]
    assert (status, attempts, backing_off) == ("Failed", MAX_ATTEMPTS, False)
    assert reason.startswith(f"gave up after {MAX_ATTEMPTS} attempts: cannot read the object")
    _backoff_over(landing)
    assert landing.tick("events") == []  # Failed for good


def test_uploads_whose_run_died_before_taking_them_are_taken_again(landing):
    landing.put("events/acme/a.ndjson", _event("a1"))
    [request] = landing.evaluate("events").run_requests  # launched, never started its step
    dead = dg.DagsterRun(
        job_name="land_events",
        run_id="died-at-start",
        status=dg.DagsterRunStatus.FAILURE,
        tags={"dagster/run_key": request.run_key},
    )
    landing.env.instance.add_run(dead)
    # The sensor leaves a batch to its run for a while after the tick that launched it.
    assert landing.evaluate("events").run_requests == []
    landing.env.warehouse.execute(
        "UPDATE normalized.uploads SET queued_at = queued_at - INTERVAL 1 MINUTE"
    )

    [retry] = landing.tick("events")

    assert retry.run_key.startswith("events:retry@")
    assert retry.tags["ingest/tenant"] == "acme"
    status, attempts, _, _ = _uploads(landing)["events/acme/a.ndjson"]
    assert (status, attempts) == ("Completed", 2)
    assert landing.env.rows("SELECT count(*) FROM normalized.events") == [(1,)]


def test_uploads_left_processing_by_a_dead_run_are_taken_again(landing):
    landing.put("events/acme/a.ndjson", _event("a1"))
    landing.put("events/acme/b.ndjson", _event("b1"))
    objects = _objects(landing)
    # A run took them and its process died: Dagster has no such run any more, or ended it.
    mark_processing(landing.env.warehouse, [o.upload_id for o in objects], "run-that-died")

    [retry] = landing.tick("events")

    assert retry.tags["ingest/objects"] == "2"
    assert {k: tuple(v[:2]) for k, v in _uploads(landing).items()} == {
        "events/acme/a.ndjson": ("Completed", 2),
        "events/acme/b.ndjson": ("Completed", 2),
    }
    assert landing.env.rows("SELECT count(*) FROM normalized.events") == [(2,)]


def test_an_upload_whose_runs_keep_dying_is_failed_naming_the_last_run(landing):
    landing.put("events/acme/a.ndjson", _event("a1"))
    objects = _objects(landing)
    for attempt in range(MAX_ATTEMPTS):
        mark_processing(landing.env.warehouse, [objects[0].upload_id], f"dead-{attempt}")
        requests = landing.evaluate("events").run_requests
        assert len(requests) == (0 if attempt == MAX_ATTEMPTS - 1 else 1)
    status, attempts, reason, _ = _uploads(landing)["events/acme/a.ndjson"]
    assert (status, attempts) == ("Failed", MAX_ATTEMPTS)
    assert reason == (
        f"gave up after {MAX_ATTEMPTS} attempts: run dead-{MAX_ATTEMPTS - 1} ended gone "
        "while processing it"
    )


def test_uploads_of_a_run_still_going_are_left_alone(landing):
    landing.put("events/acme/a.ndjson", _event("a1"))
    objects = _objects(landing)
    going = dg.DagsterRun(
        job_name="land_events", run_id="run-going", status=dg.DagsterRunStatus.STARTED
    )
    landing.env.instance.add_run(going)
    mark_processing(landing.env.warehouse, [objects[0].upload_id], going.run_id)

    assert landing.evaluate("events").run_requests == []

    landing.env.instance.report_run_failed(going)  # monitoring found its process gone
    [retry] = landing.evaluate("events").run_requests
    assert retry.tags["ingest/objects"] == "1"
