from ingest_pipeline.lib.raw_assets import build_raw_assets, ingest_job
from ingest_pipeline.sources.stripe.source import stripe_source

raw_stripe_assets = build_raw_assets(
    "stripe",
    stripe_source,
    "Stripe events from /v1/events (data kept as JSON), one partition per tenant.instance.",
)
ingest_stripe_job = ingest_job("stripe", raw_stripe_assets)
