"""The settings of a `twitter` instance (X API v2 recent search)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import EVERY_15_MINUTES, EnvName, SourceOptions


class Options(SourceOptions):
    schedule: str = EVERY_15_MINUTES  # the type's default cron
    query: str = Field(min_length=1)  # a recent-search query, e.g. "@acme"
    token_env: EnvName  # an app bearer token
    base_url: str = "https://api.x.com"
    page_size: int = Field(default=100, ge=10, le=100)  # max_results: X takes 10..100
