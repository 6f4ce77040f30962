"""A `csv` raw row → item fields, by the instance's `mapping` from the tenants file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import map_columns_with, map_with

if TYPE_CHECKING:
    import pyarrow as pa


def map_csv_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    return map_with(instance.options.get("mapping") or {}, row)


def map_csv_batch(batch: pa.Table, instance: SourceInstance) -> Mapping[str, Any] | None:
    """The same mapping on a batch, column by column (the bulk path)."""
    return map_columns_with(instance.options.get("mapping") or {}, batch)


NORMALIZED = NormalizedLayer("items", map_csv_row, map_csv_batch)
