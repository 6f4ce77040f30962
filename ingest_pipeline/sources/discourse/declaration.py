"""The `discourse` source type: a Discourse forum's latest posts."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.discourse import DEMO
from ingest_pipeline.sources.discourse.mapper import NORMALIZED
from ingest_pipeline.sources.discourse.options import Options
from ingest_pipeline.sources.discourse.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
