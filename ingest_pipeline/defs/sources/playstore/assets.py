from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.playstore.source import playstore_source

raw_playstore_assets = build_raw_assets(
    "playstore",
    playstore_source,
    "Google Play reviews as the Android Publisher API sent them (developer replies included), one partition per tenant.instance.",
)
ingest_playstore_job = ingest_job("playstore", raw_playstore_assets)
