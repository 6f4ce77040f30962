"""The `twitter` source type: X API v2 recent search."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.twitter import DEMO
from ingest_pipeline.sources.twitter.mapper import NORMALIZED
from ingest_pipeline.sources.twitter.options import Options
from ingest_pipeline.sources.twitter.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
