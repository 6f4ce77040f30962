"""Parse uploaded log files into rows, one per line, detecting the format once per file.

Formats: JSON lines, logfmt, nginx/Apache combined (or common) access logs, and plain
`<timestamp> <LEVEL> <service> <message>` lines. The body is opened by lib/text_bodies.py, which
keeps its rules (gzip detected by content, strict UTF-8, the line limit, bounded memory, a body
refused only when mostly not text): a line it judges not text or too long is a BadLine with that
reason, and one damaged line never costs the file. The format is detected from the first
SAMPLE_LINES text lines and every line is parsed in it; a line that does not parse is a BadLine.

A file is refused as a whole (LogFileError, which is text_bodies' TextBodyError: the same fault
for a log as for any body) when its body cannot be read as text, or when no line of the sample
parses in a known format. JSON lines nested deeper than MAX_JSON_DEPTH are BadLines, refused
before they are parsed (lib/json_depth.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, BinaryIO

from ingest_pipeline.lib.json_depth import TOO_DEEP, json_too_deep
from ingest_pipeline.lib.text_bodies import (
    MAX_LINE_BYTES,
    MAX_TEXT_CHARS,
    TextBodyError,
    TextLine,
    text_lines,
)

FORMATS = ("jsonl", "logfmt", "combined", "plain")

SAMPLE_LINES = 50  # non-empty lines used to detect a file's format
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


# The file as a whole cannot be read (invalid gzip, binary junk, undecodable text, no known
# format): one exception for the body and its format, so callers catch one thing.
LogFileError = TextBodyError


class _LineError(Exception):
    """One line does not parse; the message becomes the BadLine reason (without the line prefix)."""


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
