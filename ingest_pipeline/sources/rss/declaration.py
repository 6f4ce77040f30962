"""The `rss` source type: RSS 2.0, RSS 1.0 (RDF) and Atom feeds."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.feeds import DEMO
from ingest_pipeline.sources.rss.mapper import NORMALIZED
from ingest_pipeline.sources.rss.options import Options
from ingest_pipeline.sources.rss.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
