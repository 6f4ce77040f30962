from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.discourse.source import discourse_source

raw_discourse_assets = build_raw_assets(
    "discourse",
    discourse_source,
    "Discourse posts from /posts.json, one partition per tenant.instance.",
)
ingest_discourse_job = ingest_job("discourse", raw_discourse_assets)
