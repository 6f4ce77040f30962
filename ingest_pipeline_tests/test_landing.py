"""The S3 landing end to end: objects on the S3 emulator (moto server, over HTTP), the landing
sensors evaluated through Dagster's sensor API, and the runs they request executed by Dagster."""

from __future__ import annotations

import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import dagster as dg
import pytest
import requests

from ingest_pipeline.domain.landing import issue_upload_url
from ingest_pipeline.domain.landing_cursor import LandingCursor, take_new
from ingest_pipeline.settings import get_settings


class Landing:
    """One test's bucket, sensors (with their cursors, as the daemon would keep them) and runs."""

    def __init__(self, env, endpoint: str, create_bucket: bool = True):
        self.env = env
        self.s3 = boto3.client("s3", endpoint_url=endpoint)
        if create_bucket:
            self.s3.create_bucket(Bucket="landing")
        self.cursors: dict[str, str | None] = {}
        self.run_keys: set[str] = set()

    def put(self, key: str, body: bytes | str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.s3.put_object(Bucket="landing", Key=key, Body=data)

    def evaluate(self, kind: str) -> dg.SensorResult:
        sensor = self.env.defs.resolve_sensor_def(f"landing_{kind}_sensor")
        context = dg.build_sensor_context(
            instance=self.env.instance,
            cursor=self.cursors.get(kind),
            resources=self.env.defs.resources,
        )
        result = sensor(context)
        self.cursors[kind] = result.cursor or self.cursors.get(kind)
        return result

    def tick(self, kind: str) -> list[dg.RunRequest]:
        """One sensor tick, then its runs."""
        return self.run(kind, self.evaluate(kind).run_requests or [])

    def run(self, kind: str, requests_: list[dg.RunRequest]) -> list[dg.RunRequest]:
        """Execute the runs requested, each once per run key (the daemon's rule)."""
        requests_ = [r for r in requests_ if r.run_key not in self.run_keys]
        job = self.env.defs.resolve_job_def(f"land_{kind}")
        for request in requests_:
            self.run_keys.add(request.run_key)
            result = job.execute_in_process(
                run_config=request.run_config, instance=self.env.instance, tags=request.tags
            )
            assert result.success
        return requests_

    def last_modified(self, key: str) -> Any:
        return self.s3.head_object(Bucket="landing", Key=key)["LastModified"]

    def uploads(self) -> dict[str, dict[str, Any]]:
        columns = ["object_key", "status", "reason", "rows_loaded", "rows_rejected", "size_bytes"]
        rows = self.env.rows(f"SELECT {', '.join(columns)} FROM normalized.uploads")
        return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


PLAIN_LOG = (
    "2026-01-05T10:00:00Z INFO api started\n"
    "2026-01-05T10:00:01Z ERROR api upstream timeout after 30s\n"
    "this line is not a log line\n"
    "2026-01-05T10:00:02Z WARN worker queue depth 120\n"
)


def test_presigned_upload_goes_created_queued_completed_with_rows(landing):
    upload = issue_upload_url(get_settings(), "acme", "logs", "api.log")
    assert requests.put(upload.url, data=PLAIN_LOG.encode(), timeout=10).status_code == 200

    [run] = landing.tick("logs")
    assert run.tags["ingest/objects"] == "1"
    [(upload_id, status, reason, loaded, rejected, size, created, queued, started, finished)] = (
        landing.env.rows(
            "SELECT upload_id, status, reason, rows_loaded, rows_rejected, size_bytes, "
            "created_at, queued_at, started_at, finished_at FROM normalized.uploads"
        )
    )
    assert (upload_id, status, reason) == (upload.upload_id, "Completed", None)
    assert (loaded, rejected, size) == (3, 1, len(PLAIN_LOG))
    assert created <= queued <= started <= finished
    records = landing.env.rows(
        "SELECT tenant_id, upload_id, line_no, level, service, message FROM normalized.log_records "
        "ORDER BY line_no"
    )
    assert records == [
        ("acme", upload_id, 1, "INFO", "api", "started"),
        ("acme", upload_id, 2, "ERROR", "api", "upstream timeout after 30s"),
        ("acme", upload_id, 4, "WARN", "worker", "queue depth 120"),
    ]
    [(ref, why)] = landing.env.rows(
        "SELECT record_ref, reason FROM normalized.rejected_records WHERE source_type = 'logs'"
    )
    not_a_log_line = "not a plain log line: expected '<timestamp> <LEVEL> <service> <message>'"
    assert (ref, why) == (f"{upload.object_key}:3", f"line 3: {not_a_log_line}")
    assert landing.tick("logs") == []  # nothing new: no run, nothing processed twice


def test_each_log_format_is_detected_per_file(duck_landing):
    files = {
        "logs/acme/app.jsonl": '{"ts": "2026-01-05T10:00:00Z", "level": "error", "service": "api", "msg": "boom", "user": 7}\n',
        "logs/acme/app.logfmt": 'ts=2026-01-05T10:00:00Z level=warn service=billing msg="card declined" amount=12\n',
        "logs/acme/access.log": '203.0.113.9 - - [05/Jan/2026:10:00:00 +0000] "GET /items/1 HTTP/1.1" 404 12 "-" "curl/8"\n',
        "logs/acme/plain.log.gz": gzip.compress(b"2026-01-05T10:00:00Z DEBUG cron tick\n"),
    }
    for key, body in files.items():
        duck_landing.put(key, body)
    [run] = duck_landing.tick("logs")
    assert run.tags["ingest/objects"] == "4"
    assert {k: u["status"] for k, u in duck_landing.uploads().items()} == dict.fromkeys(
        files, "Completed"
    )
    rows = dict(
        (key, (level, service, message))
        for key, level, service, message in duck_landing.env.rows(
            "SELECT object_key, level, service, message FROM normalized.log_records"
        )
    )
    assert rows["logs/acme/app.jsonl"] == ("ERROR", "api", "boom")
    assert rows["logs/acme/app.logfmt"] == ("WARN", "billing", "card declined")
    assert rows["logs/acme/access.log"][2].startswith("GET /items/1")
    assert rows["logs/acme/plain.log.gz"] == ("DEBUG", "cron", "tick")
    [(attributes,)] = duck_landing.env.rows(
        "SELECT attributes FROM normalized.log_records WHERE object_key = 'logs/acme/app.jsonl'"
    )
    assert json.loads(attributes) == {"user": 7}


def _events(*rows: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


EVENT_A = {
    "event_id": "e1",
    "event_type": "view",
    "occurred_at": "2026-01-05T10:00:00Z",
    "item_id": "i1",
    "author_id": "a1",
    "actor_id": "u1",
    "ip": "10.0.0.1",
    "session_id": "s1",
    "properties": {"ref": "home"},
}
EVENT_B = {
    "idempotency_key": "k2",
    "event_type": "VOTE",
    "occurred_at": "2026-01-05T10:01:00+01:00",
    "item_id": "i1",
}
EVENT_BAD = {"event_id": "e3", "event_type": "VIEW"}  # no occurred_at


def test_events_are_unique_per_tenant_across_repeated_and_overlapping_batches(landing):
    batch = _events(EVENT_A, EVENT_B, EVENT_BAD)
    landing.put("events/acme/2026-01-05/batch-1.ndjson", batch + "{not json\n")
    landing.put("events/acme/2026-01-05/batch-1-again.ndjson", batch)  # the same batch re-sent
    landing.put(
        "events/acme/2026-01-05/overlap.csv",
        "event_id,event_type,occurred_at,item_id,properties\n"
        'e1,VIEW,2026-01-05T10:00:00Z,i1,"{""ref"": ""home""}"\n'
        "e4,SAVE,2026-01-05T11:00:00Z,i2,\n",
    )
    landing.put("events/globex/batch.ndjson", _events(EVENT_A))  # same id, other tenant
    landing.tick("events")

    counts = {
        k: (u["status"], u["rows_loaded"], u["rows_rejected"]) for k, u in landing.uploads().items()
    }
    assert counts == {
        "events/acme/2026-01-05/batch-1.ndjson": ("Completed", 2, 2),  # no occurred_at, not JSON
        "events/acme/2026-01-05/batch-1-again.ndjson": ("Completed", 2, 1),
        "events/acme/2026-01-05/overlap.csv": ("Completed", 2, 0),
        "events/globex/batch.ndjson": ("Completed", 1, 0),
    }
    rows = landing.env.rows(
        "SELECT tenant_id, event_id, event_type, occurred_at, properties "
        "FROM normalized.events ORDER BY tenant_id, event_id"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("acme", "e1", "VIEW"),
        ("acme", "e4", "SAVE"),
        ("acme", "k2", "VOTE"),  # the idempotency key stands in for a missing event_id
        ("globex", "e1", "VIEW"),
    ]
    assert rows[2][3].isoformat().startswith("2026-01-05T09:01:00")  # +01:00 → UTC
    props = rows[0][4]
    assert (json.loads(props) if isinstance(props, str) else props) == {"ref": "home"}
    rejects = landing.env.rows(
        "SELECT tenant_id, source_type, source_instance, record_ref, reason "
        "FROM normalized.rejected_records ORDER BY record_ref"
    )
    no_time = "occurred_at: Input should be a valid datetime"
    not_json = "not valid JSON (Expecting property name enclosed in double quotes at column 2)"
    assert rejects == [
        ("acme", "app_events", "landing", "events/acme/2026-01-05/batch-1-again.ndjson:3", no_time),
        ("acme", "app_events", "landing", "events/acme/2026-01-05/batch-1.ndjson:3", no_time),
        ("acme", "app_events", "landing", "events/acme/2026-01-05/batch-1.ndjson:4", not_json),
    ]


def test_crawl_batches_upsert_items_by_partner_and_external_id(duck_landing):
    first = [
        {"externalId": "p-1", "title": "Sofa", "url": "https://partner.example/p-1"},
        {"externalId": "p-2", "title": "Lamp", "url": "https://partner.example/p-2"},
        {"title": "no id"},
    ]
    duck_landing.put("crawl/acme/furnico/2026-01-05.json", json.dumps(first))
    duck_landing.tick("crawl")
    changed = {"externalId": "p-1", "title": "Sofa (3 seats)", "url": "https://partner.example/p-1"}
    duck_landing.put("crawl/acme/furnico/2026-01-06.ndjson", json.dumps(changed) + "\n")
    duck_landing.put("crawl/acme/otherpartner/x.ndjson", json.dumps(changed) + "\n")
    duck_landing.tick("crawl")

    rows = duck_landing.env.rows(
        "SELECT source_type, source_instance, external_id, title FROM normalized.items "
        "ORDER BY source_instance, external_id"
    )
    assert rows == [
        ("crawl", "furnico", "p-1", "Sofa (3 seats)"),
        ("crawl", "furnico", "p-2", "Lamp"),
        ("crawl", "otherpartner", "p-1", "Sofa (3 seats)"),
    ]
    counts = {k: (u["rows_loaded"], u["rows_rejected"]) for k, u in duck_landing.uploads().items()}
    assert counts == {
        "crawl/acme/furnico/2026-01-05.json": (2, 1),
        "crawl/acme/furnico/2026-01-06.ndjson": (1, 0),
        "crawl/acme/otherpartner/x.ndjson": (1, 0),
    }
    assert duck_landing.env.rows(
        "SELECT source_instance, record_ref, reason FROM normalized.rejected_records"
    ) == [
        (
            "furnico",
            "crawl/acme/furnico/2026-01-05.json:3",
            "external_id: Input should be a valid string",
        )
    ]


@pytest.mark.parametrize(
    ("kind", "key", "body", "reason"),
    [
        ("logs", "logs/acme/bad.log.gz", b"\x1f\x8b\x08\x00garbage, not deflate", "gzip"),
        (
            "crawl",
            "crawl/acme/furnico/cut.json",
            b'[{"externalId": "p-1", "title": "So',
            "truncated or invalid JSON",
        ),
        ("events", "events/acme/junk.ndjson", bytes(range(256)) * 8, "binary data"),
        (
            "logs",
            "logs/acme/latin1.log",
            "2026-01-05T10:00:00Z INFO api café\n".encode("latin-1"),
            "UTF-8",
        ),
    ],
)
def test_poison_objects_end_failed_and_nothing_else_is_affected(
    duck_landing, kind, key, body, reason
):
    good = {
        "logs": PLAIN_LOG,
        "crawl": json.dumps([{"externalId": "ok"}]),
        "events": _events(EVENT_A),
    }[kind]
    good_key = f"{kind}/acme/{'furnico/' if kind == 'crawl' else ''}good.txt"
    duck_landing.put(key, body)
    duck_landing.put(good_key, good)
    [run] = duck_landing.tick(kind)  # one run holds both: the poison object fails alone
    assert run.tags["ingest/objects"] == "2"
    uploads = duck_landing.uploads()
    assert uploads[key]["status"] == "Failed" and reason in uploads[key]["reason"]
    assert (uploads[key]["rows_loaded"], uploads[key]["rows_rejected"]) == (0, 0)
    # The good object's rows, exactly: PLAIN_LOG has one line that is not a log line.
    loaded, rejected = {"logs": (3, 1), "crawl": (1, 0), "events": (1, 0)}[kind]
    assert (uploads[good_key]["status"], uploads[good_key]["rows_loaded"]) == ("Completed", loaded)
    assert uploads[good_key]["rows_rejected"] == rejected
    duck_landing.put(f"{kind}/acme/{'furnico/' if kind == 'crawl' else ''}later.txt", good)
    assert len(duck_landing.tick(kind)) == 1  # the sensor goes on


def test_empty_objects_bad_keys_and_unknown_tenants_are_reported_not_run(duck_landing):
    duck_landing.put("logs/acme/empty.log", b"")
    duck_landing.put("logs/stray.log", PLAIN_LOG)
    duck_landing.put("logs/nobody/app.log", PLAIN_LOG)
    result = duck_landing.evaluate("logs")
    assert not result.run_requests and "none to process" in result.skip_reason.skip_message
    reasons = {k: (u["status"], u["reason"]) for k, u in duck_landing.uploads().items()}
    assert reasons == {
        "logs/acme/empty.log": ("Failed", "empty object (0 bytes)"),
        "logs/stray.log": ("Failed", "key outside the layout logs/<tenant>/<name>"),
        "logs/nobody/app.log": ("Failed", "unknown tenant 'nobody' (not in the tenants file)"),
    }
    assert duck_landing.evaluate("logs").skip_reason.skip_message == "no new objects under logs/"


def test_objects_in_the_same_second_as_the_cursor_are_processed_once(duck_landing):
    # Two objects in one S3 second (LastModified has one-second resolution), and the cursor a
    # tick that listed only the first would leave (take_new on that listing): no race with the
    # clock, which a busy machine loses.
    a, b = _two_puts_in_one_second(duck_landing, "logs/acme/a.log", "logs/acme/b.log")
    _, after_a = take_new([a], LandingCursor(), limit=10)
    assert after_a.last_modified == b["LastModified"]  # the cursor stands in b's second
    duck_landing.cursors["logs"] = after_a.to_json()

    [second] = duck_landing.evaluate("logs").run_requests

    assert [o["key"] for o in _objects(second)] == ["logs/acme/b.log"]
    assert not duck_landing.evaluate("logs").run_requests  # a and b both seen now
    duck_landing.run("logs", [second])
    assert {k: u["status"] for k, u in duck_landing.uploads().items()} == {
        "logs/acme/b.log": "Completed"
    }
    assert duck_landing.env.rows("SELECT count(*) FROM normalized.log_records") == [(3,)]


def _two_puts_in_one_second(landing: Landing, first: str, second: str) -> tuple[dict, dict]:
    """Put both objects within one LastModified second (tried again at the next second if the
    two puts straddled one); their listing entries."""
    for _ in range(5):
        time.sleep(1 - time.time() % 1 + 0.02)  # start of a second
        landing.put(first, PLAIN_LOG)
        landing.put(second, PLAIN_LOG)
        if landing.last_modified(first) == landing.last_modified(second):
            listing = landing.s3.list_objects_v2(Bucket="landing", Prefix="logs/")["Contents"]
            by_key = {o["Key"]: o for o in listing}
            return by_key[first], by_key[second]
    raise AssertionError("five tries, never two puts within one second")


def _objects(request: dg.RunRequest) -> list[dict[str, Any]]:
    [op_config] = request.run_config["ops"].values()
    return op_config["config"]["objects"]


def test_a_duplicate_upload_is_not_processed_twice_but_new_content_is(duck_landing):
    duck_landing.put("logs/acme/app.log", PLAIN_LOG)
    duck_landing.tick("logs")
    time.sleep(1.1)  # a later LastModified, same bytes (same ETag)
    duck_landing.put("logs/acme/app.log", PLAIN_LOG)
    assert duck_landing.tick("logs") == []
    assert len(duck_landing.uploads()) == 1

    duck_landing.put("logs/acme/app.log", "2026-01-05T11:00:00Z INFO api replaced\n")
    assert len(duck_landing.tick("logs")) == 1
    assert duck_landing.env.rows("SELECT line_no, message FROM normalized.log_records") == [
        (1, "replaced")
    ]
    statuses = sorted(u["status"] for u in duck_landing.uploads().values())
    assert statuses == ["Completed"]  # a new version of the key re-uses its upload row


def test_a_backlog_of_waiting_objects_is_batched_into_bounded_ticks_and_runs(
    duck_landing, monkeypatch
):
    # The defaults (2,000 objects a tick, runs of 500) scaled down by five: the same shape of
    # ticks and runs over 2,000 objects instead of 10,000 (benchmarks/landing_events.py has those).
    monkeypatch.setenv("INGEST_LANDING_OBJECTS_PER_TICK", "400")
    monkeypatch.setenv("INGEST_LANDING_OBJECTS_PER_RUN", "100")

    def put(n: int) -> None:
        event = {**EVENT_A, "event_id": f"e{n}"}
        duck_landing.put(f"events/acme/{n:05d}.ndjson", json.dumps(event) + "\n")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, range(2_000)))
    ticks, requested, started = 0, [], time.monotonic()
    while requests_ := duck_landing.evaluate("events").run_requests:
        ticks += 1
        assert len(requests_) <= 4 and all(int(r.tags["ingest/objects"]) <= 100 for r in requests_)
        requested += requests_
    print(f"2,000 objects: {ticks} ticks in {time.monotonic() - started:.1f} s")
    assert ticks == 5 and len(requested) == 20
    keys = [o["key"] for r in requested for o in _objects(r)]
    assert len(keys) == len(set(keys)) == 2_000
    # The first run processes its 100 objects end to end.
    job = duck_landing.env.defs.resolve_job_def("land_events")
    started = time.monotonic()
    result = job.execute_in_process(
        run_config=requested[0].run_config, instance=duck_landing.env.instance
    )
    assert result.success
    print(f"one run of 100 objects: {time.monotonic() - started:.1f} s")
    assert duck_landing.env.rows("SELECT count(*) FROM normalized.events") == [(100,)]
