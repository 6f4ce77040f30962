"""Fast tier: the landing's bulk path against its record path, over hostile and clean bodies.

`Sniffed.blocks` must give the lines `Sniffed.lines` gives (same numbers, text, problems and
errors, only grouped), and the bulk readers of events and crawl items (`event_batches`,
`crawl_batches`) the rows and rejects of their record paths (`event_rows`, `crawl_rows`): the
same rows, value for value, the same rejects (line, reason, raw text), the last line of a key
winning, and the same file-level error after the same rows.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_pipeline.defs.landing.loaders import (
    _CRAWL_NAMES,
    LandedFileError,
    LandingWriter,
    Rejected,
    _write,
    crawl_batches,
    crawl_rows,
    event_batches,
    event_rows,
)
from ingest_pipeline.domain.entities import EVENTS, ITEMS
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib.json_depth import TOO_DEEP
from ingest_pipeline.lib.text_bodies import (
    MAX_LINE_BYTES,
    MAX_TEXT_CHARS,
    Sniffed,
    TextBlock,
    TextBodyError,
    TextLine,
    sniff,
)
from ingest_pipeline_tests.test_reader_corpus import uploads

CORPUS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The crawl readers' examples cost about three times the events': half as many keep the fast
# tier under its 30 s (the hostile corpus is shared with the events tests).
CRAWL_CORPUS = settings(CORPUS, max_examples=100)


def as_lines(items: Any) -> list[TextLine]:
    """Blocks flattened into the TextLines `lines` gives (blank lines skipped, \\r dropped)."""
    out: list[TextLine] = []
    for item in items:
        if isinstance(item, TextLine):
            out.append(item)
            continue
        assert isinstance(item, TextBlock)
        pieces = item.text.split("\n")
        if item.text.endswith("\n"):
            pieces.pop()
        for n, piece in enumerate(pieces, item.first_line_no):
            text = piece.removesuffix("\r")
            if text.strip():
                out.append(TextLine(n, text, None))
    return out


def drain(items: Any) -> tuple[list[Any], str | None]:
    got: list[Any] = []
    try:
        for item in items:
            got.append(item)
    except TextBodyError as exc:
        return got, str(exc)
    return got, None


text_line = st.one_of(
    st.just(b'{"event_id": "e1"}'),
    st.text(max_size=40).map(lambda t: t.replace("\n", "").encode("utf-8", "surrogatepass")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b"  ", b"\r", b"\xef\xbb\xbfbom", b"a\x00b", b"caf\xe9", b"x" * 300]),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(text_line, max_size=40))
    data = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)
    if draw(st.booleans()):
        data += b"\n"
    if draw(st.booleans()):
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    return data


@CORPUS
@given(bodies(), st.sampled_from([16, 100, 250, 4096]), st.sampled_from([1, 7, 64, 1024]))
def test_blocks_are_the_lines_grouped(data: bytes, max_line_bytes: int, block_bytes: int) -> None:
    try:
        expected = drain(sniff(io.BytesIO(data)).lines(max_line_bytes))
    except TextBodyError as exc:  # refused whole: blocks are never reached
        try:
            sniff(io.BytesIO(data))
        except TextBodyError as again:
            assert str(again) == str(exc)
        return
    got, error = drain(sniff(io.BytesIO(data)).blocks(max_line_bytes, block_bytes))
    assert (as_lines(got), error) == expected
    assert all(len(line.text) <= MAX_TEXT_CHARS * 4 for line in got if isinstance(line, TextLine))


def test_clean_lines_come_as_blocks() -> None:
    body = b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(1000))
    got = list(sniff(io.BytesIO(body)).blocks(1024, 4096))
    assert all(isinstance(item, TextBlock) for item in got)
    assert got[0].first_line_no == 1 and len(got) < 20
    assert len(as_lines(got)) == 1000


# --------------------------------------------------------------------------- events


NOW = datetime(2026, 1, 5, tzinfo=UTC)
EVENTS_OBJECT = LandedObject("u1", "acme", "events", "events/acme/b.ndjson", "e", 1)

IDS = ["e1", "e2", "", "   ", None, " padded ", "\u00a0", "\u2003e3", "é", "x" * 257, 7, 0, True]
TYPES = [
    "view",
    "VIEW",
    "A.B:C-D_1",
    "",
    None,
    "ß",
    "\u0131",
    "X" * 65,
    "\ufb00",
    " save ",
    5,
    "A\x0b",
]
TIMES = [
    "2026-01-05T10:00:00Z",
    "2026-01-05 10:00",
    "2026-02-30",
    " 2026-01-05T10:00:00Z ",
    "0001-01-01T00:00:00+14:00",
    "yesterday",
    "",
    None,
    1767600000,
]
TEXTS = ["item-1", "", " ", None, "é", "a\u0000b", "\ud800", 12, 1.5, {"a": 1}, "x" * 300]
PROPERTIES = [
    None,
    {},
    {"ref": "home", "pos": 3},
    {"z": 1, "a": {"c": True, "b": False}},
    {"a": None},
    {"a": 1.5},
    {"a": 'x"y'},
    {"a": "é"},
    {"a": "\u0000"},
    {"a\u00e9": 1},
    {"a": [1, 2]},
    {"a": 2**70},
    {"a": float("nan")},
    {"a": "\x7f"},
    {"a": "2026-01-05T10:00:00"},
    [1],
    "text",
    '{"a": 1}',
    "",
]
event_records = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from(IDS),
        "event_type": st.sampled_from(TYPES),
        "occurred_at": st.sampled_from(TIMES),
    },
    optional={
        "idempotency_key": st.sampled_from(IDS),
        "item_id": st.sampled_from(TEXTS),
        "session_id": st.sampled_from(TEXTS),
        "properties": st.sampled_from(PROPERTIES),
        "extra": st.sampled_from([1, "x", None, [1, "a"], {"n": float("inf")}]),
    },
)


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    record = draw(event_records)
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    odd = draw(st.integers(0, 9))
    if odd == 0:
        line = draw(
            st.sampled_from(
                [
                    "not json",
                    "{}",
                    '{"a": 1}{"b": 2}',
                    "[1]",
                    "{",
                    '{"event_id": "d", "event_id": "e", "event_type": "VIEW"}',
                    '{"event_id": "n", "event_type": "VIEW", "occurred_at": "2026-01-05", '
                    '"n": ' + "9" * 5000 + "}",
                    '{"event_id": "d", "event_type": "VIEW", "occurred_at": "2026-01-05", '
                    '"properties": ' + '{"a":' * 70 + "1" + "}" * 70 + "}",
                    "\u00a0" + json.dumps(GOOD),
                    json.dumps(GOOD) + "\x0c",
                    "   ",
                    "",
                    "\u2003",
                    "a\x00b",
                ]
            )
        )
    elif odd == 1:
        line = " \t" + line + "  "
    data = line.encode("utf-8", "surrogatepass")
    return data


GOOD = {"event_id": "g1", "event_type": "VIEW", "occurred_at": "2026-01-05T10:00:00Z"}


def as_stored(rows: list[dict[str, Any]], table: Any = EVENTS) -> list[dict[str, Any]]:
    return table.to_arrow(rows).to_pylist() if rows else []


def read_both(
    data: bytes,
    max_line_bytes: int = MAX_LINE_BYTES,
    readers: tuple[Any, Any] = (event_rows, event_batches),
    obj: LandedObject = EVENTS_OBJECT,
    table: Any = EVENTS,
) -> tuple[Any, Any]:
    """(rows as stored, rejects by line, the file's error) of the record path and the bulk one."""

    def run(reader: Any) -> Any:
        rows: list[dict[str, Any]] = []
        rejects: list[Rejected] = []
        error = None
        try:
            for item in reader(obj, io.BytesIO(data), NOW, max_line_bytes):
                if isinstance(item, Rejected):
                    rejects.append(item)
                elif isinstance(item, pa.Table):
                    rows.extend(item.to_pylist())
                else:
                    rows.extend(as_stored([item], table))
        except LandedFileError as exc:
            error = str(exc)
        return rows, sorted(rejects, key=lambda r: r.line_no), error

    return run(readers[0]), run(readers[1])


@CORPUS
@given(st.lists(event_lines(), max_size=40), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_the_bulk_events_reader_is_the_record_path(
    lines: list[bytes], newline: bytes, gzipped: bool
) -> None:
    data = newline.join(lines)
    if gzipped:
        data = gzip.compress(data)
    record, bulk = read_both(data)
    assert bulk == record


@CORPUS
@given(uploads(), st.sampled_from([16, 200, MAX_LINE_BYTES]))
def test_the_bulk_events_reader_is_the_record_path_on_hostile_bodies(
    data: bytes, max_line_bytes: int
) -> None:
    record, bulk = read_both(data, max_line_bytes)
    assert bulk == record


def test_clean_events_are_settled_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        json.dumps(
            {
                "event_id": f"e{n}",
                "event_type": "view",
                "occurred_at": f"2026-01-{n % 28 + 1:02d}T10:00:00Z",
                "item_id": f"item-{n}",
                "properties": {"ref": "home", "pos": n, "flags": {"new": n % 2 == 0}},
            }
        )
        for n in range(3000)
    ]
    record_path = spy_on_the_record_path(monkeypatch, "_EVENTS_IN_BULK")
    record, bulk = read_both("\n".join(lines).encode())
    assert bulk == record and len(bulk[0]) == 3000 and not record_path
    assert bulk[0][0]["properties"] == '{"flags": {"new": true}, "pos": 0, "ref": "home"}'


def test_the_last_line_of_a_key_wins_across_bulk_and_record_rows() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.upserts: list[tuple[str, Any]] = []

        def upsert(self, table: Any, rows: Any, **_: Any) -> None:
            rows = rows if isinstance(rows, pa.Table) else as_stored(list(rows))
            self.upserts.append((table.name, rows))

        def execute(self, *_: Any) -> None:
            raise AssertionError("events replace no object's rows")

    warehouse = Recorder()
    writer = LandingWriter(warehouse, table=EVENTS, source="app_events")  # type: ignore[arg-type]
    writer.begin(EVENTS_OBJECT)
    lines = [
        {**GOOD, "event_id": "a", "item_id": "first"},
        {**GOOD, "event_id": "b", "item_id": "bulk"},
        {**GOOD, "event_id": "a", "item_id": "second", "properties": {"x": 1.5}},  # record path
        {**GOOD, "event_id": "b", "item_id": "last"},
    ]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    read_events_into(writer, body)
    [row] = event_rows(
        EVENTS_OBJECT, io.BytesIO(json.dumps({**GOOD, "event_id": "c"}).encode()), NOW
    )
    assert isinstance(row, dict)
    writer.add(row)  # a row of the record path after the batches
    writer.flush()
    [(_, events), (_, rejects)] = warehouse.upserts
    assert rejects == [] or rejects.num_rows == 0
    stored = {row["event_id"]: row for row in events.to_pylist()}
    assert {k: v["item_id"] for k, v in stored.items()} == {"a": "second", "b": "last", "c": None}
    assert stored["a"]["properties"] == '{"x": 1.5}'
    assert writer.counts.loaded == 5


def spy_on_the_record_path(monkeypatch: pytest.MonkeyPatch, kind: str) -> list[Any]:
    """The lines the bulk reader of `kind` sends to the record path, recorded as they go."""
    from ingest_pipeline.defs.landing import loaders

    bulk_kind = getattr(loaders, kind)
    calls: list[Any] = []

    def record(*args: Any) -> Any:
        calls.append(args)
        return bulk_kind.record(*args)

    monkeypatch.setattr(loaders, kind, dataclasses.replace(bulk_kind, record=record))
    return calls


def read_events_into(writer: LandingWriter, body: bytes) -> None:
    _write(writer, event_batches(EVENTS_OBJECT, io.BytesIO(body), NOW), "landing")


def test_a_read_fault_after_over_long_lines_names_the_line_lines_names() -> None:
    """A truncated gzip body of over-long lines and a blank one: the blocks reader counted the
    lines it had read past the last over-long one out of the fault's line number (7, not 8;
    hypothesis drew it)."""
    data = (
        b"\x1f\x8b\x08\x00\x9dr\x16k\x02\xff\xabVJ-K\xcd+\x89\xcfLQ\xb2RPJ5T\xaa\xe5\xaa\xa6"
        b"\xad\x10\x17"
    )
    expected = drain(sniff(io.BytesIO(data)).lines(16))
    got, error = drain(sniff(io.BytesIO(data)).blocks(16, 7))
    assert (as_lines(got), error) == expected
    assert error is not None and error.endswith("(reading line 8)")


# --------------------------------------------------------------------------- crawl

CRAWL_OBJECT = LandedObject("u2", "acme", "crawl", "crawl/acme/partner/b.ndjson", "e", 1, "partner")
CRAWL_READERS = (crawl_rows, crawl_batches)


# Text values, good and hostile ones; values of other JSON kinds (which make Arrow
# refuse the line, and the group it is in down to 16 lines) come rarely, so most groups reach
# the bulk path.
def good_or_hostile(good: list[Any], hostile: list[Any]) -> st.SearchStrategy[Any]:
    """A hostile value about one time in eight (most lines must be good for a group to be; see
    `crawl_lines` on why the rare case is keyed to a value in the middle)."""
    good_values, hostile_values = st.sampled_from(good), st.sampled_from(hostile)
    return st.integers(0, 7).flatmap(lambda n: hostile_values if n == 5 else good_values)


CRAWL_IDS = good_or_hostile(
    ["a1", "a2", "a3", " a1 "],
    ["", "   ", None, "\u00a0", "\u2003b", "é", "a\u0000", "\x1f", "\ud800"],
)
CRAWL_TEXTS = good_or_hostile(
    ["T", "Title", " pad ", "é", None],
    ["", " ", "x\u0000y", "\u0085", "\u3000a", "t" * 300, "a\x0bb\x1c"],
)
TYPED = [7, True, 1.5, 1767600000, [1], {}, {"a": "b"}]
URLS = good_or_hostile(
    ["https://example.org/a", "http://x", " https://example.org/pad ", None],
    [
        "ftp://example.org",
        "https://",
        "https:// x",
        "https://é.example/",
        "HTTPS://EXAMPLE.ORG",
        "https://a\u0000b",
        "https://a\tb",
        "",
    ],
)
DATES = good_or_hostile(
    ["2026-01-05T10:00:00Z", "2026-01-05 10:00", "2026-01-05", None],
    [
        "2026-02-30",
        " 2026-01-05T10:00:00+02:00 ",
        "2026-01-05T10:00:00.1234567Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "yesterday",
        "",
        "\u2003",
    ],
)
CRAWL_JSON_NAMES = sorted(name for names in _CRAWL_NAMES.values() for name in names)
crawl_records = st.fixed_dictionaries(
    {},
    optional={
        "externalId": CRAWL_IDS,
        "external_id": CRAWL_IDS,
        "id": CRAWL_IDS,
        "title": CRAWL_TEXTS,
        "name": CRAWL_TEXTS,
        "summary": CRAWL_TEXTS,
        "description": CRAWL_TEXTS,
        "url": URLS,
        "link": URLS,
        "author": CRAWL_TEXTS,
        "authorName": CRAWL_TEXTS,
        "publishedAt": DATES,
        "published_at": DATES,
        "updatedAt": DATES,
        "updated_at": DATES,
        "tags": st.sampled_from([["a", "b"], {"k": [1, {"v": None}]}, "t", 3, float("nan")]),
    },
)
GOOD_ITEM = {"id": "g1", "title": "Good", "url": "https://example.org/g"}


@st.composite
def crawl_lines(draw: st.DrawFn) -> bytes:
    record = draw(crawl_records)
    if draw(st.integers(0, 9)) != 7:  # most items have an id under one of its names
        record.setdefault(draw(st.sampled_from(_CRAWL_NAMES["external_id"])), draw(CRAWL_IDS))
    line = json.dumps(record, ensure_ascii=draw(st.booleans()))
    # Hypothesis draws an integer's bounds and small values often: the rare cases (each line of
    # them spoils the bulk path for its group) are keyed to values in the middle.
    odd = draw(st.integers(0, 29))
    if odd == 13:  # a value of another kind under one of the names
        record = draw(crawl_records)
        record[draw(st.sampled_from(CRAWL_JSON_NAMES))] = draw(st.sampled_from(TYPED))
        line = json.dumps(record)
    if odd == 10:
        line = draw(
            st.sampled_from(
                [
                    "not json",
                    "{}",
                    "[1]",
                    "null",
                    '"text"',
                    "{",
                    '{"a": 1}{"b": 2}',
                    '{"id": "d1", "id": "d2", "title": "dup"}',  # the last of a name wins
                    '{"id": "d3", "title": "a", "title": ""}',
                    '{"i\\u0064": "esc", "t\\u0069tle": "escaped names"}',
                    '{"id": "n", "big": ' + "9" * 5000 + "}",
                    '{"id": "deep", "tags": ' + '{"a":' * 70 + "1" + "}" * 70 + "}",
                    '{"id": "deep2", "tags": ' + "[" * 64 + "]" * 64 + "}",
                    '{"id": "brackets", "title": "' + "{[" * 40 + '"}',
                    '{"id": "x", "extra": Infinity}',
                    '{"id": "ctl", "title": "a\x01b"}',
                    "\u00a0" + json.dumps(GOOD_ITEM),
                    json.dumps(GOOD_ITEM) + "\x0c",
                    json.dumps({**GOOD_ITEM, "title": "x" * 5000}),
                    "   ",
                    "",
                    "a\x00b",
                ]
            )
        )
    elif odd == 11:
        line = " \t" + line + "  "
    elif odd == 12:  # a key seen again: the last line wins
        line = json.dumps({**GOOD_ITEM, "title": draw(CRAWL_TEXTS)})
    data = line.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 49)) == 23:  # bytes that are not UTF-8 (the record path's reason)
        data = data[:1] + b"\xe9" + data[1:]
    return data


