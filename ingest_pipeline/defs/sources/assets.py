"""The raw layer of every registered source type: its raw asset and its `ingest_<type>` job.

Built from the registry (`lib/source_types.SOURCE_TYPES`), so a new package under
`ingest_pipeline/sources/` has its raw asset and job without an edit here. Dagster's defs-folder
loader collects module-level lists of definitions, so each kind of object is one list.
"""

import dagster as dg

from ingest_pipeline.defs.sources.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.lib.source_types import SOURCE_TYPES

_RAW = {name: build_raw_assets(kind) for name, kind in SOURCE_TYPES.items()}

raw_assets: list[dg.AssetsDefinition] = list(_RAW.values())
ingest_jobs = [ingest_job(kind, _RAW[name]) for name, kind in SOURCE_TYPES.items()]
