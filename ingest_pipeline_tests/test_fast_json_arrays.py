"""Fast tier: landed JSON arrays are streamed (lib/json_arrays.py), and read as the whole document
was read before (issue 14).

The reference is the reader they replace, kept here as it was (`whole_document`): `json.loads`
of the whole text. Over a corpus of good and bad arrays, read through the landing's reader
(`_records`: sniffed, UTF-8, in chunks as small as one character so that every element is cut
somewhere), the streamed reader gives the same records, raw texts and reject reasons, and fails
a document the reference refused with the same message. What differs, on purpose:

- where the reference failed the whole document, the streamed one has already handed out the
  elements before the fault (the writer keeps them, as it keeps the lines of an NDJSON file
  before a damaged gzip tail): exactly those followed by their comma;
- an element nested deeper than MAX_JSON_DEPTH is a reject (TOO_DEEP), not the document's fault;
- an element longer than the line limit is a reject (`longer than N bytes`), as an NDJSON line.

And a big array is read in bounded memory: peak traced memory a small share of the file's size
(the reference held the text and every record: about twice the file's size).
"""

from __future__ import annotations

import io
import itertools
import json
import re
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_pipeline.defs.landing.loaders import (
    LandedFileError,
    Rejected,
    _records,
    crawl_rows,
)
from ingest_pipeline.domain.uploads import LandedObject
from ingest_pipeline.lib import json_arrays
from ingest_pipeline.lib.json_arrays import array_elements
from ingest_pipeline.lib.json_depth import MAX_JSON_DEPTH, TOO_DEEP, json_too_deep

CORPUS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMIT = 1_048_576
CRAWL_OBJECT = LandedObject("u2", "acme", "crawl", "crawl/acme/p/b.json", "e", 1, "p")


# --------------------------------------------------------------------------- the reference


