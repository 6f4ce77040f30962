"""Fast tier: the landing's bulk path against its record path, over hostile and clean bodies.

`Sniffed.blocks` must give the lines `Sniffed.lines` gives (same numbers, text, problems and
errors, only grouped), and the events' bulk reader (`event_batches`) the rows and rejects of the
record path (`event_rows`): the same rows, value for value, the same rejects (line, reason, raw
text), the last line of a key winning, and the same file-level error after the same rows.
"""

from __future__ import annotations

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
    LandedFileError,
    LandingWriter,
    Rejected,
    _event,
    _write,
    event_batches,
    event_rows,
)
from ingest_pipeline.domain.entities import EVENTS
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib.text_bodies import (
    MAX_LINE_BYTES,
    MAX_TEXT_CHARS,
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


def as_stored(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return EVENTS.to_arrow(rows).to_pylist() if rows else []


def read_both(data: bytes, max_line_bytes: int = MAX_LINE_BYTES) -> tuple[Any, Any]:
    """(rows as stored, rejects by line, the file's error) of the record path and the bulk one."""

    def run(reader: Any) -> Any:
        rows: list[dict[str, Any]] = []
        rejects: list[Rejected] = []
        error = None
        try:
            for item in reader(EVENTS_OBJECT, io.BytesIO(data), NOW, max_line_bytes):
                if isinstance(item, Rejected):
                    rejects.append(item)
                elif isinstance(item, pa.Table):
                    rows.extend(item.to_pylist())
                else:
                    rows.extend(as_stored([item]))
        except LandedFileError as exc:
            error = str(exc)
        return rows, sorted(rejects, key=lambda r: r.line_no), error

    return run(event_rows), run(event_batches)


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
    from ingest_pipeline.defs.landing import loaders

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
    record_path = []
    monkeypatch.setattr(loaders, "_event", lambda *a: record_path.append(a) or _event(*a))
    record, bulk = read_both("\n".join(lines).encode())
    assert bulk == record and len(bulk[0]) == 3000 and not record_path[3000:]
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
