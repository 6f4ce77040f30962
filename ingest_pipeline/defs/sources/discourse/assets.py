from ingest_pipeline.defs.sources.discourse.source import discourse_source
from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job

raw_discourse_assets = build_raw_assets(
    "discourse",
    discourse_source,
    "Discourse posts from /posts.json, one partition per tenant.instance.",
)
ingest_discourse_job = ingest_job("discourse", raw_discourse_assets)
