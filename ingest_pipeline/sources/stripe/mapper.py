"""Stripe's mapper is the payments rule itself, `payment_from_event(event, tenant)`: the payments
normalizer (defs/normalized/payments.py) merges events into one row per PaymentIntent."""

from __future__ import annotations

from ingest_pipeline.domain.payments import payment_from_event
from ingest_pipeline.lib.source_types import NormalizedLayer

NORMALIZED = NormalizedLayer("payments", payment_from_event)
