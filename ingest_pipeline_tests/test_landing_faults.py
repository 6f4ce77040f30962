"""A fault stays where it starts, with real parts: objects on the S3 emulator, the landing
sensors and runs executed by Dagster, rows in a real warehouse. A bad line is one reject with
its reason; a bad object fails alone; the other objects of the run, and other tenants, complete."""

from __future__ import annotations

import json
from typing import Any

from ingest_pipeline.lib.json_depth import TOO_DEEP
from ingest_pipeline_tests.test_landing import Landing

DEPTH = 10_000  # far past Python's recursion limit: json.loads alone would raise RecursionError


def deep_json(depth: int = DEPTH) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def ndjson(*records: dict[str, Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def event(n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "event_type": "VIEW", "occurred_at": "2026-01-05T10:00:00Z"}


def rejects(landing: Landing) -> list[tuple[str, str, str]]:
    return landing.env.rows(
        "SELECT record_ref, reason, payload FROM normalized.rejected_records ORDER BY record_ref"
    )


def test_a_nul_line_in_a_json_log_is_one_reject_and_the_upload_completes(landing):
    """On PostgreSQL too, which refuses a NUL in text: the reject's payload holds its escape."""
    good = [json.dumps({"ts": "2026-01-05T10:00:00Z", "msg": f"line {n}"}) for n in range(100)]
    nul_line = b'{"msg": "bad\x00line"}'
    head = "".join(line + "\n" for line in good[:50]).encode()
    body = head + nul_line + b"\n" + "".join(line + "\n" for line in good[50:]).encode()
    key = "logs/acme/app.jsonl"
    landing.put(key, body)
    landing.tick("logs")

    upload = landing.uploads()[key]
    assert (upload["status"], upload["reason"]) == ("Completed", None)
    assert (upload["rows_loaded"], upload["rows_rejected"]) == (100, 1)
    assert landing.env.rows(
        "SELECT count(*), min(line_no), max(line_no) FROM normalized.log_records"
    ) == [(100, 1, 101)]
    offset = len(head) + nul_line.index(b"\x00")
    assert rejects(landing) == [
        (
            f"{key}:51",
            f"line 51: not text: NUL byte at byte offset {offset}",
            '{"msg": "bad\\x00line"}',
        )
    ]


def test_a_deep_event_line_is_a_reject_and_both_tenants_load(duck_landing):
    acme_key, globex_key = "events/acme/batch.ndjson", "events/globex/batch.ndjson"
    acme = ndjson(event(1), event(2)) + deep_json() + "\n" + ndjson(event(3), event(4))
    duck_landing.put(acme_key, acme)
    duck_landing.put(globex_key, ndjson(event(1), event(2)))
    runs = duck_landing.tick("events")  # one run per tenant: acme's bad line is not globex's
    assert {(r.tags["ingest/tenant"], r.tags["ingest/objects"]) for r in runs} == {
        ("acme", "1"),
        ("globex", "1"),
    }

    uploads = duck_landing.uploads()
    assert {k: (u["status"], u["reason"]) for k, u in uploads.items()} == {
        acme_key: ("Completed", None),
        globex_key: ("Completed", None),
    }
    assert (uploads[acme_key]["rows_loaded"], uploads[acme_key]["rows_rejected"]) == (4, 1)
    assert (uploads[globex_key]["rows_loaded"], uploads[globex_key]["rows_rejected"]) == (2, 0)
    assert duck_landing.env.rows(
        "SELECT tenant_id, count(*) FROM normalized.events GROUP BY tenant_id ORDER BY tenant_id"
    ) == [("acme", 4), ("globex", 2)]
    [(ref, reason, payload)] = rejects(duck_landing)
    assert (ref, reason) == (f"{acme_key}:3", "nested deeper than 64 levels")
    assert reason == TOO_DEEP and payload == deep_json()[:2000]


def test_a_deep_crawl_element_is_a_reject_and_the_batch_loads(duck_landing):
    """A JSON array is read element by element (issue 14): an element nested too deep is one
    reject, as an NDJSON line is (it failed the whole batch before)."""
    deep_key, good_key = "crawl/acme/furnico/deep.json", "crawl/acme/furnico/good.json"
    deep = '[{"externalId": "p-0"}, ' + deep_json() + ', {"externalId": "p-3"}]'
    duck_landing.put(deep_key, deep)
    duck_landing.put(good_key, json.dumps([{"externalId": "p-1"}, {"externalId": "p-2"}]))
    [run] = duck_landing.tick("crawl")
    assert run.tags["ingest/objects"] == "2"

    uploads = duck_landing.uploads()
    assert {k: (u["status"], u["reason"]) for k, u in uploads.items()} == {
        deep_key: ("Completed", None),
        good_key: ("Completed", None),
    }
    assert (uploads[deep_key]["rows_loaded"], uploads[deep_key]["rows_rejected"]) == (2, 1)
    assert (uploads[good_key]["rows_loaded"], uploads[good_key]["rows_rejected"]) == (2, 0)
    assert duck_landing.env.rows(
        "SELECT external_id FROM normalized.items ORDER BY external_id"
    ) == [("p-0",), ("p-1",), ("p-2",), ("p-3",)]
    assert rejects(duck_landing) == [(f"{deep_key}:2", TOO_DEEP, deep_json()[:2000])]


def test_a_cut_crawl_array_fails_after_its_whole_elements_and_its_fix_loads_once(duck_landing):
    """A JSON array that breaks off fails its upload with json's reason, once the reader gets
    there: the elements before it are written (as the lines of an NDJSON file before a damaged
    gzip tail) and counted. The whole file uploaded again under the key rewrites them: each
    item once."""
    key = "crawl/acme/furnico/batch.json"
    whole = json.dumps([{"externalId": f"p-{n}", "title": f"Item {n}"} for n in range(5)])
    cut = whole[: whole.index('"p-3"') + 3]  # inside the fourth element
    try:
        json.loads(cut)
    except json.JSONDecodeError as exc:
        reason = f"truncated or invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    duck_landing.put(key, cut)
    duck_landing.tick("crawl")

    def versions() -> list[tuple]:
        return duck_landing.env.rows(
            "SELECT status, reason, rows_loaded, rows_rejected FROM normalized.uploads "
            "ORDER BY queued_at, status"
        )

    assert versions() == [("Failed", reason, 3, 0)]
    assert reason.endswith("Unterminated string starting at")
    items = "SELECT external_id, count(*) FROM normalized.items GROUP BY 1 ORDER BY 1"
    assert duck_landing.env.rows(items) == [("p-0", 1), ("p-1", 1), ("p-2", 1)]

    duck_landing.put(key, whole)
    duck_landing.tick("crawl")
    assert versions() == [("Failed", reason, 3, 0), ("Completed", None, 5, 0)]
    assert duck_landing.env.rows(items) == [(f"p-{n}", 1) for n in range(5)]
    assert rejects(duck_landing) == []


def test_a_mostly_binary_log_still_fails_as_binary(duck_landing):
    text = b"".join(b"2026-01-05T10:00:%02dZ INFO api started %d\n" % (n, n) for n in range(2))
    binary_key, good_key = "logs/acme/blob.log", "logs/acme/app.log"
    duck_landing.put(binary_key, text + bytes(range(256)) * 40)  # 2 text lines, then 10 KiB
    duck_landing.put(good_key, text)
    duck_landing.tick("logs")

    uploads = duck_landing.uploads()
    assert (uploads[binary_key]["status"], uploads[binary_key]["reason"]) == (
        "Failed",
        "binary data, not a text log (33 of the first 35 lines are not text)",
    )
    assert (uploads[binary_key]["rows_loaded"], uploads[binary_key]["rows_rejected"]) == (0, 0)
    assert (uploads[good_key]["status"], uploads[good_key]["rows_loaded"]) == ("Completed", 2)
    assert duck_landing.env.rows(
        "SELECT object_key, count(*) FROM normalized.log_records GROUP BY object_key"
    ) == [(good_key, 2)]
    assert rejects(duck_landing) == []


def test_a_nul_escape_in_json_is_a_reject_not_a_failed_run(landing):
    """`\\u0000` is valid JSON, but PostgreSQL text and jsonb refuse it: on either warehouse it
    is a reject naming the field, and the batch's other rows are written."""
    log_key, events_key = "logs/acme/nul.jsonl", "events/acme/nul.ndjson"
    landing.put(log_key, '{"msg": "ok"}\n{"msg": "a\\u0000b"}\n')
    landing.put(events_key, ndjson(event(1), {**event(2), "properties": {"k": "\u0000"}}))
    landing.tick("logs")
    landing.tick("events")

    uploads = landing.uploads()
    assert {k: (u["status"], u["rows_loaded"], u["rows_rejected"]) for k, u in uploads.items()} == {
        log_key: ("Completed", 1, 1),
        events_key: ("Completed", 1, 1),
    }
    assert [(ref, reason) for ref, reason, _ in rejects(landing)] == [
        (
            f"{events_key}:2",
            "properties: holds a NUL character (\\u0000), which PostgreSQL cannot store",
        ),
        (
            f"{log_key}:2",
            "line 2: message: text holds a NUL character (\\u0000), which PostgreSQL cannot store",
        ),
    ]
