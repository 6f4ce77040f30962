"""The `playstore` source type: Google Play reviews (Android Publisher API)."""

from __future__ import annotations

import os

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.playstore import PlayStoreSandbox, sample_reviews
from ingest_pipeline.sources.playstore.mapper import map_playstore_row
from ingest_pipeline.sources.playstore.options import Options
from ingest_pipeline.sources.playstore.source import playstore_source

RAW_DESCRIPTION = (
    "Google Play reviews as the Android Publisher API sent them (developer replies included), "
    "one partition per tenant.instance."
)
DEMO_SECRET_ENV = "DEMO_PLAYSTORE_SECRET"
DEMO_PACKAGE = "com.initech.app"  # the package tenants.example.yaml names


def demo_sandbox(port: int) -> PlayStoreSandbox:
    """Google Play with 25 reviews of the demo tenant's app."""
    sandbox = PlayStoreSandbox(port)
    sandbox.add_account(os.environ[DEMO_SECRET_ENV], DEMO_PACKAGE, sample_reviews(25))
    return sandbox


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("reviews", playstore_source, RAW_DESCRIPTION),
    NormalizedLayer("feedback", map_playstore_row),
    sandbox_part(8083, demo_sandbox, {DEMO_SECRET_ENV: "demo-playstore-secret"}),
)
