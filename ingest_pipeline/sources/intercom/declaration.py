"""The `intercom` source type: Intercom conversations (pulled; webhooks land beside them)."""

from __future__ import annotations

import os

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.intercom import IntercomSandbox, sample_conversations
from ingest_pipeline.sources.intercom.mapper import map_intercom_row
from ingest_pipeline.sources.intercom.options import Options
from ingest_pipeline.sources.intercom.source import intercom_source

RAW_DESCRIPTION = (
    "Intercom conversations from /conversations/search (parts included), one partition per "
    "tenant.instance."
)
DEMO_SECRET_ENV = "DEMO_INTERCOM_SECRET"


def demo_sandbox(port: int) -> IntercomSandbox:
    """A workspace with 12 conversations; a little weather: the first request answers 503."""
    sandbox = IntercomSandbox(port)
    sandbox.add_account(os.environ[DEMO_SECRET_ENV], sample_conversations(12))
    sandbox.server.faults.queue = [503]
    return sandbox


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("conversations", intercom_source, RAW_DESCRIPTION),
    NormalizedLayer("feedback", map_intercom_row),
    sandbox_part(8086, demo_sandbox, {DEMO_SECRET_ENV: "demo-intercom-secret"}),
)
