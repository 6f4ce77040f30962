"""The `intercom` source type: Intercom conversations (pulled; webhooks land beside them)."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.intercom import DEMO
from ingest_pipeline.sources.intercom.mapper import NORMALIZED
from ingest_pipeline.sources.intercom.options import Options
from ingest_pipeline.sources.intercom.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
