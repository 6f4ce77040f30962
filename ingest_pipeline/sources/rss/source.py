"""RSS 2.0, RSS 1.0 (RDF) and Atom feeds as a dlt source (feedparser does the parsing).

Conditional GET: the feed's ETag and Last-Modified live in the resource state of the instance's
pipeline, so an unchanged feed answers 304 and costs nothing. Retries are dlt's requests helper.

feedparser has no streaming API: the body is held in memory, so it is bounded. It is read by a
response hook (`_capped_body`), inside the request dlt retries (a connection broken mid-body is
retried, as when requests read the body itself), and never past INGEST_FEED_MAX_BYTES
(decompressed): a feed declaring more (Content-Length) is refused before it is read, one that
turns out longer is refused when it gets there. Either fails the instance alone, with a
FeedError naming the feed and the limit.

`parse_feed` is the pure part: whatever the bytes, it returns the raw entries or raises FeedError
(the instance fails alone). feedparser is handed a stream, never the bytes themselves: given bytes
or text it first tries them as a file name (or a URL) and would read that file instead. A date
feedparser resolved to something datetime cannot hold leaves that date empty, not the feed.
"""

from __future__ import annotations

import calendar
import hashlib
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
import feedparser
from dlt.sources.helpers import requests
from requests import Response

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
from ingest_pipeline.settings import get_settings
from ingest_pipeline.sources.dlt_pipelines import for_instance, instance_key

# What the raw asset holds: its description in RAW, declared at the end beside the dlt source.
RAW_DESCRIPTION = (
    "RSS 2.0, RSS 1.0 and Atom feed entries as the feeds sent them, one partition per "
    "tenant.instance."
)


class FeedError(RuntimeError):
    """The feed could not be fetched or parsed at all."""


@dlt.source(name="rss")
def rss_source(instance: SourceInstance | None = None) -> Any:
    return for_instance(feed_entries(instance), instance)


@dlt.resource(
    name="entries",
    write_disposition="merge",
    primary_key=instance_key("entry_key"),
)
def feed_entries(instance: SourceInstance | None) -> Iterator[dict[str, Any]]:
    if instance is None:
        return
    url = instance.options["url"]
    state = dlt.current.resource_state()
    response = requests.get(
        url,
        headers=_conditional_headers(state),
        timeout=30,
        stream=True,  # the hook reads the body, within the limit
        hooks={"response": _capped_body(url, get_settings().feed_max_bytes)},
    )
    if response.status_code == 304:
        return
    if response.status_code >= 400:
        raise FeedError(f"feed {url} answered HTTP {response.status_code}")
    yield from parse_feed(response.content, url)
    # Only remember the validators once every entry is out: a failed run fetches again.
    state["etag"] = response.headers.get("ETag")
    state["last_modified"] = response.headers.get("Last-Modified")


def parse_feed(content: bytes, url: str) -> list[dict[str, Any]]:
    """The raw entries of an RSS/Atom document; FeedError if it is not a feed at all."""
    feed = feedparser.parse(io.BytesIO(content))
    # .get: an empty body has no "version" key at all (attribute access raises AttributeError).
    if not feed.entries and (feed.bozo or not feed.get("version")):
        reason = feed.get("bozo_exception") or "not an RSS or Atom document"
        raise FeedError(f"feed {url} cannot be parsed: {reason}")
    return [_raw_entry(entry) for entry in feed.entries]


def _capped_body(url: str, max_bytes: int) -> Callable[..., Response]:
    """A response hook that reads the body within the request, at most `max_bytes` of it
    (decompressed). A successful answer beyond that raises FeedError; another (a redirect, an
    error page) is left with an empty body: its status says what happened."""

    def read(response: Response, *args: Any, **kwargs: Any) -> Response:
        is_feed = 200 <= response.status_code < 300 and not response.is_redirect
        declared = response.headers.get("Content-Length", "")
        encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
        if not encoded and declared.isdigit() and int(declared) > max_bytes:
            body, why = None, f"feed {url} is {declared} bytes, {_larger(max_bytes)}"
        else:
            body, why = _read_at_most(response, max_bytes), f"feed {url} is {_larger(max_bytes)}"
        if body is None:
            response.close()  # the rest of the body is never read: the connection goes
            if is_feed:
                raise FeedError(why)
        # What Response.content does once it has read the body: `content` returns it from here.
        response._content, response._content_consumed = body or b"", True
        response.close()  # read to its end: the connection goes back to the pool
        return response

    return read


def _read_at_most(response: Response, max_bytes: int) -> bytes | None:
    """The body, or None once it is longer than max_bytes (not read further)."""
    body = bytearray()
    for chunk in response.iter_content(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:
            return None
    return bytes(body)


def _larger(max_bytes: int) -> str:
    return f"larger than INGEST_FEED_MAX_BYTES ({max_bytes} bytes)"


_CHUNK_BYTES = 64 * 1024


def _conditional_headers(state: dict[str, Any]) -> dict[str, str]:
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9"}
    if state.get("etag"):
        headers["If-None-Match"] = state["etag"]
    if state.get("last_modified"):
        headers["If-Modified-Since"] = state["last_modified"]
    return headers


def _raw_entry(entry: Any) -> dict[str, Any]:
    """The entry as the feed sent it, plus the key and UTC dates feedparser resolved."""
    return {
        # An entry with neither guid nor link still needs a raw key; the normalized layer
        # rejects it with that reason.
        "entry_key": entry.get("id") or entry.get("link") or _content_key(entry),
        "id": entry.get("id"),
        "link": entry.get("link"),
        "title": entry.get("title"),
        "summary": entry.get("summary"),
        "author": entry.get("author"),
        "published": entry.get("published"),
        "updated": entry.get("updated"),
        "published_utc": _utc(entry.get("published_parsed")),
        "updated_utc": _utc(entry.get("updated_parsed")),
    }


def _content_key(entry: Any) -> str:
    content = "\x1f".join(str(entry.get(f) or "") for f in ("title", "summary", "published"))
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def _utc(parsed: Any) -> str | None:
    # feedparser normalizes every date format it knows to a UTC struct_time.
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).isoformat()
    except (ValueError, OverflowError, OSError):  # a year datetime cannot hold: no date
        return None


RAW = RawLayer("entries", rss_source, RAW_DESCRIPTION)
