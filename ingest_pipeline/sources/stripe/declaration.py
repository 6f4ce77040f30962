"""The `stripe` source type: Stripe's events API (signed webhooks land beside it).

Its mapper is the payments rule itself, `payment_from_event(event, tenant)`: the payments
normalizer (defs/normalized/payments.py) merges events into one row per PaymentIntent.
"""

from __future__ import annotations

import os

from ingest_pipeline.domain.payments import payment_from_event
from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.stripe import StripeSandbox, sample_payment_events
from ingest_pipeline.sources.stripe.options import Options
from ingest_pipeline.sources.stripe.source import stripe_source

RAW_DESCRIPTION = (
    "Stripe events from /v1/events (data kept as JSON), one partition per tenant.instance."
)
DEMO_SECRET_ENV = "DEMO_STRIPE_SECRET"


def demo_sandbox(port: int) -> StripeSandbox:
    """An account whose events hold a dozen payments."""
    sandbox = StripeSandbox(port)
    sandbox.add_account(os.environ[DEMO_SECRET_ENV], sample_payment_events(12))
    return sandbox


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("events", stripe_source, RAW_DESCRIPTION),
    NormalizedLayer("payments", payment_from_event),
    sandbox_part(8087, demo_sandbox, {DEMO_SECRET_ENV: "demo-stripe-secret"}),
)
