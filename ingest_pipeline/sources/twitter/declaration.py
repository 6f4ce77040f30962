"""The `twitter` source type: X API v2 recent search."""

from __future__ import annotations

import os

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.twitter import TwitterSandbox, sample_tweets
from ingest_pipeline.sources.twitter.mapper import map_twitter_row
from ingest_pipeline.sources.twitter.options import Options
from ingest_pipeline.sources.twitter.source import twitter_source

RAW_DESCRIPTION = (
    "Tweets from X API v2 recent search with their authors from includes.users, one partition "
    "per tenant.instance."
)
DEMO_SECRET_ENV = "DEMO_TWITTER_SECRET"


def demo_sandbox(port: int) -> TwitterSandbox:
    """X with 30 tweets; a little weather: every third request is rate-limited (dlt waits)."""
    sandbox = TwitterSandbox(port)
    sandbox.add_account(os.environ[DEMO_SECRET_ENV], *sample_tweets(30))
    sandbox.server.faults.every_nth_rate_limited = 3
    return sandbox


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("tweets", twitter_source, RAW_DESCRIPTION),
    NormalizedLayer("feedback", map_twitter_row),
    sandbox_part(8084, demo_sandbox, {DEMO_SECRET_ENV: "demo-twitter-secret"}),
)