def read_crawl_both(data: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[Any, Any]:
    return read_both(data, max_line_bytes, CRAWL_READERS, CRAWL_OBJECT, ITEMS)


@CRAWL_CORPUS
@given(
    st.lists(crawl_lines(), max_size=40),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
    st.sampled_from([200, MAX_LINE_BYTES]),
)
def test_the_bulk_crawl_reader_is_the_record_path(
    lines: list[bytes], newline: bytes, gzipped: bool, max_line_bytes: int
) -> None:
    data = newline.join(lines)
    if gzipped:
        data = gzip.compress(data)
    record, bulk = read_crawl_both(data, max_line_bytes)
    assert bulk == record


@CRAWL_CORPUS
@given(uploads(), st.sampled_from([16, 200, MAX_LINE_BYTES]))
def test_the_bulk_crawl_reader_is_the_record_path_on_hostile_bodies(
    data: bytes, max_line_bytes: int
) -> None:
    record, bulk = read_crawl_both(data, max_line_bytes)
    assert bulk == record


def test_clean_crawl_items_are_settled_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [
        ("externalId", "title", "url"),
        ("id", "name", "link"),
        ("external_id", "title", "url"),
    ]
    lines = []
    for n in range(3000):
        key, title, url = names[n % 3]
        item = {key: f"i{n}", title: f" Item {n} ", url: f"https://example.org/{n}"}
        item |= {"publishedAt": f"2026-01-{n % 28 + 1:02d}T10:00:00Z", "tags": ["a", {"b": n}]}
        lines.append(json.dumps(item))
    record_path = spy_on_the_record_path(monkeypatch, "_CRAWL_IN_BULK")
    record, bulk = read_crawl_both("\n".join(lines).encode())
    assert bulk == record and len(bulk[0]) == 3000 and not record_path
    assert bulk[0][1]["external_id"] == "i1" and bulk[0][1]["title"] == "Item 1"
    assert bulk[0][2]["url"] == "https://example.org/2"


def test_an_object_whose_lines_arrow_refuses_goes_by_the_record_path_after_one_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partner whose ids are numbers (the bulk path reads them as text, so Arrow refuses every
    line): after a group of them, the rest of the object is not offered to Arrow at all; the
    rows are the record path's either way."""
    from ingest_pipeline.defs.landing import loaders

    monkeypatch.setattr(loaders, "BULK_LINES", 200)
    monkeypatch.setattr(loaders, "GIVE_UP_LINES", 200)
    monkeypatch.setattr(loaders, "BULK_THREADS", 1)
    blocks = Sniffed.blocks  # blocks of 2 KiB: groups of about 200 lines

    def small_blocks(self: Sniffed, max_line_bytes: int = MAX_LINE_BYTES, _: int = 0) -> Any:
        return blocks(self, max_line_bytes, 2 * 1024)

    monkeypatch.setattr(Sniffed, "blocks", small_blocks)
    offered: list[bool] = []  # per group: offered to Arrow?
    lines_in_bulk = loaders._lines_in_bulk

    def judged(*args: Any) -> Any:
        offered.append(args[4])
        return lines_in_bulk(*args)

    monkeypatch.setattr(loaders, "_lines_in_bulk", judged)
    lines = [{**GOOD_ITEM, "id": n, "title": f"Item {n}"} for n in range(1200)]
    record, bulk = read_crawl_both("\n".join(json.dumps(line) for line in lines).encode())
    assert bulk == record and len(bulk[0]) == 1200
    assert bulk[0][1199]["external_id"] == "1199"
    # the first group and the one read ahead were offered to Arrow, not the rest
    assert len(offered) >= 4 and offered[0] and not any(offered[3:])


def test_the_last_line_of_an_item_wins_across_bulk_and_record_rows() -> None:
    """An item sent twice in one batch: the later line's row is the one stored, whichever path
    each line took (a number as title takes the record path)."""
    lines = [
        {**GOOD_ITEM, "id": "a", "title": "first"},
        {**GOOD_ITEM, "id": "b", "title": "bulk"},
        {**GOOD_ITEM, "id": "a", "title": 2},  # record path
        {**GOOD_ITEM, "externalId": "b", "id": "zz", "title": "last"},
    ]
    writer = LandingWriter(_Recorder(), table=ITEMS, source="crawl")  # type: ignore[arg-type]
    writer.begin(CRAWL_OBJECT)
    body = "\n".join(json.dumps(line) for line in lines).encode()
    _write(writer, crawl_batches(CRAWL_OBJECT, io.BytesIO(body), NOW), "partner")
    writer.flush()
    [(_, items), (_, rejects)] = writer.warehouse.upserts  # type: ignore[attr-defined]
    assert rejects == [] or rejects.num_rows == 0
    stored = {row["external_id"]: row["title"] for row in items.to_pylist()}
    assert stored == {"a": "2", "b": "last"}
    assert writer.counts.loaded == 4


class _Recorder:
    def __init__(self) -> None:
        self.upserts: list[tuple[str, Any]] = []

    def upsert(self, table: Any, rows: Any, **_: Any) -> None:
        rows = rows if isinstance(rows, pa.Table) else as_stored(list(rows), table)
        self.upserts.append((table.name, rows))


def test_crawl_lines_nested_too_deep_in_members_the_bulk_path_skips_are_rejected() -> None:
    """Arrow skips the members it does not read, nesting and all: the bulk path must not take a
    line the record path refuses as too deep (it counts brackets, as json_too_deep does)."""
    good = [json.dumps({**GOOD_ITEM, "id": f"g{n}"}) for n in range(40)]
    deep = [
        '{"id": "d1", "tags": ' + '{"a":' * 70 + "1" + "}" * 70 + "}",
        '{"id": "d2", "tags": ' + "[" * 65 + "]" * 65 + "}",
        '{"id": "d3", "title": "' + "{[" * 40 + '"}',  # brackets in text: not deep, but counted
    ]
    record, bulk = read_crawl_both("\n".join(good[:20] + deep + good[20:]).encode())
    assert bulk == record
    assert [(r.line_no, r.reason) for r in bulk[1]] == [(21, TOO_DEEP), (22, TOO_DEEP)]
    assert len(bulk[0]) == 41
