"""Read an uploaded body as text: gunzipped if it is gzip, strict UTF-8, judged line by line.

Every reader of landed objects (log files, NDJSON and CSV event batches, crawl batches) opens
its body here, once (`sniff`), then reads it as lines (`Sniffed.lines`, `text_lines`) or as one
text stream for documents (`Sniffed.text`, `open_text`). The rules it keeps:

- Gzip is detected by content (the magic bytes), never by name: uploads are often misnamed. The
  body is read as a stream in bounded memory, so a multi-gigabyte upload never sits in memory.
- Text is strict UTF-8 (a leading BOM is dropped). Bytes are never guessed as Latin-1: a line that
  is not UTF-8 comes as a TextLine whose `problem` names the byte offset, like a line holding a
  NUL or another control byte (all C0 controls and DEL except tab, LF, VT, FF, CR and ESC, which
  ANSI colours use). One damaged line never costs the body.
- A line longer than `max_line_bytes` (INGEST_MAX_LINE_BYTES, passed in by the caller) comes with
  that problem; its bytes are skipped, never buffered.
- The body as a whole is refused (TextBodyError) only when it is mostly not text: more than half
  of the non-blank lines in its first SNIFF_BYTES (decompressed) are binary or not UTF-8. Invalid
  gzip is refused at once; a damaged gzip tail raises when reached, after the lines before it.
- `Sniffed.blocks` judges the same lines in bulk: a run of whole lines that are all text comes as
  one TextBlock (judged with one regex search and one decode), a block holding any other line
  comes line by line exactly as `Sniffed.lines` gives it. Same lines, numbers, problems, offsets
  and errors; only the grouping differs.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, NamedTuple, TextIO, cast

SNIFF_BYTES = 8192  # leading (decompressed) bytes judged text or binary for the whole body
CHUNK_BYTES = 64 * 1024  # read size: bounds memory whatever the body size
BLOCK_BYTES = 1024 * 1024  # read size of `Sniffed.blocks`: a block is at most this plus a line
MAX_LINE_BYTES = 1024 * 1024  # default line limit; longer lines are problems, never buffered
MAX_TEXT_CHARS = 2000  # the raw text kept of a line that is not text (or too long)
PEEK_BYTES = 1024 * 1024  # how far `Sniffed.peek` looks for the first non-blank byte
GZIP_MAGIC = b"\x1f\x8b"


class TextBodyError(ValueError):
    """The body as a whole cannot be read as text (invalid gzip, binary junk, undecodable)."""


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
    """gz.read1, with corrupt or truncated compressed data reported as TextBodyError."""

    def read(size: int) -> bytes:
        try:
            # read1, not read: read() drops the data it already decompressed when the stream
            # turns out truncated, and those are the last good lines.
            return gz.read1(size)
        except EOFError as exc:
            raise TextBodyError(
                "truncated gzip stream: the compressed data ends before its end marker"
            ) from exc
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise TextBodyError(f"invalid gzip data: {exc}") from exc

    return read


class _Utf8Text(io.TextIOBase):
    """Strict UTF-8 text over a byte reader; tracks byte offsets so decode errors can name one."""

    def __init__(
        self, head: bytes, read: Callable[[int], bytes], deferred: TextBodyError | None
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
            self._deferred = TextBodyError(f"not valid UTF-8 at byte offset {offset}: {exc.reason}")
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


def _read_head(read: Callable[[int], bytes], size: int) -> tuple[bytes, TextBodyError | None, bool]:
    """Up to size bytes, whether the data ended there, and a read error met on the way: returned,
    not raised, so that the good bytes before the damage still count."""
    head = bytearray()
    try:
        while len(head) < size:
            chunk = read(size - len(head))
            if not chunk:
                return bytes(head), None, True
            head += chunk
    except TextBodyError as exc:
        return bytes(head), exc, True
    return bytes(head), None, False


# C0 controls and DEL, but not tab, LF, VT, FF, CR, or ESC (ANSI colour codes in console logs).
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
# Every byte but those: deleting them leaves the control bytes (several times _CONTROL's speed).
_NOT_CONTROL = bytes(b for b in range(256) if not _CONTROL.match(bytes([b])))


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
    """TextBodyError when more than half of the head's non-blank lines are not text: a file that
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
        raise TextBodyError(f"binary data, not a text log ({share})")
    raise TextBodyError(f"{problems[0]} ({share})")


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
            if kept is not None:  # its end, in this chunk: the start kept is topped up first
                yield (
                    line_start,
                    kept + bytes(buf[: min(newline, MAX_TEXT_CHARS - len(kept))]),
                    True,
                )
            elif newline - start > max_bytes:
                yield line_start, bytes(buf[start : min(newline, start + MAX_TEXT_CHARS)]), True
            else:
                yield line_start, bytes(buf[start:newline]), False
            kept, start = None, newline + 1
            line_start = base + start
        del buf[:start]
        base += start
        if kept is None and len(buf) > max_bytes:
            kept = b""
        if kept is not None:  # bounded memory: an over-long line is never buffered
            kept += bytes(buf[: MAX_TEXT_CHARS - len(kept)])
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


