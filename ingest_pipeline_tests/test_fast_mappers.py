"""Fast tier: the normalized mappers and shapes on plain dict rows (no warehouse, no run)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ingest_pipeline.defs.normalized.models import APP_EVENT, FEEDBACK, ITEM, blank_to_none
from ingest_pipeline.domain.tenants import SourceInstance
from ingest_pipeline.lib.source_types import SOURCE_TYPES, types_of_entity
from ingest_pipeline.sources.discourse.mapper import map_discourse_row
from ingest_pipeline.sources.intercom.mapper import map_intercom_row
from ingest_pipeline.sources.playstore.mapper import map_playstore_row
from ingest_pipeline.sources.raw_rows import (
    dig,
    fold_variants,
    from_unix,
    html_to_text,
    variant_columns,
)
from ingest_pipeline.sources.rest_api.mapper import map_rest_api_row
from ingest_pipeline.sources.rss.mapper import map_rss_row
from ingest_pipeline.sources.twitter.mapper import map_twitter_row

NOV_14 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # 1_700_000_000


def source(kind: str, **options: Any) -> SourceInstance:
    return SourceInstance(tenant="acme", type=kind, name="main", options=options)


def record(**fields: Any) -> dict[str, Any]:
    base = {
        "tenant_id": "acme",
        "source_type": "rss",
        "source_instance": "main",
        "external_id": "e1",
        "raw_load_id": "1700000000.1",
        "ingested_at": NOV_14,
    }
    return base | fields


def test_variant_columns_need_a_base_column_and_a_dlt_type() -> None:
    columns = ["a", "a__v_text", "b__v_text", "c", "c__v_json", "c__v_weird", "d__e"]
    assert variant_columns(columns) == {"a__v_text": "a", "c__v_json": "c"}


def test_fold_variants_moves_non_null_variants_into_the_base_column() -> None:
    rows = [
        {"updated_at": None, "updated_at__v_text": "yesterday-ish"},
        {"updated_at": "2026-01-01", "updated_at__v_text": None},
    ]
    fold_variants(rows, {"updated_at__v_text": "updated_at"})
    assert rows == [{"updated_at": "yesterday-ish"}, {"updated_at": "2026-01-01"}]


def test_dig_reads_flattened_columns_and_json_values() -> None:
    assert dig({"a__b__c": 1}, "a.b.c") == 1
    assert dig({"author": '{"username": "bob"}'}, "author.username") == "bob"
    assert dig({"comments": [{"x": 1}]}, "comments.0.x") == 1
    assert dig({"comments": [{"x": 1}]}, "comments.5.x") is None
    assert dig({"a": 5}, "a.b") is None


def test_html_to_text_and_from_unix() -> None:
    assert html_to_text("<p>Hello &amp; welcome</p><p>  again  </p>") == "Hello & welcome\nagain"
    assert html_to_text("line<br/>next") == "line\nnext"
    assert html_to_text("<br/>") is None and html_to_text(None) is None
    assert from_unix("1700000000") == NOV_14 and from_unix(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert from_unix("") is None and from_unix(None) is None


def test_rss_entries_fall_back_to_the_link_and_the_update_time() -> None:
    row = {"id": None, "link": "https://x.test/1", "title": "T", "updated_utc": NOV_14}
    mapped = map_rss_row(row, source("rss"))
    assert mapped["external_id"] == "https://x.test/1" and mapped["url"] == "https://x.test/1"
    assert mapped["published_at"] == NOV_14 and mapped["updated_at"] == NOV_14
    with pytest.raises(ValueError, match="neither a guid/id nor a link"):
        map_rss_row({"title": "no id"}, source("rss"))


def test_rest_api_rows_map_by_their_resource() -> None:
    mapping = {"external_id": "id", "title": "attributes.name"}
    instance = source("rest_api", resources=[{"name": "products", "mapping": mapping}])
    row = {"_resource": "products", "id": "p1", "attributes__name": "Widget"}
    assert map_rest_api_row(row, instance) == {"external_id": "p1", "title": "Widget"}
    with pytest.raises(ValueError, match="resource 'gone' is no longer configured"):
        map_rest_api_row({"_resource": "gone"}, instance)


def test_playstore_review_takes_the_user_comment() -> None:
    user = {
        "text": "Great",
        "starRating": 5,
        "reviewerLanguage": "en",
        "lastModified": {"seconds": "1700000000"},
    }
    comments = [{"developerComment": {"text": "Thanks"}}, {"userComment": user}]
    row = {"review_id": "r1", "author_name": "Ann", "comments": json.dumps(comments)}
    assert map_playstore_row(row, source("playstore")) == {
        "external_id": "r1",
        "thread_id": "r1",
        "author_name": "Ann",
        "text": "Great",
        "rating": 5,
        "language": "en",
        "created_at": NOV_14,
        "updated_at": NOV_14,
    }
    with pytest.raises(ValueError, match="no userComment"):
        map_playstore_row({"review_id": "r2", "comments": comments[:1]}, source("playstore"))


def test_twitter_discourse_and_intercom_rows() -> None:
    tweet = {"id": "11", "conversation_id": "10", "author": {"username": "bob"}, "text": "hi"}
    assert map_twitter_row(tweet, source("twitter"))["url"] == "https://x.com/bob/status/11"
    assert map_twitter_row({"id": "12"}, source("twitter"))["url"] == "https://x.com/i/status/12"

    forum = source("discourse", base_url="https://forum.test/")
    post = {"id": 3, "topic_id": 7, "topic_slug": "s", "post_number": 2, "cooked": "<p>Hi</p>"}
    mapped = map_discourse_row(post, forum)
    assert (mapped["url"], mapped["text"]) == ("https://forum.test/t/s/7/2", "Hi")

    conversation = {
        "id": "c1",
        "source": {"author": {"id": "u1", "name": "Uma"}, "body": "<p>Help</p>"},
        "conversation_rating": None,
        "created_at": 1_700_000_000,
        "updated_at": None,
    }
    mapped = map_intercom_row(conversation, source("intercom"))
    assert (mapped["author_id"], mapped["author_name"], mapped["text"]) == ("u1", "Uma", "Help")
    assert (mapped["rating"], mapped["created_at"], mapped["updated_at"]) == (None, NOV_14, None)
    row_mappers = {
        t.name: t.mapper for t in [*types_of_entity("items"), *types_of_entity("feedback")]
    }
    assert SOURCE_TYPES["intercom"].mapper is map_intercom_row
    assert set(row_mappers) == {
        "rest_api",
        "csv",
        "rss",
        "playstore",
        "twitter",
        "discourse",
        "intercom",
    }


def test_items_are_stripped_coerced_and_strict() -> None:
    item = ITEM.validate_python(record(external_id=42, title="  T  ", url="https://x.test/a"))
    assert (item["external_id"], item["title"]) == ("42", "T")
    for bad in ({"url": "ftp://x.test/a"}, {"external_id": "   "}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            ITEM.validate_python(record(**bad))


def test_timestamps_must_be_readable_back_in_utc() -> None:
    ok = ITEM.validate_python(record(published_at="9999-12-31T23:59:59Z"))
    assert ok["published_at"].year == 9999
    for stamp in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(ValidationError, match="timestamp out of range"):
            ITEM.validate_python(record(published_at=stamp))


def test_feedback_ratings_and_event_types() -> None:
    assert FEEDBACK.validate_python(record(rating="4"))["rating"] == 4
    for rating in (0, 6):
        with pytest.raises(ValidationError):
            FEEDBACK.validate_python(record(rating=rating))
    event = record(event_id="ev1", event_type="VIEW", occurred_at=NOV_14)
    event = event | dict.fromkeys(("item_id", "author_id", "actor_id", "ip", "session_id"))
    event = {k: v for k, v in event.items() if k != "external_id"} | {"properties": None}
    assert APP_EVENT.validate_python(event)["event_type"] == "VIEW"
    with pytest.raises(ValidationError):
        APP_EVENT.validate_python(event | {"event_type": "view"})


def test_blank_to_none_only_blanks_strings() -> None:
    fields = {"a": "", "b": "  \t", "c": " x ", "d": 0, "e": None}
    assert blank_to_none(fields) == {"a": None, "b": None, "c": " x ", "d": 0, "e": None}
