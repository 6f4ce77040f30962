"""The `rss` source type: RSS 2.0, RSS 1.0 (RDF) and Atom feeds."""

from __future__ import annotations

from ingest_pipeline.lib.source_types import NormalizedLayer, RawLayer, SourceDeclaration
from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.feeds import FeedServer
from ingest_pipeline.sources.rss.mapper import map_rss_row
from ingest_pipeline.sources.rss.options import Options
from ingest_pipeline.sources.rss.source import rss_source

RAW_DESCRIPTION = (
    "RSS 2.0, RSS 1.0 and Atom feed entries as the feeds sent them, one partition per "
    "tenant.instance."
)


def demo_sandbox(port: int) -> FeedServer:
    """The feed server: an RSS 2.0, an RDF and an Atom feed, and a broken one."""
    return FeedServer(port=port)


SOURCE_TYPE = SourceDeclaration(
    Options,
    RawLayer("entries", rss_source, RAW_DESCRIPTION),
    NormalizedLayer("items", map_rss_row),
    sandbox_part(8082, demo_sandbox),
)
