"""RSS 2.0, RSS 1.0 (RDF) and Atom feeds as a dlt source (feedparser does the parsing).

Conditional GET: the feed's ETag and Last-Modified live in the resource state of the instance's
pipeline, so an unchanged feed answers 304 and costs nothing. Retries are dlt's requests helper.

`parse_feed` is the pure part: whatever the bytes, it returns the raw entries or raises FeedError
(the instance fails alone). feedparser is handed a stream, never the bytes themselves: given bytes
or text it first tries them as a file name (or a URL) and would read that file instead. A date
feedparser resolved to something datetime cannot hold leaves that date empty, not the feed.
"""

from __future__ import annotations

import calendar
import hashlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dlt
import feedparser
from dlt.sources.helpers import requests

from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import RawLayer
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
    response = requests.get(url, headers=_conditional_headers(state), timeout=30)
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
