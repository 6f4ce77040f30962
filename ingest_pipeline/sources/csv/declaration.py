"""The `csv` source type: CSV files in a local folder or under an S3 prefix."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import SourceDeclaration
from ingest_pipeline.sandbox.catalog_csv import DEMO
from ingest_pipeline.sources.csv.mapper import NORMALIZED
from ingest_pipeline.sources.csv.options import Options
from ingest_pipeline.sources.csv.source import RAW

SOURCE_TYPE = SourceDeclaration(Options, RAW, NORMALIZED, DEMO)
