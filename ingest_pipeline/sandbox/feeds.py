"""A feed server: RSS 2.0, RSS 1.0 (RDF) and Atom documents with ETag / Last-Modified."""

from __future__ import annotations

import hashlib

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer

LAST_MODIFIED = "Mon, 05 Jan 2026 10:00:00 GMT"


class FeedServer:
    """Serves `feeds[path]` (bytes); answers 304 to a matching conditional GET."""

    def __init__(self, feeds: dict[str, bytes] | None = None, port: int = 0):
        self.feeds = feeds if feeds is not None else sample_feeds()
        self.server = SandboxServer(self.handle, port)

    def handle(self, request: Request) -> Response:
        body = self.feeds.get(request.path)
        if body is None:
            return Response(404, b"not found")
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("if-none-match") == etag:
            return Response(304, b"", {"ETag": etag})
        return Response(
            200,
            body,
            {"Content-Type": "application/xml", "ETag": etag, "Last-Modified": LAST_MODIFIED},
        )


RSS2 = b"""<?xml version="1.0"?>
<rss version="2.0"><channel><title>Eng blog</title><link>https://blog.example/</link>
<item><title>Shipping dlt</title><link>https://blog.example/dlt</link><guid>post-1</guid>
<pubDate>Mon, 05 Jan 2026 09:30:00 +0100</pubDate><author>ada@example.com</author>
<description>How we load.</description></item>
<item><title>Dagster in prod</title><link>https://blog.example/dagster</link><guid>post-2</guid>
<pubDate>Tue, 06 Jan 2026 12:00:00 GMT</pubDate><description>Assets all the way.</description></item>
<item><title>No guid, only a link</title><link>https://blog.example/link-only</link>
<pubDate>Wed, 07 Jan 2026 08:00:00 GMT</pubDate></item>
</channel></rss>"""

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://news.example/"><title>News</title><link>https://news.example/</link>
<description>n</description></channel>
<item rdf:about="https://news.example/a"><title>RDF item A</title><link>https://news.example/a</link>
<dc:date>2026-01-03T10:00:00+02:00</dc:date><dc:creator>Grace</dc:creator></item>
<item rdf:about="https://news.example/b"><title>RDF item B</title><link>https://news.example/b</link>
<dc:date>2026-01-04T10:00:00Z</dc:date></item>
</rdf:RDF>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Releases</title><id>urn:releases</id>
<updated>2026-01-02T00:00:00Z</updated>
<entry><title>v1.0</title><id>urn:release:1.0</id><link href="https://rel.example/1.0"/>
<updated>2026-01-02T00:00:00Z</updated><published>2026-01-01T23:00:00-01:00</published>
<author><name>Linus</name></author><summary>First.</summary></entry>
</feed>"""

# Recoverable damage: feedparser still finds an entry (without guid or link: a reject).
DAMAGED = b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>unterminated"
BROKEN = b"\x00\x01 this is not XML at all {]"


def sample_feeds() -> dict[str, bytes]:
    return {
        "/feed.xml": RSS2,
        "/rdf.xml": RSS1,
        "/atom.xml": ATOM,
        "/damaged.xml": DAMAGED,
        "/broken.xml": BROKEN,
    }


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
def demo_sandbox(port: int) -> FeedServer:
    """The feed server: an RSS 2.0, an RDF and an Atom feed, and a broken one."""
    return FeedServer(port=port)


DEMO = sandbox_part(8082, demo_sandbox)
