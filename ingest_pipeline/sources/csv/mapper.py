"""A `csv` raw row → item fields, by the instance's `mapping` from the tenants file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import map_with


def map_csv_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    return map_with(instance.options.get("mapping") or {}, row)


NORMALIZED = NormalizedLayer("items", map_csv_row)
