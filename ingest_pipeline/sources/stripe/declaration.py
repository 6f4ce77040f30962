"""The `stripe` source type: Stripe's events API (signed webhooks land beside it)."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.stripe import DEMO
from ingest_pipeline.sources.stripe.mapper import NORMALIZED
from ingest_pipeline.sources.stripe.options import Options
from ingest_pipeline.sources.stripe.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
