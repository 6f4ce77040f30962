"""The settings of a `csv` instance (the source's module docstring says what each does)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import HOURLY, SourceOptions


class Options(SourceOptions):
    schedule: str = HOURLY  # the type's default cron
    path: str = Field(min_length=1)  # a local folder or an s3://bucket/prefix
    glob: str = "*.csv"
    delimiter: str | None = None  # one character; sniffed from the header when unset
    encoding: str | None = None  # every line decoded with it; UTF-8 (Latin-1 per line) if unset
    mapping: dict[str, str] = Field(default_factory=dict)  # entity field: CSV column
