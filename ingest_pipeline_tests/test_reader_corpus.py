"""Property-based corpus over the readers of pushed and pulled text: whatever the bytes, a reader
yields rows and rejects with a reason, or raises its documented per-object error with a message
(LandedFileError, LogFileError, FeedError), never anything else: no RecursionError, no
UnicodeDecodeError, no ValueError from json or datetime that would fail a whole run.

The readers are called directly on in-memory streams (no Dagster run, no S3); each property runs
about 150 examples, so the file takes seconds."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_pipeline.defs.landing.loaders import (
    LandedFileError,
    Rejected,
    crawl_rows,
    event_rows,
    log_rows,
    webhook_document,
)
from ingest_pipeline.domain.log_formats import BadLine, LogFileError, LogLine, parse_lines
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib.json_depth import MAX_JSON_DEPTH, TOO_DEEP
from ingest_pipeline.lib.text_bodies import MAX_LINE_BYTES, open_text
from ingest_pipeline.sources.rss.source import FeedError, parse_feed

CORPUS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NOW = datetime(2026, 1, 5, tzinfo=UTC)
EVENTS_OBJECT = LandedObject("u1", "acme", "events", "events/acme/b.ndjson", "e", 1)
CRAWL_OBJECT = LandedObject("u2", "acme", "crawl", "crawl/acme/p/b.json", "e", 1, "p")
LOG_OBJECT = LandedObject("u3", "acme", "logs", "logs/acme/app.log", "e", 1)


def deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


GOOD_EVENT = {"event_id": "e1", "event_type": "VIEW", "occurred_at": "2026-01-05T10:00:00Z"}
GOOD_LOG = {"ts": "2026-01-05T10:00:00Z", "level": "info", "service": "api", "msg": "ok"}

# Lines a real upload may carry, good and bad, as bytes without their newline.
odd_json = st.sampled_from(
    [
        deep_json(MAX_JSON_DEPTH + 1),
        deep_json(5000),  # past Python's recursion limit
        "[" * 3000,
        '{"n": ' + "9" * 5000 + "}",  # beyond int's digit limit: ValueError, not JSONDecodeError
        '{"msg": "a\\u0000b"}',  # a NUL as a JSON escape: PostgreSQL refuses it
        '{"msg": "\\ud800"}',  # a lone surrogate
        '{"n": NaN, "properties": {"x": Infinity}}',
        '{"properties": {"k": "\\u0000"}, "event_id": "p", "event_type": "VIEW", '
        '"occurred_at": "2026-01-05T10:00:00Z"}',
        '{"ts": "9999-12-31T23:59:59-14:00", "msg": "beyond datetime"}',
        '{"ts": 1e300}',
        '{"occurred_at": "0000-01-01T00:00:00Z", "event_id": "z", "event_type": "VIEW"}',
        "null",
        "[]",
        '"text"',
    ]
).map(str.encode)
structured_line = st.one_of(
    st.just(json.dumps(GOOD_EVENT).encode()),
    st.just(json.dumps(GOOD_LOG).encode()),
    st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.integers(), st.none())).map(
        lambda d: json.dumps({**GOOD_EVENT, **d}).encode()
    ),
    odd_json,
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=80).map(lambda t: t.replace("\n", "").encode("utf-8", "surrogatepass")),
)


@st.composite
def uploads(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes or lines of near-miss JSON, sometimes gzipped, sometimes cut short."""
    if draw(st.booleans()):
        data = draw(st.binary(max_size=4096))
    else:
        lines = draw(st.lists(structured_line, max_size=30))
        data = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)
    if draw(st.booleans()):
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]  # a truncated upload
    return data


def drain(rows: Any, error: type[Exception]) -> list[Any]:
    """Every item of a reader; its documented error (with a message) ends it early."""
    got: list[Any] = []
    try:
        for row in rows:
            got.append(row)
    except error as exc:
        assert str(exc), "a file-level error must say why"
    return got


def assert_rows_or_rejects(rows: list[Any]) -> None:
    for row in rows:
        if isinstance(row, Rejected):
            assert row.line_no >= 1 and row.reason
        else:
            assert isinstance(row, dict) and row["tenant_id"] == "acme"


@CORPUS
@given(uploads())
def test_events_reader_yields_rows_or_rejects(data: bytes) -> None:
    assert_rows_or_rejects(drain(event_rows(EVENTS_OBJECT, io.BytesIO(data), NOW), LandedFileError))


@CORPUS
@given(uploads())
def test_crawl_reader_yields_rows_or_rejects(data: bytes) -> None:
    assert_rows_or_rejects(drain(crawl_rows(CRAWL_OBJECT, io.BytesIO(data), NOW), LandedFileError))


@CORPUS
@given(uploads(), st.sampled_from([16, 200, MAX_LINE_BYTES]))
def test_log_reader_yields_lines_or_bad_lines(data: bytes, max_line_bytes: int) -> None:
    lines = drain(parse_lines(io.BytesIO(data), max_line_bytes=max_line_bytes), LogFileError)
    for line in lines:
        assert isinstance(line, LogLine | BadLine)
        if isinstance(line, BadLine):
            assert line.reason.startswith(f"line {line.line_no}: ")
            # A reject's payload is storable text, and only its own line.
            assert "\x00" not in line.text and "\n" not in line.text
    assert [line.line_no for line in lines] == sorted({line.line_no for line in lines})
    rows = log_rows(LOG_OBJECT, io.BytesIO(data), NOW, max_line_bytes)
    assert_rows_or_rejects(drain(rows, LandedFileError))


@CORPUS
@given(uploads())
def test_open_text_reads_text_or_raises_a_log_file_error(data: bytes) -> None:
    try:
        assert isinstance(open_text(io.BytesIO(data)).read(), str)
    except LogFileError as exc:
        assert str(exc)


