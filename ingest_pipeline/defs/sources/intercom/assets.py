from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.intercom.source import intercom_source

raw_intercom_assets = build_raw_assets(
    "intercom",
    intercom_source,
    "Intercom conversations from /conversations/search (parts included), one partition per tenant.instance.",
)
ingest_intercom_job = ingest_job("intercom", raw_intercom_assets)
