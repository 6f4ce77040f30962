"""The `rest_api` source type: any paginated REST API, configured per instance (dlt's rest_api)."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.catalog_api import DEMO
from ingest_pipeline.sources.rest_api.mapper import NORMALIZED
from ingest_pipeline.sources.rest_api.options import Options
from ingest_pipeline.sources.rest_api.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
