"""A `rest_api` raw row → item fields, by its resource's `mapping` from the tenants file."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import NormalizedLayer
from ingest_pipeline.sources.raw_rows import map_with
from ingest_pipeline.sources.rest_api.source import RESOURCE_COLUMN


def map_rest_api_row(row: Mapping[str, Any], instance: SourceInstance) -> dict[str, Any]:
    for resource in instance.options.get("resources", []):
        if resource["name"] == row.get(RESOURCE_COLUMN):
            return map_with(resource.get("mapping") or {}, row)
    raise ValueError(f"resource {row.get(RESOURCE_COLUMN)!r} is no longer configured")


NORMALIZED = NormalizedLayer("items", map_rest_api_row)
