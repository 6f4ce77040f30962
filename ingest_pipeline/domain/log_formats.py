"""Parse uploaded log files into rows, one per line, detecting the format once per file.

Formats: JSON lines, logfmt, nginx/Apache combined (or common) access logs, and plain
`<timestamp> <LEVEL> <service> <message>` lines. Files may be gzipped (detected by content);
they are read as a stream in bounded memory, so a multi-gigabyte upload never sits in memory.

Text is judged line by line, so one damaged line never costs the file:

- Text is strict UTF-8 (a leading BOM is dropped). Bytes are never guessed as Latin-1: a line that
  is not UTF-8 is a BadLine naming the byte offset, like a line holding a NUL or another control
  byte (all C0 controls and DEL except tab, LF, VT, FF, CR and ESC, which ANSI colours use).
- A line longer than `max_line_bytes` (INGEST_MAX_LINE_BYTES, passed in by the caller) is a
  BadLine; its bytes are skipped, never buffered.
- The file as a whole is refused (LogFileError) only when it is mostly not text: more than half
  of the non-blank lines in its first SNIFF_BYTES (decompressed) are binary or not UTF-8. Invalid
  gzip is refused at once; a damaged gzip tail raises when reached, after the rows before it.
- JSON nested deeper than MAX_JSON_DEPTH levels is refused before it is parsed (`json_too_deep`):
  deep enough nesting would exhaust Python's recursion limit in the parser and after it.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO, NamedTuple, TextIO, cast

FORMATS = ("jsonl", "logfmt", "combined", "plain")

SAMPLE_LINES = 50  # non-empty lines used to detect a file's format
SNIFF_BYTES = 8192  # leading (decompressed) bytes judged text or binary for the whole file
CHUNK_BYTES = 64 * 1024  # read size: bounds memory whatever the file size
MAX_LINE_BYTES = 1024 * 1024  # default line limit; longer lines are BadLines, never buffered
MAX_TEXT_CHARS = 2000  # raw text kept on a BadLine
PEEK_BYTES = 1024 * 1024  # how far `Sniffed.peek` looks for the first non-blank byte
MAX_JSON_DEPTH = 64  # arrays/objects nested deeper than this are refused, not parsed
TOO_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels"

GZIP_MAGIC = b"\x1f\x8b"
KNOWN_LEVELS = frozenset(
    {"TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL"}
)
_LEVEL_ALIASES = {"WARNING": "WARN"}
# pino/bunyan write numeric levels; mapping them keeps `level` comparable across services.
_NUMERIC_LEVELS = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}

_TS_KEYS = ("ts", "timestamp", "time", "@timestamp")
_LEVEL_KEYS = ("level", "severity", "lvl")
_SERVICE_KEYS = ("service", "app", "logger")
_MESSAGE_KEYS = ("message", "msg")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LogLine:
    """One parsed line."""

    line_no: int  # 1-based line number in the (decompressed) file
    ts: datetime | None  # timezone-aware UTC
    level: str | None  # upper-case; WARNING is normalised to WARN
    service: str | None
    message: str | None
    attributes: dict[str, Any]  # everything else the line carried


@dataclass(frozen=True)
class BadLine:
    """A line that does not parse in the file's format."""

    line_no: int
    reason: str  # e.g. "line 7: not valid logfmt: unterminated quote"
    text: str  # the raw line, truncated to MAX_TEXT_CHARS


class LogFileError(ValueError):
    """The file as a whole cannot be read (invalid gzip, binary junk, undecodable text)."""


class _LineError(Exception):
    """One line does not parse; the message becomes the BadLine reason (without the line prefix)."""


# --------------------------------------------------------------------------- byte/text layer


