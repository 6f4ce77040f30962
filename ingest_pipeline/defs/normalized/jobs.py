"""`normalize_<entity>`: one normalized asset with its checks, and the rejects' counts, one run.

Unpartitioned like the assets: a run consumes every pending raw load of the entity, whatever
instance loaded it. The automation sensor normally launches these assets by itself; the jobs are
for the CLI (`ingest` runs one after a successful raw run), the UI and `dagster job execute`.
In process: one step after another (the warehouse pool serializes them on DuckDB anyway).
"""

from typing import Any

import dagster as dg

from ingest_pipeline.defs.normalized.checks import with_own_checks
from ingest_pipeline.defs.normalized.rejected import REJECTS_KEY
from ingest_pipeline.defs.sources.raw_assets import normalize_job_name, normalized_asset_key
from ingest_pipeline.lib.resources import LOAD_MAX_RUNTIME_SECONDS, max_runtime_tags


def normalize_job(entity: str) -> Any:
    # The asset's own checks; those recorded on a clock of their own are not run here.
    return dg.define_asset_job(
        normalize_job_name(entity),
        selection=with_own_checks(normalized_asset_key(entity))
        | dg.AssetSelection.assets(REJECTS_KEY),
        tags=max_runtime_tags(LOAD_MAX_RUNTIME_SECONDS),
        description=f"Normalize every raw load of normalized/{entity} not yet normalized, run "
        "its checks and record the rejects' counts.",
    )


normalize_items_job = normalize_job("items")
normalize_feedback_job = normalize_job("feedback")
normalize_payments_job = normalize_job("payments")