def whole_document(document: str) -> list[tuple[int, Any, str]]:
    """The reader before issue 14 (`_json_array` and `_json_document` of loaders.py): the whole
    text parsed by json.loads; LandedFileError for the whole document."""
    if json_too_deep(document, MAX_JSON_DEPTH + 1):
        raise LandedFileError(TOO_DEEP)
    what = "truncated or invalid JSON"
    try:
        records = json.loads(document)
    except json.JSONDecodeError as exc:
        raise LandedFileError(
            f"{what} at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise LandedFileError(f"{what}: {exc}") from None
    if not isinstance(records, list):
        raise LandedFileError("a JSON batch must be an array of objects")
    out = []
    for index, record in enumerate(records, 1):
        raw = json.dumps(record, default=str)
        out.append((index, record if isinstance(record, dict) else "not a JSON object", raw))
    return out


def elements_before_the_fault(document: str) -> int:
    """How many elements of a document json.loads refuses come before the fault, each followed
    by its comma (or the closing bracket): the plain loop over the whole string, no chunks."""
    decoder, count = json.JSONDecoder(), 0
    at = _blank(document, _blank(document, 0) + 1)
    if document[at : at + 1] == "]":
        return 0
    while True:
        try:
            _, end = decoder.raw_decode(document, at)
        except (ValueError, RecursionError):
            return count
        after = _blank(document, end)
        if document[after : after + 1] not in (",", "]"):
            return count
        count += 1
        if document[after] == "]":
            return count
        at = _blank(document, after + 1)


def _blank(text: str, at: int) -> int:
    return re.compile(r"[ \t\n\r]*").match(text, at).end()


def streamed(document: str, read_chars: int) -> tuple[list[tuple[int, Any, str]], str | None]:
    """The landing's reader over the document as an upload: its records, and its error."""
    got: list[tuple[int, Any, str]] = []
    with mock.patch.object(json_arrays, "READ_CHARS", read_chars):
        try:
            for record in _records(io.BytesIO(document.encode()), False, LIMIT):
                got.append(record)
        except LandedFileError as exc:
            return got, str(exc)
    return got, None


def same(records: list[tuple[int, Any, str]]) -> list[str]:
    """Records compared by repr: NaN equals itself, 1 and 1.0 differ, as do -0.0 and 0.0."""
    return [repr(record) for record in records]


# --------------------------------------------------------------------------- the corpus

ELEMENTS = [
    '{"externalId": "p-1", "title": "Sofa"}',
    '{"a": 1.5e3, "b": [1, 2, {"c": null}], "d": -0, "e": -0.0, "f": 1E2}',
    '{"n": 12345678901234567890123, "x": 0.1, "big": 1e400, "small": -1e-400}',
    '{"nan": NaN, "inf": Infinity, "minf": -Infinity}',  # json.loads reads these (Python)
    '{"lone": "\\ud800", "pair": "\\ud83d\\ude00", "nul": "a\\u0000b", "accent": "caf\\u00e9"}',
    '{"k": "a\\"b\\\\", "k": "repeated: the last wins"}',
    '{"unicode": "naïve ☃ 😀", "url": "https://x.example/?a=[1]&b={2}"}',
    '{"deep": ' + '{"a": ' * (MAX_JSON_DEPTH - 2) + "1" + "}" * (MAX_JSON_DEPTH - 2) + "}",
    "{}",
    "[]",
    "[1, 2]",
    '"text"',
    "42",
    "-1.5e-3",
    "true",
    "null",
    '{"n": ' + "9" * 5000 + "}",  # beyond Python's digit limit: the document fails
    '{"s": "' + "x" * 3000 + '"}',
]
DAMAGE = ["", "x", ",", "]", "[", "{", "}", '"', "\\", ":", "tru", "\x0c", "1.", "\t"]


@st.composite
def arrays(draw: st.DrawFn) -> str:
    """Arrays of the elements above, with JSON's whitespace anywhere; sometimes damaged: cut
    short, a character put in or taken out, text after the closing bracket."""
    elements = draw(st.lists(st.sampled_from(ELEMENTS), max_size=8))
    blank = st.sampled_from(["", " ", "\n", "\r\n  ", "\t", " " * 200])
    document = draw(blank) + "[" + draw(blank)
    for n, element in enumerate(elements):
        document += element + draw(blank) + ("," + draw(blank) if n < len(elements) - 1 else "")
    document += "]" + draw(blank)
    damage = draw(st.sampled_from(["none", "none", "cut", "char", "after"]))
    if damage == "cut":
        document = document[: draw(st.integers(1, len(document)))]
    elif damage == "char":
        at = draw(st.integers(1, len(document)))
        gone = draw(st.integers(0, 2))
        document = document[:at] + draw(st.sampled_from(DAMAGE)) + document[at + gone :]
    elif damage == "after":
        document += draw(st.sampled_from(["x", "[1]", "{}", ",", "]"]))
    return document


@CORPUS
@given(arrays(), st.sampled_from([1, 7, 100, 65_536]))
def test_streamed_arrays_read_as_the_whole_document_did(document: str, read_chars: int) -> None:
    if not document.lstrip(" \t\n\r").startswith("["):
        return  # the landing reads it as NDJSON or refuses it before the array reader
    got, error = streamed(document, read_chars)
    try:
        expected = whole_document(document)
    except LandedFileError as exc:
        assert error == str(exc)
        assert same(got) == same(whole_document_of_elements(document, len(got)))
        assert len(got) == elements_before_the_fault(document)
        return
    assert error is None
    assert same(got) == same(expected)


def whole_document_of_elements(document: str, count: int) -> list[tuple[int, Any, str]]:
    """The reference's records of the first `count` elements of a damaged document."""
    decoder, values = json.JSONDecoder(), []
    at = _blank(document, _blank(document, 0) + 1)
    for _ in range(count):
        value, end = decoder.raw_decode(document, at)
        values.append(value)
        at = _blank(document, _blank(document, end) + 1)
    return whole_document(json.dumps(values, allow_nan=True))


def test_a_cut_array_fails_as_before_after_its_whole_elements() -> None:
    document = '[{"externalId": "p-1"}, {"externalId": "p-2"},\n {"externalId": "p-3", "ti'
    got, error = streamed(document, 7)
    with pytest.raises(LandedFileError) as before:
        whole_document(document)
    assert (
        error
        == str(before.value)
        == ("truncated or invalid JSON at line 2 column 24: Unterminated string starting at")
    )
    assert [record for _, record, _ in got] == [{"externalId": "p-1"}, {"externalId": "p-2"}]


def test_text_after_the_array_fails_it_after_every_element() -> None:
    got, error = streamed('[{"a": 1}, {"a": 2}]\n{"a": 3}\n', 3)
    assert error == "truncated or invalid JSON at line 2 column 1: Extra data"
    assert len(got) == 2


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 2000, 20_000])
def test_an_element_nested_too_deep_is_a_reject_and_the_rest_reads(depth: int) -> None:
    """Before: the whole document failed (TOO_DEEP). Past about 1,000 levels json's scanner
    raises RecursionError: the element is then skipped by its brackets."""
    deep = '{"a": ' * depth + '"]}[{"' + "}" * depth
    document = f'[{{"externalId": "p-1"}}, {deep}, [{deep}], {{"externalId": "p-2"}}]'
    with pytest.raises(LandedFileError, match=TOO_DEEP):
        whole_document(document)
    for read_chars in (5, 65_536):
        got, error = streamed(document, read_chars)
        assert error is None
        assert got == [
            (1, {"externalId": "p-1"}, '{"externalId": "p-1"}'),
            (2, TOO_DEEP, deep[:2000]),
            (3, TOO_DEEP, f"[{deep}]"[:2000]),
            (4, {"externalId": "p-2"}, '{"externalId": "p-2"}'),
        ]


