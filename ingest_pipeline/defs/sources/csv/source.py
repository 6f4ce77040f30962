"""CSV files from a local folder or an `s3://bucket/prefix`, through dlt's filesystem source.

dlt's `filesystem` resource lists the files and keeps an incremental cursor on their
modification date, so only new or changed files are read on the next run. DuckDB's CSV reader
does the parsing (header, delimiter and quoting sniffed) and hands out Arrow batches, which
dlt loads without ever turning rows into Python objects.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import dlt
import duckdb
import pyarrow as pa
from dlt.common.configuration.specs import AwsCredentials
from dlt.sources.filesystem import FileItemDict, filesystem

from ingest_pipeline.lib.dlt_pipelines import instance_columns
from ingest_pipeline.lib.tenants import SourceInstance
from ingest_pipeline.settings import get_settings

BATCH_ROWS = 100_000
FALLBACK_ENCODING = "latin-1"  # decodes any byte sequence: the last resort of the sniffing


class CsvFileError(RuntimeError):
    """A file could not be parsed as CSV at all."""


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
        delimiter=options.get("delimiter"), encoding=options.get("encoding")
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
    files: list[FileItemDict], delimiter: str | None = None, encoding: str | None = None
) -> Iterator[pa.RecordBatch]:
    for file in files:
        yield from _read_file(file, delimiter, encoding)


def _read_file(file: FileItemDict, delimiter: str | None, encoding: str | None):
    # Every value stays text: raw keeps what the file said, typing is the normalized layer's job
    # (and a column that is numeric in one file and not in the next cannot break the raw table).
    with _local_copy(file) as path:
        for attempt_encoding in [encoding] if encoding else ["utf-8", FALLBACK_ENCODING]:
            try:
                # Parsed whole before anything is yielded, so a decoding error late in the file
                # can still switch encodings without half the file already loaded.
                batches = list(_parse(path, delimiter, attempt_encoding))
            except duckdb.Error as exc:
                retry = not encoding and attempt_encoding != FALLBACK_ENCODING
                if retry and "unicode" in str(exc).lower():
                    continue
                message = str(exc).splitlines()[0]
                raise CsvFileError(
                    f"{file['file_name']}: not a readable CSV file: {message}"
                ) from exc
            for line_offset, batch in batches:
                yield _with_file_columns(batch, file["file_name"], line_offset)
            return


@contextlib.contextmanager
def _local_copy(file: FileItemDict) -> Iterator[str]:
    """A local path for DuckDB: the file itself, or a temporary copy of a remote object."""
    if file["file_url"].startswith("file://"):
        yield file["file_url"].removeprefix("file://")
        return
    with tempfile.NamedTemporaryFile(suffix=".csv") as copy:
        copy.write(file.read_bytes())
        copy.flush()
        yield copy.name


def _parse(path: str, delimiter: str | None, encoding: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    sep = ", delim = $delim" if delimiter else ""
    params = {"path": path, "encoding": encoding, **({"delim": delimiter} if delimiter else {})}
    con = duckdb.connect()
    try:
        relation = con.execute(
            f"SELECT * FROM read_csv($path, header = true, all_varchar = true, "
            f"encoding = $encoding{sep})",
            params,
        )
        offset = 0
        for batch in relation.to_arrow_reader(BATCH_ROWS):
            yield offset, batch
            offset += batch.num_rows
    finally:
        con.close()


def _with_file_columns(batch: pa.RecordBatch, file_name: str, offset: int) -> pa.RecordBatch:
    n = batch.num_rows
    batch = batch.append_column("_file", pa.array([file_name] * n, pa.string()))
    # The data line number in the file (1 = first line after the header): a stable row reference.
    return batch.append_column("_line", pa.array(range(offset + 1, offset + n + 1), pa.int64()))


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