class TextBlock(NamedTuple):
    """Whole consecutive lines of an upload, all of them text (no NUL or other control byte,
    UTF-8, none longer than the limit): what `Sniffed.lines` would give one by one, judged at once.
    Blank lines are in it (and counted by its numbering); `text` ends with "\\n" unless it holds
    the body's last line, lines may end with "\\r" and the body's BOM is dropped."""

    first_line_no: int  # the number of its first line (1-based, blank lines counted)
    text: str


def _judged(
    block: bytes, line_no: int, offset: int, max_bytes: int
) -> Iterator[TextBlock | TextLine]:
    """Whole lines (`block`, starting after `line_no` lines at byte `offset`) as one TextBlock if
    all are text, else line by line as `Sniffed.lines` judges them (blank lines skipped)."""
    if not block.translate(None, _NOT_CONTROL) and (
        len(block) <= max_bytes or max(map(len, block.split(b"\n"))) <= max_bytes
    ):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            yield TextBlock(line_no + 1, text.removeprefix("\ufeff") if line_no == 0 else text)
            return
    pieces = block.split(b"\n")
    if block.endswith(b"\n"):
        pieces.pop()  # the empty piece after the last newline is not a line
    for piece in pieces:
        line_no += 1
        too_long = len(piece) > max_bytes
        raw = piece[:MAX_TEXT_CHARS] if too_long else piece
        line = _text_line(line_no, offset, raw, too_long, max_bytes)
        if line.problem is not None or line.text.strip():
            yield line
        offset += len(piece) + 1


class _Rest:
    """The bytes after the sniffed head, head first; a read error met while sniffing is raised
    only once the good bytes before it are consumed."""

    def __init__(self, head: bytes, read: Callable[[int], bytes], deferred: TextBodyError | None):
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
        deferred: TextBodyError | None,
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
        A read error raises TextBodyError naming the line when reached, after the lines before."""
        rest = _Rest(self._head, self._read, self._deferred)
        line_no = 0
        try:
            for offset, raw, too_long in _split_lines(rest.read, max_line_bytes):
                line_no += 1
                line = _text_line(line_no, offset, raw, too_long, max_line_bytes)
                if line.problem is not None or line.text.strip():
                    yield line
        except TextBodyError as exc:  # only reading raises it: the line is the one being read
            raise TextBodyError(f"{exc} (reading line {line_no + 1})") from exc

    def blocks(
        self, max_line_bytes: int = MAX_LINE_BYTES, block_bytes: int = BLOCK_BYTES
    ) -> Iterator[TextBlock | TextLine]:
        """The lines of `lines`, in bulk where they are all text: whole lines read about
        `block_bytes` at a time come as one TextBlock, or line by line (TextLine, blank lines
        skipped) where the block holds a line that is not text. A line longer than
        `max_line_bytes` is a TextLine with that problem, its bytes skipped as they are read.
        A read error raises TextBodyError naming the line when reached, as `lines` does."""
        rest = _Rest(self._head, self._read, self._deferred)
        line_no = offset = 0  # lines handed out so far; the byte offset of buf[0]
        buf = b""
        try:
            while chunk := rest.read(block_bytes):
                buf += chunk
                cut = buf.rfind(b"\n") + 1
                if cut:
                    yield from _judged(buf[:cut], line_no, offset, max_line_bytes)
                    line_no, offset, buf = (
                        line_no + buf.count(b"\n", 0, cut),
                        offset + cut,
                        buf[cut:],
                    )
                if len(buf) > max_line_bytes:  # an over-long line: skipped as it is read
                    kept, skipped = buf[:MAX_TEXT_CHARS], len(buf)
                    while True:  # buf holds no newline here
                        buf = rest.read(block_bytes)
                        newline = buf.find(b"\n")
                        part = buf if newline == -1 else buf[:newline]
                        kept += part[: MAX_TEXT_CHARS - len(kept)]
                        skipped += len(part)
                        if newline != -1 or not buf:
                            break
                    line_no += 1
                    yield _text_line(line_no, offset, kept, True, max_line_bytes)
                    if not buf:  # the body ends inside it
                        return
                    offset, buf = offset + skipped + 1, buf[newline + 1 :]
        except TextBodyError as exc:  # only reading raises it: the line is the one being read
            # Whole lines read after an over-long one and before the fault are handed out
            # first, and counted, as `lines` does (they were counted out of the error's number).
            cut = buf.rfind(b"\n") + 1
            if cut:
                yield from _judged(buf[:cut], line_no, offset, max_line_bytes)
                line_no += buf.count(b"\n", 0, cut)
            raise TextBodyError(f"{exc} (reading line {line_no + 1})") from exc
        if buf:  # the last line, without a newline
            yield from _judged(buf, line_no, offset, max_line_bytes)

    def text(self) -> TextIO:
        """The whole upload as strict UTF-8 text (for documents: a JSON array, CSV); bytes that
        are not UTF-8 raise TextBodyError naming the byte offset when reached."""
        return cast(TextIO, _Utf8Text(self._head, self._read, self._deferred))


def sniff(stream: BinaryIO) -> Sniffed:
    """Open an upload: gunzipped when it starts with the gzip magic bytes (by content, not by
    name: uploads are often misnamed). TextBodyError for invalid gzip, and for data that is
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