class _Prefixed:
    """A read-only byte stream that replays bytes already consumed while sniffing."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(size)
        head, self._prefix = self._prefix, b""
        if size < 0:
            return head + self._stream.read()
        if size <= len(head):
            self._prefix = head[size:]
            return head[:size]
        return head + self._stream.read(size - len(head))


def _gzip_reader(gz: gzip.GzipFile) -> Callable[[int], bytes]:
    """gz.read1, with corrupt or truncated compressed data reported as LogFileError."""

    def read(size: int) -> bytes:
        try:
            # read1, not read: read() drops the data it already decompressed when the stream
            # turns out truncated, and those are the last good lines.
            return gz.read1(size)
        except EOFError as exc:
            raise LogFileError(
                "truncated gzip stream: the compressed data ends before its end marker"
            ) from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise LogFileError(f"invalid gzip data: {exc}") from exc

    return read


class _Utf8Text(io.TextIOBase):
    """Strict UTF-8 text over a byte reader; tracks byte offsets so decode errors can name one."""

    def __init__(
        self, head: bytes, read: Callable[[int], bytes], deferred: LogFileError | None
    ) -> None:
        super().__init__()
        self._read = read
        self._head = head  # bytes read while sniffing, decoded first
        # A read error hit while sniffing: raised only once the good bytes before it are consumed.
        self._deferred = deferred
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._fed = 0  # bytes handed to the decoder so far
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._at_start = True

    @property
    def encoding(self) -> str:
        return "utf-8"

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Decode one more chunk into the buffer; False once the data is exhausted."""
        if self._eof:
            return False
        if self._head:
            chunk, self._head = self._head, b""
        elif self._deferred is not None:
            raise self._deferred
        else:
            chunk = self._read(CHUNK_BYTES)
        final = not chunk
        held = len(self._decoder.getstate()[0])  # bytes of a split character from the last chunk
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            # exc.start counts from the held bytes. Hand out the valid text before the bad
            # byte and raise when it is consumed, so the lines before it still make rows.
            offset = self._fed - held + exc.start
            self._deferred = LogFileError(f"not valid UTF-8 at byte offset {offset}: {exc.reason}")
            text = exc.object[: exc.start].decode("utf-8")
            final = False
        self._fed += len(chunk)
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix("\ufeff")  # editors on Windows add a BOM; it is not data
        self._eof = final
        if text:
            self._buf = self._buf[self._pos :] + text
            self._pos = 0
        return True

    def _take(self, end: int) -> str:
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def readline(self, size: int | None = -1) -> str:
        limit = -1 if size is None else size
        while True:
            newline = self._buf.find("\n", self._pos)
            if newline != -1 and (limit < 0 or newline + 1 - self._pos <= limit):
                return self._take(newline + 1)
            if 0 <= limit <= len(self._buf) - self._pos:
                return self._take(self._pos + limit)
            if not self._fill():
                return self._take(len(self._buf))

    def read(self, size: int | None = -1) -> str:
        limit = -1 if size is None else size
        while limit < 0 or len(self._buf) - self._pos < limit:
            if not self._fill():
                break
        return self._take(len(self._buf) if limit < 0 else min(len(self._buf), self._pos + limit))


def _read_upto(read: Callable[[int], bytes], size: int) -> bytes:
    """Read up to size bytes, looping over short reads; fewer only at end of stream."""
    out = bytearray()
    while len(out) < size:
        chunk = read(size - len(out))
        if not chunk:
            break
        if not isinstance(chunk, bytes):
            raise TypeError("expected a binary stream")
        out += chunk
    return bytes(out)


def _read_head(read: Callable[[int], bytes], size: int) -> tuple[bytes, LogFileError | None, bool]:
    """Up to size bytes, whether the data ended there, and a read error met on the way: returned,
    not raised, so that the good bytes before the damage still count."""
    head = bytearray()
    try:
        while len(head) < size:
            chunk = read(size - len(head))
            if not chunk:
                return bytes(head), None, True
            head += chunk
    except LogFileError as exc:
        return bytes(head), exc, True
    return bytes(head), None, False


# C0 controls and DEL, but not tab, LF, VT, FF, CR, or ESC (ANSI colour codes in console logs).
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def _shown(raw: bytes) -> str:
    """A bad line's bytes as text any warehouse stores: bad UTF-8 and controls as \\xNN escapes."""
    text = raw[: MAX_TEXT_CHARS * 4].decode("utf-8", "backslashreplace")
    return _CONTROL_TEXT.sub(lambda m: f"\\x{ord(m.group()):02x}", text)[:MAX_TEXT_CHARS]


def _decode(raw: bytes, offset: int, final: bool = True) -> tuple[str, str | None]:
    """(text, None) for a line of UTF-8 text, else (its bytes shown, why it is not text).
    offset is the line's position in the file; final=False accepts a character cut at the end."""
    bad = _CONTROL.search(raw)
    if bad is not None:
        byte = raw[bad.start()]
        name = "NUL byte" if byte == 0 else f"control byte 0x{byte:02x}"
        return _shown(raw), f"not text: {name} at byte offset {offset + bad.start()}"
    try:
        if final:
            return raw.decode("utf-8"), None
        return codecs.getincrementaldecoder("utf-8")("strict").decode(raw, False), None
    except UnicodeDecodeError as exc:
        return _shown(raw), f"not valid UTF-8 at byte offset {offset + exc.start}: {exc.reason}"


