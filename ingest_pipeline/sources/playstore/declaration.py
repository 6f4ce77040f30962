"""The `playstore` source type: Google Play reviews (Android Publisher API)."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.playstore import DEMO
from ingest_pipeline.sources.playstore.mapper import NORMALIZED
from ingest_pipeline.sources.playstore.options import Options
from ingest_pipeline.sources.playstore.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