bad_bytes = st.one_of(
    st.binary(min_size=1, max_size=60)
    .map(lambda b: b.replace(b"\n", b"") + b"\x00")
    # A body that starts with gzip's magic is read as gzip (by content, whatever its name), and
    # refused whole when it is not: not a bad line among good ones (hypothesis drew one in CI).
    .filter(lambda b: not b.startswith(b"\x1f\x8b")),
    st.sampled_from([b"caf\xe9", b"\xff\xfe", b"\x1b[31mok\x07", b"\xc3"]),
)


@CORPUS
@given(
    st.lists(st.integers(0, 10**6), min_size=2, max_size=40),
    st.data(),
)
def test_a_minority_of_bad_lines_are_rejects_and_the_rest_rows(
    numbers: list[int], data: st.DataObject
) -> None:
    """Fewer bad lines than good ones (all within the sniffed head): each bad line is one
    BadLine with its reason, every good line a row; the file is never refused."""
    lines = [json.dumps({**GOOD_LOG, "n": n}).encode() for n in numbers]
    bad = data.draw(st.lists(bad_bytes, max_size=(len(lines) - 1) // 2))
    for line in bad:
        lines.insert(data.draw(st.integers(0, len(lines))), line)
    got = list(parse_lines(io.BytesIO(b"\n".join(lines))))
    assert len(got) == len(lines)
    assert sum(isinstance(r, LogLine) for r in got) == len(numbers)
    reasons = [r.reason for r in got if isinstance(r, BadLine)]
    assert len(reasons) == len(bad)
    assert all(" not text: " in r or " not valid UTF-8 at byte offset " in r for r in reasons)


@CORPUS
@given(st.integers(MAX_JSON_DEPTH + 1, 20_000), st.booleans())
def test_too_deep_json_is_a_reject_per_line_or_element_and_a_failure_per_document(
    depth: int, as_array: bool
) -> None:
    good = json.dumps(GOOD_EVENT)
    if as_array:  # an array is read element by element (lib/json_arrays.py), as NDJSON by line
        body = f"[{good}, {deep_json(depth)}, {good}]".encode()
        rows = list(event_rows(EVENTS_OBJECT, io.BytesIO(body), NOW))
        assert [(r.line_no, r.reason) for r in rows if isinstance(r, Rejected)] == [(2, TOO_DEEP)]
        assert sum(isinstance(r, dict) for r in rows) == 2
        try:
            webhook_document(deep_json(depth).encode())
        except LandedFileError as exc:
            assert str(exc) == TOO_DEEP
        else:
            raise AssertionError("a too-deep delivery must fail its object")
        return
    body = f"{good}\n{deep_json(depth)}\n{good}\n".encode()
    rows = list(event_rows(EVENTS_OBJECT, io.BytesIO(body), NOW))
    assert [r.reason for r in rows if isinstance(r, Rejected)] == [TOO_DEEP]
    assert sum(isinstance(r, dict) for r in rows) == 2


@CORPUS
@given(st.binary(max_size=4096))
def test_webhook_bodies_are_an_object_or_a_landed_file_error(data: bytes) -> None:
    try:
        document, raw = webhook_document(data)
    except LandedFileError as exc:
        assert str(exc)
        return
    assert isinstance(document, dict) and isinstance(raw, str)


# --------------------------------------------------------------------------- feeds

feed_text = st.text(max_size=40)
feed_dates = st.one_of(
    st.sampled_from(
        [
            "Sat, 01 Jan 0001 00:00:00 GMT",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-14:00",
            "Mon, 05 Jan 2026 10:00:00 +0000",
            "2026-13-45T99:99:99Z",
            "yesterday",
            "",
        ]
    ),
    feed_text,
)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


@st.composite
def feeds(draw: st.DrawFn) -> bytes:
    """An RSS 2.0 or Atom document with odd titles, links and dates; sometimes cut short."""
    entries = draw(st.lists(st.tuples(feed_text, feed_text, feed_dates), max_size=5))
    if draw(st.booleans()):
        items = "".join(
            f"<item><title>{_xml(t)}</title><guid>{_xml(g)}</guid>"
            f"<pubDate>{_xml(d)}</pubDate></item>"
            for t, g, d in entries
        )
        document = f'<?xml version="1.0"?><rss version="2.0"><channel>{items}</channel></rss>'
    else:
        items = "".join(
            f"<entry><title>{_xml(t)}</title><id>{_xml(g)}</id><updated>{_xml(d)}</updated></entry>"
            for t, g, d in entries
        )
        document = f'<feed xmlns="http://www.w3.org/2005/Atom">{items}</feed>'
    data = document.encode()
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return data


@CORPUS
@given(st.one_of(st.binary(max_size=2048), feeds()))
def test_feed_reader_yields_entries_or_a_feed_error(data: bytes) -> None:
    try:
        entries = parse_feed(data, "https://feeds.example/x.xml")
    except FeedError as exc:
        assert str(exc)
        return
    for entry in entries:
        assert isinstance(entry["entry_key"], str) and entry["entry_key"]
        for name in ("published_utc", "updated_utc"):
            assert entry[name] is None or datetime.fromisoformat(entry[name]).tzinfo is not None


def test_feed_bytes_naming_a_local_file_are_not_read_as_that_file(tmp_path: Any) -> None:
    """feedparser given bytes tries them as a file name first; parse_feed never lets it."""
    local = tmp_path / "feed.xml"
    local.write_text('<rss version="2.0"><channel><item><guid>secret</guid></item></channel></rss>')
    try:
        entries = parse_feed(str(local).encode(), "https://feeds.example/x.xml")
    except FeedError:
        entries = []
    assert entries == []
