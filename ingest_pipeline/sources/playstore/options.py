"""The settings of a `playstore` instance (Google Play Android Publisher API)."""

from __future__ import annotations

from pydantic import Field

from ingest_pipeline.lib.source_types import EVERY_15_MINUTES, EnvName, SourceOptions


class Options(SourceOptions):
    schedule: str = EVERY_15_MINUTES  # the type's default cron
    package_name: str = Field(min_length=1)  # the app's package, e.g. com.example.app
    token_env: EnvName  # an OAuth access token of the publisher account
    base_url: str = "https://androidpublisher.googleapis.com"
    page_size: int = Field(default=100, ge=1)  # maxResults
