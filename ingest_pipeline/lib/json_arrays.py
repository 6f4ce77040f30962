"""A JSON array read from a text stream element by element, in bounded memory.

`array_elements` hands out each element of a JSON array as soon as it is read: the reader holds
the element being read and one read-ahead chunk, never the array. Each element is decoded by the
standard library's C scanner (`JSONDecoder.raw_decode`), so values are exactly what
`json.loads` of the whole document gives (int and float, NaN and Infinity, big integers, lone
surrogates, the last of a repeated key), and a document `json.loads` refuses is refused with
the same message, line and column (`JsonArrayError`), once the reader reaches the fault. A
streaming parser over another grammar (yajl, which ijson uses) refuses NaN, Infinity, numbers
that overflow a float and lone surrogate escapes, which `json.loads` reads: a Python-written
batch holding a NaN would fail whole.

Judged per element, as NDJSON lines are per line (they come as an Element with a `problem` and
the first MAX_TEXT_CHARS of their text, the reader goes on after them):

- nested deeper than MAX_JSON_DEPTH levels: TOO_DEEP. The scanner finds the end of an element
  nested too deep for it (RecursionError, past about 1,000 levels) by a bracket scan instead.
- longer than `max_element_bytes` (UTF-8): `longer than N bytes`, skipped as it is read.

What the reader may hold is bounded by `max_element_bytes` (plus a chunk), whatever the array's
size. Where an element ends is only trusted once the text after it is read: a number or a literal
cut by a chunk boundary is read again with the next chunk.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from ingest_pipeline.lib.json_depth import MAX_JSON_DEPTH, TOO_DEEP, json_too_deep

READ_CHARS = 64 * 1024  # characters read at a time (more when an element is longer)
MAX_TEXT_CHARS = 2000  # the text kept of an element that is a problem
# An error this close to the end of what is read may be the cut, not the document: read more.
# The C scanner's errors from a cut are at the cut, a few characters before it (a literal, a
# number, a \\u escape cut in two), or "Unterminated string" at the string's start.
_CUT_MARGIN = 64

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace (json.loads' own)
_BRACKET_OR_QUOTE = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)  # up to the closing quote
_SCALAR_END = re.compile(r"[,\]\s]")
_NUMBER_CHARS = frozenset("0123456789.eE+-")


class JsonArrayError(ValueError):
    """The document is not a JSON array, or not one to the end; the message says where and why,
    as json.loads words it."""


@dataclass(frozen=True)
class Element:
    """One element of the array: its value, or why it is not read (then its text, cut)."""

    index: int  # 1-based position in the array
    value: Any = None
    problem: str | None = None
    text: str = ""  # only for a problem: the element's first MAX_TEXT_CHARS characters


def array_elements(
    text: TextIO, max_element_bytes: int, depth: int = MAX_JSON_DEPTH, what: str = "invalid JSON"
) -> Iterator[Element]:
    """The elements of the JSON array `text` holds, one by one. JsonArrayError (its message
    starting with `what`) when the document is not an array or breaks off: raised when reached,
    after the elements before it."""
    yield from _ArrayReader(text, max_element_bytes, depth, what).elements()


class _ArrayReader:
    def __init__(self, text: TextIO, max_element_bytes: int, depth: int, what: str) -> None:
        self.text, self.limit, self.depth, self.what = text, max_element_bytes, depth, what
        self.buf, self.pos, self.eof = "", 0, False
        # What was dropped from the front of buf: newlines, and characters after the last one
        # (json.loads' line and column of a fault are counted from the document's start).
        self.lines_before = self.column_before = 0

    # ------------------------------------------------------------------ reading

    def _more(self) -> bool:
        """Read a chunk (at least as much as is kept, so that a long element costs a linear
        number of reads) after dropping what is read; False at the end of the text, where
        nothing is dropped (a fault's position stays where it is)."""
        if self.eof:
            return False
        chunk = self.text.read(max(READ_CHARS, len(self.buf) - self.pos))
        if not chunk:
            self.eof = True
            return False
        if self.pos:
            done = self.buf[: self.pos]
            newlines = done.count("\n")
            if newlines:
                self.lines_before += newlines
                self.column_before = len(done) - done.rfind("\n") - 1
            else:
                self.column_before += len(done)
            self.buf, self.pos = self.buf[self.pos :], 0
        self.buf += chunk
        return True

    def _skip_whitespace(self) -> bool:
        """pos at the next character that is not whitespace; False at the end of the text."""
        while True:
            self.pos = _WHITESPACE.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return True
            if not self._more():
                return False

    def _fault(self, message: str, at: int) -> JsonArrayError:
        """The fault at buf[at], worded as json.loads words it for the whole document."""
        newlines = self.buf.count("\n", 0, at)
        # After the last newline read; before any, counted on from the text dropped.
        column = at - self.buf.rfind("\n", 0, at) if newlines else self.column_before + at + 1
        line = self.lines_before + newlines + 1
        return JsonArrayError(f"{self.what} at line {line} column {column}: {message}")

    # ------------------------------------------------------------------ the array

    def elements(self) -> Iterator[Element]:
        if not self._skip_whitespace():
            raise self._fault("Expecting value", self.pos)
        if self.buf[self.pos] != "[":
            raise JsonArrayError(f"{self.what}: not a JSON array")
        self.pos += 1
        index = 0
        if self._skip_whitespace() and self.buf[self.pos] == "]":
            self.pos += 1
        else:
            while True:  # pos: the start of an element (or the end of the text)
                index += 1
                element, closed = self._element(index)
                yield element
                if closed:
                    break
                self._skip_whitespace()  # after the comma
        if self._skip_whitespace():
            raise self._fault("Extra data", self.pos)

    def _element(self, index: int) -> tuple[Element, bool]:
        """The element at pos and whether the array closes after it; pos after its comma (or
        the closing bracket)."""
        while True:
            start = self.pos
            try:
                value, end = _DECODER.raw_decode(self.buf, start)
            except RecursionError:  # nested far too deep for the scanner: skipped by brackets
                return self._skipped(index), self._separator()
            except json.JSONDecodeError as exc:
                if not self._maybe_cut(exc.pos, exc.msg):
                    raise self._fault(exc.msg, exc.pos) from None
            except ValueError as exc:  # an integer beyond Python's digit limit
                # The integer may be cut: its digits (or a fraction, an exponent) may go on.
                if self.eof or self.buf[-1] not in _NUMBER_CHARS:
                    raise JsonArrayError(f"{self.what}: {exc}") from None
            else:
                # Where it ends is sure once whitespace, a comma or the closing bracket is read
                # after it (a number or a literal cut by the chunk's end would go on).
                after = _WHITESPACE.match(self.buf, end).end()
                if after < len(self.buf) and self.buf[after] in ",]":
                    element = self._judged(index, value, start, end)
                    self.pos = after + 1
                    return element, self.buf[after] == "]"
                if after > end:  # then whitespace up to the chunk's end: the comma is further
                    element = self._judged(index, value, start, end)
                    self.pos = end
                    return element, self._separator()
                if not self._maybe_cut(after, ""):
                    raise self._fault("Expecting ',' delimiter", after)
            # The text read may end inside it: read more, then again from its start.
            if len(self.buf) - start > self.limit:  # more characters than bytes allowed
                return self._skipped(index), self._separator()
            self._more()

    def _maybe_cut(self, at: int, message: str) -> bool:
        """Whether a fault at `at` may be where the text read so far ends, not the document's."""
        return not self.eof and (
            at >= len(self.buf) - _CUT_MARGIN or message.startswith("Unterminated string")
        )

    def _judged(self, index: int, value: Any, start: int, end: int) -> Element:
        buf = self.buf
        problem = None
        if end - start > self.limit // 4 and _utf8_size(buf[start:end]) > self.limit:
            problem = self._too_long()
        elif buf.count("{", start, end) + buf.count("[", start, end) > self.depth and (
            json_too_deep(buf[start:end], self.depth)  # counting brackets first: one fast pass
        ):
            problem = TOO_DEEP
        if problem is None:
            return Element(index, value)
        return Element(index, problem=problem, text=buf[start : min(end, start + MAX_TEXT_CHARS)])

    def _too_long(self) -> str:
        return f"longer than {self.limit} bytes"

    # ------------------------------------------------------------------ skipping

    def _separator(self) -> bool:
        """After an element: pos after its comma; whether the array closes there."""
        if not self._skip_whitespace() or self.buf[self.pos] not in ",]":
            raise self._fault("Expecting ',' delimiter", self.pos)
        self.pos += 1
        return self.buf[self.pos - 1] == "]"

    def _skipped(self, index: int) -> Element:
        """The element at pos read by its brackets and quotes only, never held whole (its first
        MAX_TEXT_CHARS kept): too deep, or too long. Not checked any further: what follows it
        is read as the rest of the array."""
        kept: list[str] = []
        kept_chars = size = 0
        deepest = level = 0
        in_string = False
        scalar = self.buf[self.pos] not in '[{"'
        while True:
            buf, i, end = self.buf, self.pos, None
            while i < len(buf) and end is None:
                if in_string:
                    i = _STRING_REST.match(buf, i).end()
                    if i < len(buf) and buf[i] == '"':
                        in_string, i = False, i + 1
                        if level == 0:
                            end = i
                    elif i < len(buf):  # a backslash cut from what it escapes: read on
                        break
                elif scalar:  # a number or a literal: up to the comma, bracket or space
                    found = _SCALAR_END.search(buf, i)
                    if found is None:
                        i = len(buf)
                        break
                    i = end = found.start()
                else:
                    found = _BRACKET_OR_QUOTE.search(buf, i)
                    if found is None:
                        i = len(buf)
                        break
                    i, mark = found.end(), found.group()
                    if mark == '"':
                        in_string = True
                    elif mark in "[{":
                        level += 1
                        deepest = max(deepest, level)
                    else:
                        level -= 1
                        if level == 0:
                            end = i
            if kept_chars < MAX_TEXT_CHARS:
                kept.append(buf[self.pos : min(i, self.pos + MAX_TEXT_CHARS - kept_chars)])
                kept_chars += len(kept[-1])
            size += _utf8_size(buf[self.pos : i])
            self.pos = i
            if end is not None:
                break
            if not self._more():
                if deepest > self.depth:
                    raise JsonArrayError(TOO_DEEP)
                raise self._fault(f"the array ends inside its element {index}", self.pos)
        problem = self._too_long() if size > self.limit else TOO_DEEP
        return Element(index, problem=problem, text="".join(kept))


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