def _refuse_binary(head: bytes, complete: bool) -> None:
    """LogFileError when more than half of the head's non-blank lines are not text: a file that
    is mostly binary (or mostly another encoding) is not a log with a few damaged lines."""
    pieces = head.split(b"\n")
    judged, problems, offset = 0, [], 0
    for index, piece in enumerate(pieces):
        if piece.strip():
            judged += 1
            # The head may end inside a line, even inside a character: that is not damage.
            final = complete or index < len(pieces) - 1
            problem = _decode(piece.removesuffix(b"\r"), offset, final)[1]
            if problem is not None:
                problems.append(problem)
        offset += len(piece) + 1
    if len(problems) * 2 <= judged:
        return
    share = f"{len(problems)} of the first {judged} lines are not text"
    if any(p.startswith("not text") for p in problems):
        raise LogFileError(f"binary data, not a text log ({share})")
    raise LogFileError(f"{problems[0]} ({share})")


def _split_lines(read: Callable[[int], bytes], max_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """(byte offset, bytes without the "\\n", too long) per physical line. A line longer than
    max_bytes comes as its first MAX_TEXT_CHARS bytes: the rest is dropped as it is read."""
    buf = bytearray()
    base = line_start = 0  # file offsets of buf[0] and of the current line
    kept: bytes | None = None  # the start of an over-long line whose end is still to come
    while chunk := read(CHUNK_BYTES):
        buf += chunk
        start = 0
        while (newline := buf.find(b"\n", start)) != -1:
            if kept is not None:
                yield line_start, kept, True
            elif newline - start > max_bytes:
                yield line_start, bytes(buf[start : min(newline, start + MAX_TEXT_CHARS)]), True
            else:
                yield line_start, bytes(buf[start:newline]), False
            kept, start = None, newline + 1
            line_start = base + start
        del buf[:start]
        base += start
        if kept is None and len(buf) > max_bytes:
            kept = bytes(buf[:MAX_TEXT_CHARS])
        if kept is not None:  # bounded memory: an over-long line is never buffered
            base += len(buf)
            buf.clear()
    if kept is not None or len(buf) > max_bytes:
        yield line_start, kept or bytes(buf[:MAX_TEXT_CHARS]), True
    elif buf:
        yield line_start, bytes(buf), False


class TextLine(NamedTuple):
    """One non-blank line of an upload, judged: text, or why it is not."""

    line_no: int  # 1-based, blank lines counted
    text: str  # the line without its line ending; for a bad line its bytes shown, truncated
    problem: str | None  # e.g. "not text: NUL byte at byte offset 812", "longer than N bytes"


def _text_line(line_no: int, offset: int, raw: bytes, too_long: bool, max_bytes: int) -> TextLine:
    if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
        # Editors on Windows add a BOM; it is not data.
        raw, offset = raw[len(codecs.BOM_UTF8) :], offset + len(codecs.BOM_UTF8)
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if too_long:
        return TextLine(line_no, _shown(raw), f"longer than {max_bytes} bytes")
    return TextLine(line_no, *_decode(raw, offset))


class _Rest:
    """The bytes after the sniffed head, head first; a read error met while sniffing is raised
    only once the good bytes before it are consumed."""

    def __init__(self, head: bytes, read: Callable[[int], bytes], deferred: LogFileError | None):
        self._head, self._read, self._deferred = head, read, deferred

    def read(self, size: int) -> bytes:
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        if self._deferred is not None:
            raise self._deferred
        return self._read(size)


class Sniffed:
    """An upload (gunzipped if it was gzip) judged text by its first SNIFF_BYTES; read it once,
    as lines (`lines`) or as one text stream (`text`)."""

    def __init__(
        self,
        head: bytes,
        read: Callable[[int], bytes],
        deferred: LogFileError | None,
        exhausted: bool,
    ) -> None:
        self._head, self._read = head, read
        self._deferred, self._exhausted = deferred, exhausted

    def peek(self) -> tuple[int, bytes] | None:
        """(line number, byte) of the first byte that is not whitespace or the BOM, looking at
        most PEEK_BYTES in; None if there is none there."""
        while True:
            body = self._head.removeprefix(codecs.BOM_UTF8)
            stripped = body.lstrip()
            if stripped:
                return body[: len(body) - len(stripped)].count(b"\n") + 1, stripped[:1]
            if self._exhausted or len(self._head) >= PEEK_BYTES:
                return None
            more, self._deferred, self._exhausted = _read_head(self._read, SNIFF_BYTES)
            self._head += more

    def lines(self, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[TextLine]:
        """Each non-blank line, judged (blank lines are counted, not yielded), in bounded memory.
        A read error raises LogFileError naming the line when reached, after the lines before."""
        rest = _Rest(self._head, self._read, self._deferred)
        line_no = 0
        try:
            for offset, raw, too_long in _split_lines(rest.read, max_line_bytes):
                line_no += 1
                line = _text_line(line_no, offset, raw, too_long, max_line_bytes)
                if line.problem is not None or line.text.strip():
                    yield line
        except LogFileError as exc:  # only reading raises it: the line is the one being read
            raise LogFileError(f"{exc} (reading line {line_no + 1})") from exc

    def text(self) -> TextIO:
        """The whole upload as strict UTF-8 text (for documents: a JSON array, CSV); bytes that
        are not UTF-8 raise LogFileError naming the byte offset when reached."""
        return cast(TextIO, _Utf8Text(self._head, self._read, self._deferred))


def sniff(stream: BinaryIO) -> Sniffed:
    """Open an upload: gunzipped when it starts with the gzip magic bytes (by content, not by
    name: uploads are often misnamed). LogFileError for invalid gzip, and for data that is
    mostly not text (more than half of the non-blank lines of its first SNIFF_BYTES)."""
    magic = _read_upto(stream.read, len(GZIP_MAGIC))
    source = _Prefixed(magic, stream)
    read: Callable[[int], bytes] = source.read
    if magic == GZIP_MAGIC:
        read = _gzip_reader(gzip.GzipFile(fileobj=source, mode="rb"))
    head, deferred, exhausted = _read_head(read, SNIFF_BYTES)
    if deferred is not None and not head:
        raise deferred  # nothing readable at all: fail now rather than on the first line
    _refuse_binary(head, exhausted and deferred is None)
    # Otherwise a damaged tail is raised when reached: the rows before it still count.
    return Sniffed(head, read, deferred, exhausted)


def open_text(stream: BinaryIO) -> TextIO:
    """`sniff(stream).text()`: the upload as one strict UTF-8 text stream."""
    return sniff(stream).text()


def text_lines(stream: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[TextLine]:
    """`sniff(stream).lines(max_line_bytes)`: each non-blank line judged text or not."""
    return sniff(stream).lines(max_line_bytes)


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays/objects deeper than limit. Counting brackets first keeps it
    one fast pass for almost every record; brackets inside strings are not nesting."""
    if text.count("{") + text.count("[") <= limit:
        return False
    depth = 0
    for match in _JSON_BRACKETS.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth = max(depth - 1, 0)
    return False


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKETS = re.compile(r"[\[\]{}]")


# --------------------------------------------------------------------------- field helpers


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _normalise_level(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value in _NUMERIC_LEVELS:
        return _NUMERIC_LEVELS[value]
    level = _as_text(value).strip().upper()
    return _LEVEL_ALIASES.get(level, level)


_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
_EPOCH_RE = re.compile(r"[+-]?\d+(?:\.\d*)?")


def _zone(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text in ("Z", "z", "UTC", "GMT"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _parse_iso(text: str) -> datetime:
    try:
        # Fast C path; since 3.11 it takes "Z", nanoseconds, comma decimals and basic format.
        parsed = datetime.fromisoformat(text)
    except ValueError:
        match = _ISO_RE.fullmatch(text)  # what it misses: lowercase t/z, " UTC" suffixes
        if match is None:
            raise ValueError("not ISO 8601 or an epoch number") from None
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        micro = int((fraction or "0")[:6].ljust(6, "0"))  # datetime keeps microseconds
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=_zone(zone),
        )
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # no zone means UTC
    return parsed.astimezone(UTC)


def _from_epoch(value: float) -> datetime:
    magnitude = abs(value)
    # Guess the unit from the magnitude: today is ~1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns.
    if magnitude >= 1e17:
        delta = timedelta(microseconds=value // 1000 if isinstance(value, int) else value / 1000)
    elif magnitude >= 1e14:
        delta = timedelta(microseconds=value)
    elif magnitude > 1e12:
        delta = timedelta(milliseconds=value)
    else:
        delta = timedelta(seconds=value)
    return _EPOCH + delta


def _parse_timestamp(value: Any) -> datetime:
    """ISO 8601 string or epoch number (also as a string) -> aware UTC datetime; ValueError."""
    try:
        if isinstance(value, bool):
            raise ValueError("expected an ISO 8601 string or an epoch number")
        if isinstance(value, int | float):
            return _from_epoch(value)
        if isinstance(value, str):
            text = value.strip()
            if _EPOCH_RE.fullmatch(text):
                return _from_epoch(float(text) if "." in text else int(text))
            return _parse_iso(text)
        raise ValueError("expected an ISO 8601 string or an epoch number")
    except OverflowError:
        raise ValueError("out of range") from None


def _pick(fields: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first of keys with a usable value (None and "" count as absent)."""
    for key in keys:
        value = fields.get(key)
        if value is not None and value != "":
            return key, value
    return None, None


def _structured(fields: dict[str, Any], line_no: int, default_service: str | None) -> LogLine:
    """LogLine from a jsonl/logfmt mapping: the well-known keys become columns."""
    attributes = dict(fields)
    ts = None
    key, raw = _pick(fields, _TS_KEYS)
    if key is not None:
        try:
            ts = _parse_timestamp(raw)
        except ValueError as exc:
            raise _LineError(f"invalid timestamp in {key!r}: {_short(raw)} ({exc})") from None
        del attributes[key]
    level = service = message = None
    key, raw = _pick(fields, _LEVEL_KEYS)
    if key is not None:
        level = _normalise_level(raw)
        del attributes[key]
    key, raw = _pick(fields, _SERVICE_KEYS)
    if key is not None:
        service = _as_text(raw)
        del attributes[key]
    key, raw = _pick(fields, _MESSAGE_KEYS)
    if key is not None:
        message = _as_text(raw)
        del attributes[key]
    return LogLine(line_no, ts, level, service or default_service, message, attributes)


# --------------------------------------------------------------------------- formats

_JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _parse_jsonl(text: str, line_no: int, default_service: str | None) -> LogLine:
    if json_too_deep(text):
        raise _LineError(TOO_DEEP)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _LineError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise _LineError(f"not valid JSON: {exc}") from None
    except RecursionError:  # json_too_deep should have said so; never let it past the line
        raise _LineError(TOO_DEEP) from None
    if not isinstance(value, dict):
        kind = _JSON_TYPES.get(type(value), "a number")
        raise _LineError(f"not a JSON object (got {kind})")
    return _structured(value, line_no, default_service)


# Keys start with a letter, "_" or "@" so that plain and access-log lines (which start with a
# digit) are not mistaken for logfmt with a bare flag.
_LOGFMT_KEY = re.compile(r"[A-Za-z_@][\w.\-/@:\[\]]*")
_LOGFMT_BARE = re.compile(r"[^\s]*")
_LOGFMT_QUOTED = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"')
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}


def _unescape(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5:
        return chr(int(code[1:], 16))
    return _ESCAPES.get(code, match.group(0))  # unknown escapes are kept verbatim


# One well-formed token (key, key=bare or key="quoted") up to whitespace or the end of the line.
_LOGFMT_TOKEN = re.compile(
    r'\s*([A-Za-z_@][\w.\-/@:\[\]]*)(?:(=)(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^\s"]\S*|)))?(?=\s|$)\s*'
)


def _logfmt_pairs(text: str) -> dict[str, Any]:
    """Fast path for well-formed lines; anything odd goes to the scanner for a precise reason."""
    fields: dict[str, Any] = {}
    has_pair = False
    pos, end = 0, len(text)
    while pos < end:
        token = _LOGFMT_TOKEN.match(text, pos)
        if token is None:
            return _logfmt_scan(text)
        key, equals, quoted, bare = token.groups()
        if quoted is not None:
            fields[key] = _ESCAPE.sub(_unescape, quoted) if "\\" in quoted else quoted
        elif equals:
            fields[key] = bare
        else:
            fields[key] = True  # a bare flag
        has_pair = has_pair or bool(equals)
        pos = token.end()
    if not has_pair:
        raise _LineError("not valid logfmt: no key=value pair")
    return fields


def _logfmt_scan(text: str) -> dict[str, Any]:
    """Character-level logfmt scanner: slower, but says exactly what is wrong."""
    fields: dict[str, Any] = {}
    has_pair = False
    pos, end = 0, len(text)
    while pos < end:
        if text[pos].isspace():
            pos += 1
            continue
        key_match = _LOGFMT_KEY.match(text, pos)
        if key_match is None:
            raise _LineError(f"not valid logfmt: unexpected {text[pos]!r} at column {pos + 1}")
        key, pos = key_match.group(), key_match.end()
        if pos < end and text[pos] == "=":
            pos += 1
            if pos < end and text[pos] == '"':
                quoted = _LOGFMT_QUOTED.match(text, pos)
                if quoted is None:
                    raise _LineError("not valid logfmt: unterminated quote")
                value: Any = _ESCAPE.sub(_unescape, quoted.group(1))
                pos = quoted.end()
                if pos < end and not text[pos].isspace():
                    raise _LineError(
                        f"not valid logfmt: unexpected {text[pos]!r} after the quoted value of {key!r}"
                    )
            else:
                bare = _LOGFMT_BARE.match(text, pos)
                assert bare is not None  # [^\s]* always matches
                value, pos = bare.group(), bare.end()
            fields[key] = value
            has_pair = True
        elif pos < end and not text[pos].isspace():
            raise _LineError(f"not valid logfmt: unexpected {text[pos]!r} at column {pos + 1}")
        else:
            fields[key] = True  # a bare flag
    if not has_pair:
        raise _LineError("not valid logfmt: no key=value pair")
    return fields


def _parse_logfmt(text: str, line_no: int, default_service: str | None) -> LogLine:
    return _structured(_logfmt_pairs(text), line_no, default_service)


def _quoted(name: str) -> str:
    """Regex for a double-quoted access-log field, allowing backslash escapes inside."""
    return rf'"(?P<{name}>(?:[^"\\]|\\.)*)"'


_COMBINED_RE = re.compile(
    r"(?P<remote_addr>\S+) \S+ (?P<remote_user>\S+) \[(?P<time>[^\]]+)\] "
    + _quoted("request")
    + r" (?P<status>\d{3}) (?P<bytes>\d+|-)"
    + rf"(?: {_quoted('referer')} {_quoted('user_agent')}(?:\s+(?P<extra>.*))?)?"
)
_CLF_TIME_RE = re.compile(r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_REQUEST_RE = re.compile(r"(\S+) (\S+)(?: (\S+))?")
_CLF_UNESCAPE = re.compile(r"\\([\"\\])")


def _clf_text(value: str | None) -> str | None:
    if value is None or value == "-":
        return None
    return _CLF_UNESCAPE.sub(r"\1", value)  # Apache escapes quotes and backslashes


def _parse_clf_time(text: str) -> datetime:
    match = _CLF_TIME_RE.fullmatch(text)
    # Month names are matched by hand: strptime's %b follows the process locale.
    month = _MONTHS.get(match.group(2).lower()) if match else None
    if match is None or month is None:
        raise ValueError("expected dd/Mon/yyyy:HH:MM:SS +zzzz")
    day, _, year, hour, minute, second, zone = match.groups()
    local = datetime(
        int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=_zone(zone)
    )
    return local.astimezone(UTC)


def _parse_combined(text: str, line_no: int, default_service: str | None) -> LogLine:
    match = _COMBINED_RE.fullmatch(text)
    if match is None:
        raise _LineError("not a combined/common access log line")
    try:
        ts = _parse_clf_time(match["time"])
    except (ValueError, OverflowError) as exc:
        raise _LineError(f"invalid timestamp [{match['time']}] ({exc})") from None
    request = _clf_text(match["request"]) or ""
    parts = _REQUEST_RE.fullmatch(request)
    # "-" or a TLS handshake sent to a plain-HTTP port still makes a row, just without method/path.
    method, path, protocol = parts.groups() if parts else (None, None, None)
    status = int(match["status"])
    level = "ERROR" if status >= 500 else "WARN" if status >= 400 else "INFO"
    attributes: dict[str, Any] = {
        "remote_addr": match["remote_addr"],
        "remote_user": _clf_text(match["remote_user"]),
        "method": method,
        "path": path,
        "protocol": protocol,
        "status": status,
        "body_bytes": None if match["bytes"] == "-" else int(match["bytes"]),
        "referer": _clf_text(match["referer"]),
        "user_agent": _clf_text(match["user_agent"]),
    }
    if match["extra"]:
        attributes["extra"] = match["extra"]  # fields custom log_format lines append
    return LogLine(line_no, ts, level, default_service or "http", request, attributes)


_PLAIN_RE = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|z|[+-]\d{2}:?\d{2})?)"
    r"\s+(?P<level>\S+)\s+(?P<service>\S+)(?:\s+(?P<message>.*))?"
)


def _parse_plain(text: str, line_no: int, default_service: str | None) -> LogLine:
    match = _PLAIN_RE.fullmatch(text)
    if match is None:
        raise _LineError("not a plain log line: expected '<timestamp> <LEVEL> <service> <message>'")
    level = match["level"].upper()
    if level not in KNOWN_LEVELS:
        raise _LineError(f"not a plain log line: unknown level {_short(match['level'])}")
    try:
        ts = _parse_iso(match["ts"])
    except (ValueError, OverflowError) as exc:
        raise _LineError(f"invalid timestamp {match['ts']!r} ({exc})") from None
    return LogLine(
        line_no, ts, _LEVEL_ALIASES.get(level, level), match["service"], match["message"], {}
    )


_Parser = Callable[[str, int, str | None], LogLine]
_PARSERS: dict[str, _Parser] = {
    "jsonl": _parse_jsonl,
    "logfmt": _parse_logfmt,
    "combined": _parse_combined,
    "plain": _parse_plain,
}


# --------------------------------------------------------------------------- public entry points


def detect_format(sample_lines: list[str]) -> str:
    """Pick the format that parses the most of up to the first 50 non-empty sample lines;
    ties go to the earlier of FORMATS. LogFileError if no format parses any line."""
    lines = [line.strip() for line in sample_lines if line.strip()][:SAMPLE_LINES]
    best, best_score = None, 0
    for name in FORMATS:
        parser = _PARSERS[name]
        score = 0
        for line in lines:
            try:
                parser(line, 0, None)
            except _LineError:
                continue
            score += 1
        if score > best_score:  # strict: a tie keeps the earlier format
            best, best_score = name, score
    if best is None:
        raise LogFileError(f"no line matches a known log format ({', '.join(FORMATS)})")
    return best


def _parse_one(parser: _Parser, line: TextLine, default_service: str | None) -> LogLine | BadLine:
    if line.problem is not None:
        return BadLine(line.line_no, f"line {line.line_no}: {line.problem}", line.text)
    try:
        return parser(line.text.strip(), line.line_no, default_service)
    except _LineError as exc:
        return BadLine(line.line_no, f"line {line.line_no}: {exc}", line.text[:MAX_TEXT_CHARS])


def parse_lines(
    stream: BinaryIO, default_service: str | None = None, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[LogLine | BadLine]:
    """Yield one LogLine or BadLine per non-empty line, in order, reading in bounded memory.
    The format is detected from the text lines among the first 50 non-empty lines (only those
    are buffered). A line that is not text, or longer than max_line_bytes, is a BadLine. A file
    that is mostly not text raises LogFileError before any row; a read error (e.g. truncated
    gzip) raises LogFileError when reached, after the rows before it."""
    lines = text_lines(stream, max_line_bytes)
    sample: list[TextLine] = []
    read_error: LogFileError | None = None
    try:
        for line in lines:
            sample.append(line)
            if len(sample) >= SAMPLE_LINES:
                break
    except LogFileError as exc:
        read_error = exc  # still parse the sample: rows before the damage are worth keeping
    if not sample:
        if read_error is not None:
            raise read_error
        return  # an empty file is no error: it simply has no rows
    try:
        fmt = detect_format([line.text for line in sample if line.problem is None])
    except LogFileError:
        if read_error is not None:
            raise read_error from None  # the file-level damage is the better explanation
        raise
    parser = _PARSERS[fmt]
    for line in sample:
        yield _parse_one(parser, line, default_service)
    if read_error is not None:
        raise read_error
    for line in lines:
        yield _parse_one(parser, line, default_service)
