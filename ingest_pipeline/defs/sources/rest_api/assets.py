from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.rest_api.source import rest_api_instance_source

raw_rest_api_assets = build_raw_assets(
    "rest_api",
    rest_api_instance_source,
    "Records of configured REST API resources, one table per tenant, instance and resource.",
)
ingest_rest_api_job = ingest_job("rest_api", raw_rest_api_assets)
