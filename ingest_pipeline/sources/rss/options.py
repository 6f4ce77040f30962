"""The settings of an `rss` instance."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import HOURLY, SourceOptions


class Options(SourceOptions):
    schedule: str = HOURLY  # the type's default cron
    url: str = Field(min_length=1)  # an RSS 2.0, RSS 1.0 (RDF) or Atom document
