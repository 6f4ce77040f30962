"""The validators of the normalized shapes. What fails here goes to the rejects table.

The shapes and their constraints are declared once, with their tables, in
`ingest_pipeline.domain.entities` (TypedDicts with `Annotated` constraints); these are their
pydantic TypeAdapters under the names the mappers and loaders use.
"""

from __future__ import annotations

from typing import Any

from ingest_pipeline.domain.entities import EVENTS, ITEMS
from ingest_pipeline.domain.entities import FEEDBACK as FEEDBACK_TABLE

ITEM = ITEMS.validator
FEEDBACK = FEEDBACK_TABLE.validator
APP_EVENT = EVENTS.validator


def blank_to_none(fields: dict[str, Any]) -> dict[str, Any]:
    """An empty or all-blank value means absent (CSV cells, empty XML elements)."""
    return {k: None if isinstance(v, str) and not v.strip() else v for k, v in fields.items()}
