"""Log-file parsing: the four line formats, format detection, gzip/UTF-8 handling, streaming."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ingest_pipeline.domain.log_formats import (
    BadLine,
    LogFileError,
    LogLine,
    detect_format,
    parse_lines,
)
from ingest_pipeline.lib.text_bodies import open_text


def rows(data: bytes, default_service: str | None = None) -> list[LogLine | BadLine]:
    return list(parse_lines(io.BytesIO(data), default_service))


def rows_until_error(data: bytes) -> tuple[list[LogLine | BadLine], LogFileError]:
    """The rows yielded before parse_lines raised, and the error (which it must raise)."""
    got: list[LogLine | BadLine] = []
    with pytest.raises(LogFileError) as caught:
        for row in parse_lines(io.BytesIO(data)):
            got.append(row)
    return got, caught.value


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def plain_log(n: int) -> bytes:
    """n distinct plain-format lines (distinct so that gzip cannot squash them to nothing)."""
    return "".join(
        f"2026-01-05T10:{i // 60 % 60:02d}:{i % 60:02d}Z INFO api request {i} took {i * 7 % 997}ms\n"
        for i in range(1, n + 1)
    ).encode()


# --------------------------------------------------------------------------- formats


def test_jsonl_fields_attributes_and_bad_lines() -> None:
    data = b"\n".join(
        [
            b'{"ts": "2026-01-05T12:00:00+02:00", "level": "warning", "service": "api",'
            b' "msg": "slow", "duration_ms": 812, "tags": ["a"]}',
            b"",
            b'{"timestamp": 1767607200, "severity": "error", "app": "billing", "message": "declined"}',
            b'{"time": 1767607200123, "lvl": 30, "logger": "worker"}',
            b'{"ts": "2026-01-05T10:00:00Z", "msg": "cut off"',
            b'["not", "an", "object"]',
            b'{"@timestamp": "2026-01-05 10:00:00.5", "message": "no zone means UTC"}',
            b'{"ts": "next tuesday", "msg": "x"}',
            b"   ",
            b'{"ts": "2026-01-05T10:00:00.123456789Z", "msg": "nanoseconds"}',
        ]
    )
    got = rows(data, default_service="uploads")

    assert [r.line_no for r in got] == [1, 3, 4, 5, 6, 7, 8, 10]
    assert got[0] == LogLine(
        1, utc(2026, 1, 5, 10), "WARN", "api", "slow", {"duration_ms": 812, "tags": ["a"]}
    )
    assert got[1] == LogLine(3, utc(2026, 1, 5, 10), "ERROR", "billing", "declined", {})
    # Epoch milliseconds, pino's numeric level, `logger` as the service.
    assert got[2] == LogLine(4, utc(2026, 1, 5, 10, 0, 0, 123000), "INFO", "worker", None, {})

    assert isinstance(got[3], BadLine)
    assert got[3].reason.startswith("line 5: not valid JSON: ")
    assert got[3].text == '{"ts": "2026-01-05T10:00:00Z", "msg": "cut off"'
    assert got[4] == BadLine(
        6, "line 6: not a JSON object (got an array)", '["not", "an", "object"]'
    )

    assert got[5].ts == utc(2026, 1, 5, 10, 0, 0, 500000)
    assert got[5].service == "uploads"  # the default fills a missing service
    assert isinstance(got[6], BadLine)
    assert got[6].reason.startswith("line 8: invalid timestamp in 'ts': 'next tuesday'")
    assert got[7].ts == utc(2026, 1, 5, 10, 0, 0, 123456)


def test_jsonl_edge_values_become_bad_lines_not_crashes() -> None:
    data = b'{"ts": 1767607200}\n{"n": ' + b"9" * 5000 + b"}\n" + b"[" * 100_000 + b"\n"
    got = rows(data)
    assert isinstance(got[0], LogLine)
    assert isinstance(got[1], BadLine) and got[1].reason.startswith("line 2: not valid JSON")
    assert isinstance(got[2], BadLine) and got[2].line_no == 3
    assert len(got[2].text) == 2000  # raw text is truncated


def test_logfmt_quoting_flags_and_bad_lines() -> None:
    data = (
        b'ts=2026-01-05T10:00:00Z level=info service=api msg="user \\"bob\\" logged in"'
        b" user_id=42 cached\n"
        b"\n"
        b"\n"
        b'level=error msg="unterminated\n'
        b"just some words\n"
        b"ts=1767607200 lvl=WARNING app=worker msg=retrying attempt=3 empty=\n"
        b"ts=notatime msg=x\n"
    )
    got = rows(data)

    assert got[0] == LogLine(
        1,
        utc(2026, 1, 5, 10),
        "INFO",
        "api",
        'user "bob" logged in',
        {"user_id": "42", "cached": True},  # logfmt values stay strings; flags are True
    )
    assert got[1] == BadLine(
        4, "line 4: not valid logfmt: unterminated quote", 'level=error msg="unterminated'
    )
    assert got[2] == BadLine(5, "line 5: not valid logfmt: no key=value pair", "just some words")
    assert got[3] == LogLine(
        6, utc(2026, 1, 5, 10), "WARN", "worker", "retrying", {"attempt": "3", "empty": ""}
    )
    assert isinstance(got[4], BadLine)
    assert got[4].reason.startswith("line 7: invalid timestamp in 'ts': 'notatime'")


def test_combined_and_common_access_logs() -> None:
    data = (
        b'203.0.113.9 - alice [10/Oct/2025:13:55:36 -0700] "GET /index.html HTTP/1.1" 200 2326'
        b' "https://ref.example/" "Mozilla/5.0"\n'
        b'198.51.100.7 - - [10/Oct/2025:21:00:00 +0000] "POST /api/pay HTTP/2.0" 502 -\n'
        b"\n"
        b"this is not an access log line\n"
        b'2001:db8::1 - - [01/Jan/2026:00:00:00 +0100] "GET /missing HTTP/1.1" 404 153 "-"'
        b' "curl/8.0 \\"quoted\\""\n'
        b'203.0.113.9 - - [32/Foo/2025:13:55:36 -0700] "GET / HTTP/1.1" 200 1\n'
    )
    got = rows(data)

    assert got[0] == LogLine(
        1,
        utc(2025, 10, 10, 20, 55, 36),  # -0700 converted to UTC
        "INFO",
        "http",
        "GET /index.html HTTP/1.1",
        {
            "remote_addr": "203.0.113.9",
            "remote_user": "alice",
            "method": "GET",
            "path": "/index.html",
            "protocol": "HTTP/1.1",
            "status": 200,
            "body_bytes": 2326,
            "referer": "https://ref.example/",
            "user_agent": "Mozilla/5.0",
        },
    )
    common = got[1]
    assert isinstance(common, LogLine)
    assert (common.level, common.message) == ("ERROR", "POST /api/pay HTTP/2.0")
    assert common.attributes["remote_user"] is None
    assert common.attributes["body_bytes"] is None
    assert common.attributes["referer"] is None and common.attributes["user_agent"] is None

    assert got[2] == BadLine(
        4, "line 4: not a combined/common access log line", "this is not an access log line"
    )
    assert isinstance(got[3], LogLine)
    assert got[3].line_no == 5 and got[3].level == "WARN"
    assert got[3].ts == utc(2025, 12, 31, 23)
    assert got[3].attributes["user_agent"] == 'curl/8.0 "quoted"'
    assert isinstance(got[4], BadLine) and got[4].reason.startswith("line 6: invalid timestamp")

    assert {r.service for r in rows(data, "edge-nginx") if isinstance(r, LogLine)} == {"edge-nginx"}


def test_plain_lines() -> None:
    data = (
        b"2026-01-05T10:00:00Z ERROR billing payment declined for order 42\n"
        b"2026-01-05 10:00:00,123 INFO api started\n"
        b"\n"
        b"2026-01-05 10:00:00.5 BOGUS api not a level\n"
        b"2026-01-05T12:00:00+02:00 warning api disk at 91% usage=high\n"
        b"Traceback (most recent call last):\n"
        b"2026-01-05T10:00:00Z CRITICAL db\n"
    )
    got = rows(data)

    assert got[0] == LogLine(
        1, utc(2026, 1, 5, 10), "ERROR", "billing", "payment declined for order 42", {}
    )
    assert got[1] == LogLine(2, utc(2026, 1, 5, 10, 0, 0, 123000), "INFO", "api", "started", {})
    assert got[2] == BadLine(
        4,
        "line 4: not a plain log line: unknown level 'BOGUS'",
        "2026-01-05 10:00:00.5 BOGUS api not a level",
    )
    assert got[3] == LogLine(5, utc(2026, 1, 5, 10), "WARN", "api", "disk at 91% usage=high", {})
    assert isinstance(got[4], BadLine) and got[4].line_no == 6
    assert "expected '<timestamp> <LEVEL> <service> <message>'" in got[4].reason
    assert got[5] == LogLine(7, utc(2026, 1, 5, 10), "CRITICAL", "db", None, {})


def test_crlf_bom_and_no_trailing_newline() -> None:
    data = b"\xef\xbb\xbf2026-01-05T10:00:00Z INFO api one\r\n\r\n2026-01-05T10:00:01Z INFO api two"
    got = rows(data)
    assert [(r.line_no, r.message) for r in got if isinstance(r, LogLine)] == [
        (1, "one"),
        (3, "two"),
    ]


def test_overlong_line_is_a_bad_line_and_numbering_continues() -> None:
    data = plain_log(1) + b"x" * 1000 + b"\n" + plain_log(2).splitlines(keepends=True)[1]
    got = list(parse_lines(io.BytesIO(data), max_line_bytes=100))
    assert [r.line_no for r in got] == [1, 2, 3]
    assert isinstance(got[1], BadLine)
    assert got[1].reason == "line 2: longer than 100 bytes"
    assert isinstance(got[2], LogLine)


# --------------------------------------------------------------------------- detection


def test_detect_format_on_mixed_quality_samples() -> None:
    logfmt = [f"level=info msg=m{i} n={i}" for i in range(10)]
    junk = ["Traceback (most recent call last):", '  File "x.py", line 1', "{broken json"]
    plain = ["2026-01-05T10:00:00Z INFO api retry count=3 backoff=2s"] * 3
    assert detect_format(junk + logfmt + plain + junk) == "logfmt"
    # Plain messages containing key=value pairs still read as plain.
    assert detect_format(plain + junk) == "plain"
    assert detect_format(["", "  ", '{"msg": "a"}', "not json"]) == "jsonl"
    # Ties go to the earlier format.
    assert detect_format(['{"msg": "a"}', "msg=a"]) == "jsonl"
    access = '1.2.3.4 - - [10/Oct/2025:13:55:36 +0000] "GET / HTTP/1.1" 200 5'
    assert detect_format([access, "2026-01-05T10:00:00Z INFO api x"]) == "combined"
    # Only the first 50 non-empty lines count.
    many = [""] * 100 + plain * 17 + ['{"msg": "a"}'] * 200
    assert detect_format(many) == "plain"


def test_detect_format_rejects_unrecognisable_samples() -> None:
    with pytest.raises(LogFileError, match="no line matches a known log format"):
        detect_format(["hello", "world", ""])
    with pytest.raises(LogFileError, match="no line matches"):
        rows(b"hello\nworld\n")


def test_empty_file_has_no_rows() -> None:
    assert rows(b"") == []
    assert rows(b"\n\n   \n") == []
    assert rows(gzip.compress(b"")) == []


# --------------------------------------------------------------------------- file level


def test_gzip_is_detected_by_content() -> None:
    data = plain_log(300) + b"junk\n"
    packed = gzip.compress(data)
    assert rows(packed) == rows(data)
    assert len(rows(packed)) == 301
    assert open_text(io.BytesIO(packed)).read() == data.decode()
    # Concatenated gzip members (as from `cat a.gz b.gz`) read as one file.
    assert len(rows(gzip.compress(plain_log(2)) + gzip.compress(plain_log(3)))) == 5


@pytest.mark.parametrize("lines", [40, 20_000])
def test_truncated_gzip_raises_after_the_good_rows(lines: int) -> None:
    packed = gzip.compress(plain_log(lines))
    got, error = rows_until_error(packed[: len(packed) - 20])
    assert "truncated gzip stream" in str(error)
    assert 0 < len(got) < lines
    assert [r.line_no for r in got] == list(range(1, len(got) + 1))
    assert all(isinstance(r, LogLine) for r in got)
    if lines > 100:
        # Everything up to the damage arrives, not just what fits a read buffer.
        assert len(got) > lines - 200


@pytest.mark.parametrize(
    "data",
    [
        b"\x1f\x8b" + b"this is not deflate data" * 20,
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 200,
        b"\x1f\x8b",
    ],
)
def test_invalid_gzip_is_a_file_error(data: bytes) -> None:
    with pytest.raises(LogFileError, match="gzip"):
        open_text(io.BytesIO(data))
    with pytest.raises(LogFileError, match="gzip"):
        rows(data)


def test_binary_data_is_a_file_error() -> None:
    elf = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    with pytest.raises(LogFileError, match="binary data, not a text log"):
        rows(elf)
    # Mostly binary: refused whole, saying how much of it is not text.
    with pytest.raises(LogFileError, match=r"binary data, not a text log \(3 of the first 4 lines"):
        rows(gzip.compress(plain_log(1) + b"\x00\x01\n" * 3))


def test_a_binary_line_among_text_lines_is_one_bad_line() -> None:
    got = rows(gzip.compress(plain_log(3) + b"\x00\x00"))
    assert all(isinstance(r, LogLine) for r in got[:3])
    assert got[3] == BadLine(4, "line 4: not text: NUL byte at byte offset 149", "\\x00\\x00")


def test_invalid_utf8_names_the_byte_offset() -> None:
    with pytest.raises(LogFileError, match="not valid UTF-8 at byte offset 33"):
        rows(b"2026-01-05T10:00:00Z INFO api caf\xe9\n")

    # Far beyond the first read chunk, one bad line among good ones is that line's reject.
    good = plain_log(5000)
    got = rows(good + b"2026-01-05T10:00:00Z INFO api \xff\xfe\n")
    assert len(got) == 5001
    assert all(isinstance(r, LogLine) for r in got[:5000])
    assert got[5000].reason == (
        f"line 5001: not valid UTF-8 at byte offset {len(good) + 30}: invalid start byte"
    )


def test_multibyte_characters_across_read_boundaries() -> None:
    prefix = b"2026-01-05T10:00:00Z INFO api "
    line = prefix + "é€😀".encode() * 3000 + b"\n"  # 27 KiB: straddles 8 KiB and 64 KiB cuts
    got = rows(line * 6)
    assert len(got) == 6
    assert all(isinstance(r, LogLine) and r.message == "é€😀" * 3000 for r in got)


class LazyLog:
    """A log produced on demand as it is read: it never exists in memory as a whole.
    Refuses unbounded reads and records how much has been handed out."""

    def __init__(self, n_lines: int) -> None:
        self._lines = self._generate(n_lines)
        self._pending = bytearray()
        self.served = 0
        self.largest_request = 0

    @staticmethod
    def _generate(n_lines: int) -> Iterator[bytes]:
        for i in range(1, n_lines + 1):
            if i % 10_000 == 0:
                yield b"not a log line\n"
            elif i % 1000 == 0:
                yield b"\n"
            else:
                yield f"2026-01-05T10:00:{i % 60:02d}Z INFO api request {i}\n".encode()

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("read() without a size would load the whole file")
        self.largest_request = max(self.largest_request, size)
        while len(self._pending) < size:
            line = next(self._lines, None)
            if line is None:
                break
            self._pending += line
        out = bytes(self._pending[:size])
        del self._pending[:size]
        self.served += len(out)
        return out


def test_large_stream_is_parsed_in_bounded_reads() -> None:
    stream = LazyLog(200_000)
    parsed = parse_lines(stream)  # type: ignore[arg-type]

    first = next(parsed)
    assert first.line_no == 1
    assert stream.served <= 256 * 1024  # rows flow before the file is read (it is ~9 MB)

    good = 1
    bad_line_numbers = []
    last_line_no = 1
    for row in parsed:
        last_line_no = row.line_no
        if isinstance(row, BadLine):
            bad_line_numbers.append(row.line_no)
        else:
            good += 1
    assert bad_line_numbers == list(range(10_000, 200_001, 10_000))
    assert good == 200_000 - 20 - 180
    assert last_line_no == 200_000
    assert stream.largest_request <= 1024 * 1024
    assert stream.served > 8_000_000
