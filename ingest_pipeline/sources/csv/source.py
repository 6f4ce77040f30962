"""CSV files from a local folder or an `s3://bucket/prefix`, through dlt's filesystem source.

dlt's `filesystem` resource lists the files and keeps an incremental cursor on their
modification date, so only new or changed files are read on the next run. `read_csv_file` reads
each file in blocks of whole lines into Arrow batches, which dlt loads without ever turning rows
into Python dicts: a block of plain lines (no quote, NUL, blank line or lone `\r`, each line as
many fields as the header) is parsed by Arrow's CSV reader at once; any other block line by line
by Python's `csv` module (strict), which sees every fault. Both give the same rows, and a fault
in a row stays in that row:

- Lines end at the byte `\\n` (`\\r\\n` too); physical lines are counted from 1, blank ones too.
- Decoding is per line: UTF-8, and a line that is not valid UTF-8 is decoded as Latin-1 on its
  own (the other lines stay UTF-8). A UTF-8 byte order mark is skipped. An `encoding` option
  decodes every line of the file with it, and a line not valid in it is a reject; for encodings
  whose newline is not the byte `\\n` (UTF-16, UTF-32) the file is decoded as a whole, and bytes
  not valid in it fail the file.
- The header is the first non-blank record. The delimiter is the `delimiter` option, or whichever
  of `,` `;` tab `|` splits the header into the most fields (ties in that order), one character;
  quotes are `"`, doubled inside a quoted field.
  An empty (or blank) header name becomes `column_<n>`. The file fails (`CsvFileError`, which fails its
  instance only) if the header line holds a NUL, is too long or is not valid in the `encoding`;
  if two header names become the same column (dlt's snake_case naming: `Name` and `name`), the
  error names them and their columns; and if a header name is one of the columns added here.
- A record with as many fields as the header is a row, every value text (an empty one null, as
  DuckDB's reader had it). Blank lines are skipped (and counted). Any other record is a
  reject row: its data columns null, `_reject_reason` saying why, `_raw_line` the record's text as
  read (a NUL written `\\u0000`, which PostgreSQL cannot store; at most RAW_LINE_CHARS characters).
  Reasons: a field count other than the header's; a NUL byte; a line longer than
  INGEST_MAX_LINE_BYTES (never read into memory past that); a line not valid in the `encoding`;
  a CSV syntax error (text after a closing quote; a quote left open, which takes the lines up to
  the file's end or until its field passes INGEST_MAX_LINE_BYTES). A reject row reaches the
  raw table like any row, so the normalized step (which rejects every raw row with a
  `_reject_reason`) can be rebuilt from raw alone.
- `_file` is the file's path under the instance's folder or prefix. `_line` is the record's first
  physical line counted from the header: the line right after the header is 1, and blank lines
  and every line of a quoted multi-line field count. A file read again gives the same numbers,
  and a file without blank lines or multi-line fields keeps the numbers of the data rows.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from dlt.common.configuration.specs import AwsCredentials
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.sources.filesystem import FileItemDict, filesystem

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.dlt_pipelines import INSTANCE_COLUMN, TENANT_COLUMN, instance_columns

BATCH_ROWS = 100_000  # rows in a batch read line by line
BLOCK_BYTES = 8 << 20  # a block of whole lines read at once: ~100k rows of a narrow file
FALLBACK_ENCODING = "latin-1"  # decodes any byte sequence: a line that is not UTF-8 is this
DELIMITERS = (",", ";", "\t", "|")
RAW_LINE_CHARS = 10_000  # a reject keeps this much of its text: enough to see what went wrong
REJECT_REASON_COLUMN = "_reject_reason"
RAW_LINE_COLUMN = "_raw_line"
FILE_COLUMNS = ("_file", "_line", REJECT_REASON_COLUMN, RAW_LINE_COLUMN)
RESERVED_COLUMNS = frozenset((*FILE_COLUMNS, TENANT_COLUMN, INSTANCE_COLUMN))
_BOM = codecs.BOM_UTF8.decode()
_NAMING = NamingConvention()

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "CSV rows as the files held them (all text), one table and one partition per tenant.instance."
)


class CsvFileError(RuntimeError):
    """A file could not be read as CSV at all (its header): fails its instance, no other."""


@dlt.source(name="csv")
def csv_source(instance: SourceInstance | None = None) -> Any:
    if instance is None:
        return csv_rows_placeholder()
    options = instance.options
    bucket_url = _bucket_url(options["path"])
    # Local folders take dlt's default (no credentials argument at all).
    credentials = {"credentials": _s3_credentials()} if bucket_url.startswith("s3://") else {}
    files = filesystem(
        bucket_url=bucket_url,
        file_glob=options.get("glob", "*.csv"),
        incremental=dlt.sources.incremental("modification_date"),
        **credentials,
    )
    rows = files | read_csv_batches(
        delimiter=options.get("delimiter"),
        encoding=options.get("encoding"),
        max_line_bytes=get_settings().max_line_bytes,
    )
    rows = rows.with_name("rows").add_map(instance_columns(instance))
    # Headers differ between instances: each instance gets a raw table of its own.
    rows.apply_hints(table_name=f"{instance.tenant}__{instance.name}".replace("-", "_"))
    return rows


@dlt.resource(name="rows", write_disposition="append")
def csv_rows_placeholder() -> Iterator[dict[str, Any]]:
    yield from ()


@dlt.transformer(write_disposition="append")
def read_csv_batches(
    files: list[FileItemDict],
    delimiter: str | None = None,
    encoding: str | None = None,
    max_line_bytes: int = 1_048_576,
) -> Iterator[pa.RecordBatch | pa.Table]:
    for file in files:
        with _local_copy(file) as path:
            yield from read_csv_file(path, file["file_name"], delimiter, encoding, max_line_bytes)


def read_csv_file(
    path: str,
    file_name: str,
    delimiter: str | None = None,
    encoding: str | None = None,
    max_line_bytes: int = 1_048_576,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[pa.RecordBatch | pa.Table]:
    """The file's rows and reject rows as Arrow batches (the module docstring's rules); raises
    only CsvFileError, for a file whose header cannot be used."""
    _check_encoding(file_name, encoding)
    with _as_utf8(path, file_name, encoding) as (path, encoding), open(path, "rb") as file:
        reader = _FileReader(file, file_name, delimiter, encoding, max_line_bytes)
        yield from reader.batches(_blocks(file, max_line_bytes, block_bytes))


def _check_encoding(file_name: str, encoding: str | None) -> None:
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise CsvFileError(f"{file_name}: unknown encoding {encoding!r}") from exc


@contextlib.contextmanager
def _as_utf8(path: str, file_name: str, encoding: str | None) -> Iterator[tuple[str, str | None]]:
    """The file as it is, unless its encoding's newline is not the byte `\\n` (UTF-16/32): then
    a UTF-8 copy, since lines are found by that byte."""
    if not encoding or "\n".encode(encoding) == b"\n":
        yield path, encoding
        return
    with tempfile.NamedTemporaryFile(suffix=".csv") as copy:
        try:
            with open(path, encoding=encoding, newline="") as text:
                while chunk := text.read(1 << 20):
                    copy.write(chunk.encode("utf-8", "backslashreplace"))
        except UnicodeError as exc:
            raise CsvFileError(f"{file_name}: not valid {encoding}: {exc}") from exc
        copy.flush()
        yield copy.name, "utf-8"


@dataclass
class _Block:
    """Whole lines of the file; a line too long to hold is there only as its start, its full
    length under its line number in `overlong`."""

    data: bytes
    overlong: dict[int, int] = field(default_factory=dict)


def _blocks(file: IO[bytes], max_line_bytes: int, block_bytes: int) -> Iterator[_Block]:
    """The file in blocks of about `block_bytes` that end at a line end."""
    carry, lines = b"", 0
    while data := file.read(block_bytes):
        data = carry + data
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > max_line_bytes:
            yield _skip_overlong(file, data, lines + 1)
            carry, lines = b"", lines + 1
            continue
        block, carry = data[:cut], data[cut:]
        if block:
            lines += block.count(b"\n")
            yield _Block(block)
    if carry:
        yield _Block(carry)


def _skip_overlong(file: IO[bytes], start: bytes, line: int) -> _Block:
    """A line longer than the limit with no end in sight: read to its end, keeping its start."""
    size, rest = len(start), b""
    while not rest.endswith(b"\n"):
        rest = file.readline(1 << 20)
        if not rest:
            break
        size += len(rest)
    size = size - len(rest) + len(rest.rstrip(b"\r\n"))
    return _Block(start[:RAW_LINE_CHARS] + b"\n", {line: size})


class _FileReader:
    """One file's records, block by block: at once by Arrow, or line by line (module doc)."""

    def __init__(
        self,
        file: IO[bytes],
        file_name: str,
        delimiter: str | None,
        encoding: str | None,
        max_line_bytes: int,
    ) -> None:
        self.file_name, self.delimiter, self.limit = file_name, delimiter, max_line_bytes
        self.encoding = encoding
        self.number = 0  # physical lines consumed
        self.header_line = 0
        self.names: list[str] = []
        self.current = io.BytesIO()
        self.current_size = 0
        self.blocks: Iterator[_Block] = iter(())
        self.overlong: dict[int, int] = {}
        self.faults: dict[int, str] = {}  # line number: why its record is a reject
        self.record: list[str] = []  # the text of the record being read, for its reject
        self.reader: Iterator[list[str]] = iter(())
        self.batch: _Batch | None = None

    def batches(self, blocks: Iterator[_Block]) -> Iterator[pa.RecordBatch | pa.Table]:
        self.blocks = blocks
        for block in blocks:  # the line feeder takes more blocks from the same iterator
            self._load(block.data, block.overlong)
            if self.batch is None and not self._read_header():
                return
            yield from self._read(self.current.read())  # the block, less what the header took

    def _load(self, data: bytes, overlong: dict[int, int] | None = None) -> None:
        self.current, self.current_size = io.BytesIO(data), len(data)
        self.overlong.update(overlong or {})

    def _read(self, data: bytes) -> Iterator[pa.RecordBatch | pa.Table]:
        if not data:
            return
        if (fast := self._fast_batch(data)) is not None:
            yield fast
            return
        self._load(data)
        yield from self._slow_batches()

    # --- line by line -------------------------------------------------------------------

    def _feed(self) -> Iterator[str]:
        """Lines as text for the csv reader: the current block's, then (in a record that
        goes on past the block's end) the next blocks'."""
        while True:
            raw = self.current.readline()
            if not raw:
                block = next(self.blocks, None)
                if block is None:
                    return
                self._load(block.data, block.overlong)
                continue
            self.number += 1
            yield self._decode(raw)

    def _decode(self, raw: bytes) -> str:
        """A line's text, noting a fault of the line; what the csv reader must not see (a NUL,
        a line too long) is replaced."""
        size = self.overlong.pop(self.number, None) if self.overlong else None
        if size is None and len(raw) > self.limit:
            content = len(raw.rstrip(b"\r\n"))
            size = content if content > self.limit else None
        if size is not None:
            self._fault(
                f"line is longer than INGEST_MAX_LINE_BYTES ({self.limit} bytes): {size} bytes"
            )
            self.record.append(
                raw[:RAW_LINE_CHARS].rstrip(b"\r\n").decode("utf-8", "replace") + " [...]"
            )
            return "\n"
        if b"\x00" in raw:  # written as its escape: the reader and the reject see that
            self._fault("row holds a NUL byte (0x00), which PostgreSQL cannot store")
            raw = raw.replace(b"\x00", b"\\u0000")
        try:
            text = raw.decode(self.encoding or "utf-8")
        except UnicodeError:
            text = self._undecodable(raw)
        if self.number == 1 and text.startswith(_BOM):
            text = text[1:]
        self.record.append(text)
        return text

    def _undecodable(self, raw: bytes) -> str:
        if not self.encoding:
            return raw.decode(FALLBACK_ENCODING)
        self._fault(f"line is not valid {self.encoding}")
        return raw.decode(self.encoding, "replace")

    def _fault(self, reason: str) -> None:
        self.faults.setdefault(self.number, reason)

    def _fault_in(self, first: int, last: int) -> str | None:
        """Why lines first..last make their record a reject, if they do (faults up to `last`
        are forgotten: they are dealt with)."""
        found = None
        for number in [n for n in self.faults if n <= last]:
            reason = self.faults.pop(number)
            if found is None and number >= first:
                found = reason
        return found

    def _take_record(self) -> str:
        """The text of the record just read, as its reject keeps it."""
        text = "".join(self.record).rstrip("\r\n")
        self.record.clear()
        return text[:RAW_LINE_CHARS].replace("\x00", "\\u0000")

    def _read_header(self) -> bool:
        """Read the header record (False: the file holds no line that is not blank)."""
        feed = self._feed()
        # An overlong line is handed on blank, but it is the header all the same (and a fault).
        first = next((t for t in feed if t.strip("\r\n") or self.number in self.faults), None)
        if first is None:
            return False
        header_start = self.number
        self.record[:] = [first]
        # The delimiter is sniffed from the header alone: ragged rows cannot change it.
        delimiter = self.delimiter or _sniff_delimiter(first)
        _allow_long_fields(self.limit)
        try:
            self.reader = csv.reader(
                itertools.chain([first], feed), delimiter=delimiter, strict=True
            )
            fields = next(self.reader)
        except TypeError as exc:  # a delimiter the csv module cannot use
            raise CsvFileError(f"{self.file_name}: delimiter {delimiter!r}: {exc}") from exc
        except csv.Error as exc:
            raise CsvFileError(f"{self.file_name}: not a CSV file: the header: {exc}") from exc
        if fault := self._fault_in(header_start, self.number):
            raise CsvFileError(f"{self.file_name}: not a CSV file: the header line: {fault}")
        self.record.clear()
        self.delimiter, self.header_line = delimiter, self.number
        self.names = _column_names(self.file_name, fields)
        self.batch = _Batch(self.names, self.file_name, self.header_line)
        return True

    def _slow_batches(self) -> Iterator[pa.RecordBatch]:
        """The records of the current block (and of the next blocks a record runs into)."""
        batch, width = self.batch, len(self.names)
        assert batch is not None
        while self.current.tell() < self.current_size:
            first = self.number + 1
            try:
                fields = next(self.reader)
            except StopIteration:
                break
            except csv.Error as exc:  # the reader starts afresh at the next line
                reason = self._fault_in(first, self.number) or f"not parseable as CSV: {exc}"
                batch.reject(first, reason, self._take_record())
                continue
            fault = self._fault_in(first, self.number) if self.faults else None
            if fault:
                batch.reject(first, fault, self._take_record())
            elif len(fields) == width:
                batch.row(fields, first)
                self.record.clear()
            elif not fields:  # a blank line
                self.record.clear()
            else:
                reason = f"row has {len(fields)} fields, the header has {width}"
                batch.reject(first, reason, self._take_record())
            if batch.size >= BATCH_ROWS:
                yield batch.flush()
        if batch.size:
            yield batch.flush()

    # --- a block at once ----------------------------------------------------------------

    def _fast_batch(self, data: bytes) -> pa.Table | None:
        """The block's rows parsed by Arrow, or None if it needs the line by line reading."""
        if self.overlong or self.faults or b'"' in data or b"\x00" in data:
            return None
        if self.encoding and codecs.lookup(self.encoding).name != "utf-8":
            try:
                data = data.decode(self.encoding).encode()
            except UnicodeError:
                return None
        if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
            return None  # a lone `\r`: Arrow would end a line there, the csv module refuse it
        if data.startswith(codecs.BOM_UTF8):
            return None  # Arrow would drop it as a byte order mark: here it is a cell's text
        lines = data.count(b"\n") + (not data.endswith(b"\n"))
        try:
            table = pa_csv.read_csv(pa.py_buffer(data), **self._arrow_options(len(data)))
        except pa.ArrowInvalid:  # a row of another width, text that is not UTF-8
            return None
        # Arrow skips blank lines: then the rows do not tell their line numbers.
        if table.num_rows != lines or self._longest_line(table, len(data)) > self.limit:
            return None
        first = self.number + 1 - self.header_line
        self.number += lines
        return _with_file_columns(table, self.file_name, first)

    def _arrow_options(self, size: int) -> dict[str, Any]:
        return {
            # One Arrow block for the whole block: measured faster than threads over 1 MiB ones.
            "read_options": pa_csv.ReadOptions(column_names=self.names, block_size=size + 1),
            "parse_options": pa_csv.ParseOptions(
                delimiter=self.delimiter, quote_char=False, double_quote=False
            ),
            # Every value text, an empty one null (as on the line by line path).
            "convert_options": pa_csv.ConvertOptions(
                column_types=dict.fromkeys(self.names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        }

    def _longest_line(self, table: pa.Table, block_size: int) -> int:
        if block_size <= self.limit:
            return block_size
        sizes = [pc.fill_null(pc.binary_length(column), 0) for column in table.columns]
        total = sizes[0]
        for size in sizes[1:]:
            total = pc.add(total, size)
        return (pc.max(total).as_py() or 0) + len(sizes) - 1


def _sniff_delimiter(header: str) -> str:
    def fields(delimiter: str) -> int:
        try:
            return len(next(csv.reader([header], delimiter=delimiter), []))
        except csv.Error:  # the header's own reading says what is wrong with it
            return 0

    return max(DELIMITERS, key=fields)  # max keeps the first of equals: `,` wins ties


def _allow_long_fields(max_line_bytes: int) -> None:
    # The csv module's limit is process-wide (128 KiB by default): raised, never lowered, to
    # what a line may hold; a longer quoted field is that record's reject.
    if csv.field_size_limit() < max_line_bytes:
        csv.field_size_limit(max_line_bytes)


def _column_names(file_name: str, fields: list[str]) -> list[str]:
    # dlt refuses a blank column name: like an empty one, it is named after its place.
    names = [name if name.strip() else f"column_{n}" for n, name in enumerate(fields, 1)]
    by_column: dict[str, list[int]] = {}
    for n, name in enumerate(names, 1):
        by_column.setdefault(_NAMING.normalize_identifier(name), []).append(n)
    duplicates = [ns for ns in by_column.values() if len(ns) > 1]
    if duplicates:
        described = "; ".join(_describe(names, ns) for ns in duplicates)
        raise CsvFileError(f"{file_name}: duplicate header names: {described}")
    reserved = [n for column, ns in by_column.items() if _is_reserved(column) for n in ns]
    if reserved:
        described = "; ".join(f"{names[n - 1]} (column {n})" for n in reserved)
        raise CsvFileError(f"{file_name}: header names reserved for the pipeline: {described}")
    return names


def _is_reserved(column: str) -> bool:
    return column in RESERVED_COLUMNS or column.startswith("_dlt")


def _describe(names: list[str], columns: list[int]) -> str:
    """`name (columns 2 and 4)`, or `Name / name (columns 2 and 4)` if spelt differently."""
    spellings = list(dict.fromkeys(names[n - 1] for n in columns))
    numbers = [str(n) for n in columns]
    listed = ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return f"{' / '.join(spellings)} (columns {listed})"


def _with_file_columns(table: pa.Table, file_name: str, first_line: int) -> pa.Table:
    """A block's rows (no rejects) with their file columns, built without Python objects."""
    n = table.num_rows
    lines = pc.add(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), first_line - 1)
    no_text = pa.nulls(n, pa.string())
    file_columns = [pa.repeat(pa.scalar(file_name, pa.string()), n), lines, no_text, no_text]
    for name, column in zip(FILE_COLUMNS, file_columns, strict=True):
        table = table.append_column(name, column)
    return table


@dataclass
class _Batch:
    """Rows and reject rows gathered for one Arrow batch."""

    names: list[str]
    file_name: str
    header_line: int
    rows: list[list[str] | None] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: dict[int, tuple[str, str]] = field(default_factory=dict)  # index: (reason, text)

    @property
    def size(self) -> int:
        return len(self.rows)

    def row(self, fields: list[str], line: int) -> None:
        self.rows.append(fields)
        self.lines.append(line - self.header_line)

    def reject(self, line: int, reason: str, text: str) -> None:
        self.rejects[len(self.rows)] = (reason, text)
        self.rows.append(None)
        self.lines.append(line - self.header_line)

    def flush(self) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays(
            [*self._data_columns(), *self._file_columns()], [*self.names, *FILE_COLUMNS]
        )
        self.rows, self.lines, self.rejects = [], [], {}
        return batch

    def _data_columns(self) -> list[pa.Array]:
        rows: list[Any] = self.rows
        if self.rejects:
            empty = [None] * len(self.names)
            rows = [empty if r is None else r for r in rows]
        columns = zip(*rows, strict=True) if rows else [()] * len(self.names)
        # An empty value is null, as on Arrow's path.
        return [_empty_to_null(pa.array(values, pa.string())) for values in columns]

    def _file_columns(self) -> list[pa.Array]:
        n = len(self.rows)
        reasons: list[str | None] = [None] * n
        texts: list[str | None] = [None] * n
        for index, (reason, text) in self.rejects.items():
            reasons[index], texts[index] = reason, text
        return [
            pa.array([self.file_name] * n, pa.string()),
            pa.array(self.lines, pa.int64()),
            pa.array(reasons, pa.string()),
            pa.array(texts, pa.string()),
        ]


def _empty_to_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


@contextlib.contextmanager
def _local_copy(file: FileItemDict) -> Iterator[str]:
    """A local path: the file itself, or a temporary copy of a remote object."""
    if file["file_url"].startswith("file://"):
        yield file["file_url"].removeprefix("file://")
        return
    # Streamed to disk in blocks: the object is never whole in memory (read_bytes held it all).
    with tempfile.NamedTemporaryFile(suffix=".csv") as copy:
        with file.open(mode="rb", compression="disable") as remote:
            shutil.copyfileobj(remote, copy, BLOCK_BYTES)
        copy.flush()
        yield copy.name


def _s3_credentials() -> AwsCredentials:
    """From the standard AWS env vars; the endpoint from INGEST_S3_ENDPOINT_URL (MinIO, the
    local emulator), empty meaning AWS itself."""
    return AwsCredentials(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        endpoint_url=get_settings().s3_endpoint_url or None,
    )


def _bucket_url(path: str) -> str:
    if "://" in path:
        return path
    return "file://" + os.path.abspath(path)


RAW = RawLayer("rows", csv_source, RAW_DESCRIPTION)