def test_an_element_longer_than_the_line_limit_is_a_reject_read_in_bounded_memory() -> None:
    """As an NDJSON line longer than INGEST_MAX_LINE_BYTES; its bytes are skipped as they are
    read (the limit is UTF-8 bytes: é is two)."""
    long = '{"s": "' + "é" * 600 + '"}'
    longer = '{"s": "' + "x" * 5000 + '", "deep": [' + "[" * 3000 + "]" * 3000 + "]}"
    document = f'[{long}, {{"a": 1}}, {longer}, "{"y" * 1500}", {"7" * 1200}, 2]'
    elements = list(array_elements(io.StringIO(document), 1000))
    assert [(e.index, e.problem) for e in elements] == [
        (1, "longer than 1000 bytes"),
        (2, None),
        (3, "longer than 1000 bytes"),
        (4, "longer than 1000 bytes"),
        (5, "longer than 1000 bytes"),
        (6, None),
    ]
    assert elements[0].text == long and elements[2].text == longer[:2000]
    assert [e.value for e in elements if e.problem is None] == [{"a": 1}, 2]


def test_whitespace_after_an_element_is_not_part_of_it() -> None:
    document = '[{"a": 1}' + " " * 5000 + ",  2" + "\n" * 3000 + ', "x"' + " " * 3000 + "y]"
    with pytest.raises(json.JSONDecodeError) as before:
        json.loads(document)
    for read_chars in (1, 64):
        with mock.patch.object(json_arrays, "READ_CHARS", read_chars):
            read = array_elements(io.StringIO(document), 100)
            assert [(e.value, e.problem) for e in itertools.islice(read, 2)] == [
                ({"a": 1}, None),
                (2, None),
            ]
            with pytest.raises(json_arrays.JsonArrayError) as error:
                next(read)
        assert str(error.value) == (
            f"invalid JSON at line {before.value.lineno} column {before.value.colno}: "
            "Expecting ',' delimiter"
        )


# --------------------------------------------------------------------------- memory


def test_a_big_array_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """32 MB of partner items through the crawl reader (validation included): the peak of
    traced memory stays a small share of the file. The whole-document reader held the text and
    every record: 2.2 times the file's size for this shape."""
    path = tmp_path / "batch.json"
    records = 16_000
    with path.open("w") as out:
        out.write("[")
        for n in range(records):
            item = {
                "externalId": f"item-{n}",
                "title": f"Item {n}",
                "url": f"https://partner.example/items/{n}",
                "summary": "x" * 2000,
            }
            out.write(("," if n else "") + json.dumps(item))
        out.write("]")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        rows = 0
        with path.open("rb") as body:
            for row in crawl_rows(CRAWL_OBJECT, body, datetime(2026, 1, 5, tzinfo=UTC)):
                assert not isinstance(row, Rejected), row
                rows += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == records
    assert peak < size / 5, f"peak {peak:,} bytes for a file of {size:,}"
