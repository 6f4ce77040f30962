"""Fast tier: landing keys, the landing cursor's maths and the upload retry rules (pure), and
that every declared landing kind has its definitions and is uploadable exactly when declared so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest_pipeline.definitions import defs as load_defs
from ingest_pipeline.defs.landing.kinds import LANDING_KINDS
from ingest_pipeline.domain.landing import (
    KEY_LAYOUTS,
    UPLOAD_KINDS,
    LandingError,
    LandingKey,
    issue_upload_url,
    parse_object_key,
    safe_filename,
)
from ingest_pipeline.domain.landing_cursor import LandingCursor, batched, etag, run_key, take_new
from ingest_pipeline.domain.uploads import (
    FIRST_RETRY_SECONDS,
    MAX_ATTEMPTS,
    LandedObject,
    derived_upload_id,
    retry_or_fail,
)
from ingest_pipeline.settings import Settings

SECOND = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def obj(key: str, when: datetime = SECOND, tag: str = "e1") -> dict[str, Any]:
    return {"Key": key, "ETag": f'"{tag}"', "LastModified": when}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("logs/acme/2026/x.log", LandingKey("logs", "acme", "2026/x.log")),
        ("crawl/acme/partner1/b.json", LandingKey("crawl", "acme", "partner1/b.json", "partner1")),
        ("crawl/acme/b.json", LandingKey("crawl", "acme", "b.json")),
        (
            "webhooks/stripe/acme/2026-03-09/e.json",
            LandingKey("webhooks", "acme", "2026-03-09/e.json", "stripe"),
        ),
        ("webhooks/paypal/acme/2026-03-09/e.json", None),
        ("webhooks/stripe/acme", None),
        ("logs/acme/", None),
        ("logs//x.log", None),
        ("other/acme/x.log", None),
        ("logs/acme", None),
    ],
)
def test_object_keys_in_and_outside_the_layout(key: str, expected: LandingKey | None) -> None:
    assert parse_object_key(key) == expected


def test_safe_filenames() -> None:
    assert safe_filename("C:\\Users\\me\\report (final).csv") == "report_final_.csv"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("...") == "upload"
    long = safe_filename("a" * 300 + ".log.gz")
    assert long == "a" * 193 + ".log.gz" and len(long) == 200
    assert safe_filename("abcdef.csv", max_bytes=6) == "abcdef"  # no room for the extension


def test_the_cursor_round_trips_through_json() -> None:
    cursor = LandingCursor(SECOND, {"b@2", "a@1"}, 1_767_607_200.5)
    text = cursor.to_json()
    assert json.loads(text) == {
        "last_modified": "2026-01-05T10:00:00+00:00",
        "seen": ["a@1", "b@2"],
        "retries_checked_at": 1_767_607_200.5,
    }
    assert LandingCursor.from_json(text) == cursor
    assert LandingCursor.from_json(None) == LandingCursor.from_json("") == LandingCursor()
    assert cursor.list_since == SECOND - timedelta(microseconds=1)
    assert LandingCursor().list_since is None


def test_a_limited_tick_stops_at_the_last_object_taken() -> None:
    later = SECOND + timedelta(seconds=1)
    objects = [obj("logs/t/c", later), obj("logs/t/b"), obj("logs/t/a"), obj("logs/t/d", later)]
    first, cursor = take_new(objects, LandingCursor(retries_checked_at=5.0), limit=3)
    assert [o["Key"] for o in first] == ["logs/t/a", "logs/t/b", "logs/t/c"]
    assert (cursor.last_modified, cursor.seen_in_last_second) == (later, {"logs/t/c@e1"})
    assert cursor.retries_checked_at == 5.0
    second, cursor = take_new(objects, cursor, limit=3)
    assert [o["Key"] for o in second] == ["logs/t/d"]
    assert cursor.seen_in_last_second == {"logs/t/c@e1", "logs/t/d@e1"}
    assert take_new(objects, cursor, limit=3) == ([], cursor)


def test_new_bytes_under_a_seen_key_are_new_and_older_objects_are_not() -> None:
    cursor = LandingCursor(SECOND, {run_key(obj("logs/t/a"))})
    reuploaded = obj("logs/t/a", tag="e2")
    older = obj("logs/t/z", SECOND - timedelta(seconds=1))
    taken, _ = take_new([obj("logs/t/a"), reuploaded, older], cursor, limit=10)
    assert taken == [reuploaded]
    assert etag(reuploaded) == "e2" and run_key(reuploaded) == "logs/t/a@e2"


def test_batched_splits_a_backlog_into_runs() -> None:
    assert [len(b) for b in batched(list(range(1201)), 500)] == [500, 500, 201]
    assert batched([], 500) == []


@pytest.mark.parametrize(("attempts", "delay"), [(0, 30), (1, 30), (2, 60), (3, 120), (4, 240)])
def test_a_transient_fault_is_queued_again_with_a_doubling_backoff(
    attempts: int, delay: int
) -> None:
    result = retry_or_fail("u1", "read timed out", attempts, NOW, counts=(3, 1))
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("Queued", 3, 1)
    assert result.retry_after == NOW + timedelta(seconds=delay)
    assert result.reason == f"attempt {attempts} of 5 failed, retried: read timed out"


def test_the_fifth_attempt_fails_for_good() -> None:
    assert (MAX_ATTEMPTS, FIRST_RETRY_SECONDS) == (5, 30)
    result = retry_or_fail("u1", "read timed out", MAX_ATTEMPTS, NOW)
    assert (result.status, result.retry_after, result.finished_at) == ("Failed", None, NOW)
    assert result.reason == "gave up after 5 attempts: read timed out"


def test_landed_objects_name_their_channel_and_version() -> None:
    landed = LandedObject.from_key("u1", "acme", "crawl", "crawl/acme/p1/b.json", "e1", 10)
    assert (landed.channel, landed.version) == ("p1", "crawl/acme/p1/b.json@e1")
    assert landed.as_config()["size_bytes"] == 10
    first = derived_upload_id("logs/acme/x.log@e1")
    assert len(first) == 32 and first == derived_upload_id("logs/acme/x.log@e1")
    assert first != derived_upload_id("logs/acme/x.log@e2")


# --------------------------------------------------------------------------- declared kinds


def test_every_declared_kind_has_its_sensor_job_and_asset() -> None:
    defs = load_defs()
    assert [kind.name for kind in LANDING_KINDS] == [layout.kind for layout in KEY_LAYOUTS]
    for kind in LANDING_KINDS:
        sensor = defs.resolve_sensor_def(kind.sensor_name)
        assert [target.job_name for target in sensor.targets] == [kind.job_name]
        job = defs.resolve_job_def(kind.job_name)
        assert job.asset_layer.selected_asset_keys == {kind.asset_key}
        asset = defs.resolve_assets_def(kind.asset_key)
        assert asset.op.name == kind.op_name
        assert asset.descriptions_by_key[kind.asset_key] == kind.description
    landing_sensors = {s.name for s in defs.sensors if s.name.startswith("landing_")}
    assert landing_sensors == {kind.sensor_name for kind in LANDING_KINDS}
    landing_jobs = {j.name for j in defs.jobs if j.name.startswith("land_")}
    assert landing_jobs == {kind.job_name for kind in LANDING_KINDS}


def _refusal(kind: str) -> str:
    """Why issue_upload_url refuses `kind`, asked with an expiry it always refuses: a kind it
    accepts fails on the expiry instead, before any URL is presigned or row written."""
    with pytest.raises(LandingError) as refused:
        issue_upload_url(Settings(), "acme", kind, expires_seconds=0)
    return str(refused.value)


def test_upload_urls_are_issued_for_exactly_the_declared_upload_kinds() -> None:
    # `upload-url` and the intake's POST /uploads both ask issue_upload_url (test_upload_url.py).
    declared = [layout.kind for layout in KEY_LAYOUTS if layout.uploaded]
    assert list(UPLOAD_KINDS) == declared and "webhooks" not in declared  # the intake lands those
    for kind in declared:
        assert _refusal(kind).startswith("expires must be")
    for kind in [layout.kind for layout in KEY_LAYOUTS if not layout.uploaded] + ["videos"]:
        assert _refusal(kind) == f"kind must be one of {', '.join(declared)}, not {kind!r}"
