from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.twitter.source import twitter_source

raw_twitter_assets = build_raw_assets(
    "twitter",
    twitter_source,
    "Tweets from X API v2 recent search with their authors from includes.users, one partition per tenant.instance.",
)
ingest_twitter_job = ingest_job("twitter", raw_twitter_assets)
