"""Fast tier: lib/text_bodies.py on its own, as every landing reader uses it (the log formats
through parse_lines are tested in test_log_formats.py, hostile bodies in test_reader_corpus.py)."""

from __future__ import annotations

import gzip
import io

import pytest

from ingest_pipeline.lib.text_bodies import (
    MAX_TEXT_CHARS,
    SNIFF_BYTES,
    TextBodyError,
    TextLine,
    open_text,
    sniff,
    text_lines,
)


def lines(data: bytes, max_line_bytes: int = 1024) -> list[TextLine]:
    return list(text_lines(io.BytesIO(data), max_line_bytes))


def test_lines_are_judged_one_by_one_and_blank_lines_counted_not_yielded() -> None:
    body = b"\xef\xbb\xbffirst\r\n\n  \nnul \x00 here\ncaf\xe9\n" + b"x" * 2000 + b"\nlast"
    assert lines(body) == [
        TextLine(1, "first", None),
        TextLine(4, "nul \\x00 here", "not text: NUL byte at byte offset 18"),
        TextLine(5, "caf\\xe9", "not valid UTF-8 at byte offset 28: unexpected end of data"),
        TextLine(6, "x" * 2000, "longer than 1024 bytes"),
        TextLine(7, "last", None),
    ]


def test_gzip_is_read_by_content_whatever_the_name() -> None:
    assert lines(gzip.compress(b"a\nb\n")) == [TextLine(1, "a", None), TextLine(2, "b", None)]
    assert open_text(io.BytesIO(gzip.compress(b"[1, 2]"))).read() == "[1, 2]"


def test_peek_finds_the_first_byte_that_is_not_blank() -> None:
    assert sniff(io.BytesIO(b"\xef\xbb\xbf\n\n  [1]")).peek() == (3, b"[")
    assert sniff(io.BytesIO(b" \n ")).peek() is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x01\x02\n" * 10, "binary data"),
        (b"\x1f\x8bnot deflate", "invalid gzip data"),
    ],
)
def test_a_body_that_is_not_text_is_refused_whole(data: bytes, message: str) -> None:
    with pytest.raises(TextBodyError, match=message):
        sniff(io.BytesIO(data))


@pytest.mark.parametrize("ending", [b"\nnext\n", b""])
def test_an_over_long_line_across_a_read_keeps_its_first_bytes_in_full(ending: bytes) -> None:
    """The start kept of an over-long line is topped up from the next read: a line that a read
    ends 1,000 bytes into kept only those 1,000 (the bulk reader kept the full start, and the
    differential test of the landing readers found them apart)."""
    read_ends_at = SNIFF_BYTES  # the first read is the sniffed head
    filler = b"a" * 99 + b"\n"
    head = filler * ((read_ends_at - 1000) // len(filler))
    head += b"b" * (read_ends_at - 1000 - len(head) - 1) + b"\n"
    found = lines(head + b"y" * 3000 + ending, max_line_bytes=500)
    long_line = len(head.split(b"\n"))
    assert found[long_line - 1] == TextLine(
        long_line, "y" * MAX_TEXT_CHARS, "longer than 500 bytes"
    )
    assert [line.text for line in found[long_line:]] == (["next"] if ending else [])
