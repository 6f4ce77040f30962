from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.rss.source import rss_source

raw_rss_assets = build_raw_assets(
    "rss",
    rss_source,
    "RSS 2.0, RSS 1.0 and Atom feed entries as the feeds sent them, one partition per tenant.instance.",
)
ingest_rss_job = ingest_job("rss", raw_rss_assets)
