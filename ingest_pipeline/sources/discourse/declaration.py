"""The `discourse` source type: a Discourse forum's latest posts."""

from __future__ import annotations

import os

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.discourse import DiscourseSandbox, sample_posts
from ingest_pipeline.sources.discourse.mapper import map_discourse_row
from ingest_pipeline.sources.discourse.options import Options
from ingest_pipeline.sources.discourse.source import discourse_source

RAW_DESCRIPTION = "Discourse posts from /posts.json, one partition per tenant.instance."
DEMO_SECRET_ENV = "DEMO_DISCOURSE_SECRET"


def demo_sandbox(port: int) -> DiscourseSandbox:
    """A forum with 18 posts; the demo key acts as the user `system`."""
    sandbox = DiscourseSandbox(port)
    sandbox.add_account(os.environ[DEMO_SECRET_ENV], "system", sample_posts(18))
    return sandbox


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("posts", discourse_source, RAW_DESCRIPTION),
    NormalizedLayer("feedback", map_discourse_row),
    sandbox_part(8085, demo_sandbox, {DEMO_SECRET_ENV: "demo-discourse-secret"}),
)
