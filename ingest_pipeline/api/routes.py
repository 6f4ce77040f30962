"""The tenant routes of the read API: GET /v1/tenants/{tenant}/..., JSON, read-only.

Rules they keep:
- The bearer token is checked before anything else about the request (parameters included):
  a caller without the tenant's token learns nothing, not even which parameters are wrong.
- A query parameter given twice is a 400 (which one would filter?).
- Every query is the tenant's (`queries`); an upload of another tenant is "not found".
- Lists answer `{"data": [...], "next_cursor": ...}` (limit 1..1000, default 100); an upload
  is a bare object; metrics, trending and leaderboards answer `{"data": [...]}`.
- Time ranges are [from, to): `since`, `updated_since` and `from` inclusive, `to` exclusive.
  A metrics range is bounded (the defaults and maxima below), so no request reads an
  unbounded amount of a metrics table; a longer one is a 400 that says the maximum.
- Handlers are plain functions: FastAPI runs them on worker threads, never on the event loop.
"""

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from ingest_pipeline.api import queries, schemas
from ingest_pipeline.api.auth import authenticate
from ingest_pipeline.api.config import TenantsView
from ingest_pipeline.api.cursor import CursorError
from ingest_pipeline.api.params import (
    DEFAULT_LIMIT,
    Bucket,
    Cursor,
    Day,
    Entity,
    Limit,
    Rating,
    Text,
    TimeBound,
    Window,
    day_start,
    first_day_from,
)
from ingest_pipeline.api.reader import Reader
from ingest_pipeline.api.runs import LastRuns, instance_tag

# metrics/events: the range a request covers when it gives no bound, and the longest it may ask.
DEFAULT_SPAN = {
    "minute": timedelta(hours=1),
    "hour": timedelta(days=1),
    "day": timedelta(days=30),
}
MAX_SPAN = {"minute": timedelta(days=1), "hour": timedelta(days=92), "day": timedelta(days=1096)}
# metrics/items and metrics/authors: days per request, and rows.
DEFAULT_DAYS = 30
MAX_DAYS = 366
DEFAULT_METRICS_ROWS = 1000
MAX_METRICS_ROWS = 10_000
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
TENANT_PREFIX = "/v1/tenants/{tenant}"
# The OpenAPI security scheme of every tenant route (`app._openapi` adds it).
READ_TOKEN_SCHEME = {
    "readToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The tenant's read token (the env var its `api.read_token_env` names).",
    }
}


class BadRequest(Exception):
    """A 400: `error` says what, `detail` which parameter and why."""

    def __init__(self, error: str, detail: Any = None) -> None:
        super().__init__(error)
        self.error, self.detail = error, detail


class NotFound(Exception):
    """A 404 of a known route (an upload that is not the tenant's)."""


class ServiceUnavailable(Exception):
    """A 503 for a part the service depends on (the tenants file, Dagster's instance)."""


def json_response(body: Any, status: int = 200) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status, media_type="application/json")


def data_response(data_json: str) -> Response:
    """`{"data": [...]}` around rows already written as a JSON array."""
    return Response(f'{{"data":{data_json}}}'.encode(), media_type="application/json")


_ERROR = {"model": schemas.Error}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "Invalid parameters (which and why in `detail`)."},
    401: {
        **_ERROR,
        "description": "No valid bearer token of this tenant (the same answer for every case).",
    },
    503: {
        **_ERROR,
        "description": "The warehouse is busy or unreachable; see Retry-After.",
    },
}


def _responses(model: type, *also: int) -> dict[int | str, dict[str, Any]]:
    extra = {404: {**_ERROR, "description": "No such upload for this tenant."}}
    return {200: {"model": model}, **ERRORS, **{code: extra[code] for code in also}}


TenantPath = Annotated[str, Path(description="The tenant, as named in the tenants file.")]
LimitParam = Annotated[Limit, Query(description="Rows per page, 1 to 1000.")]
CursorParam = Annotated[Cursor | None, Query(description="The `next_cursor` of the previous page.")]


def tenant_router(
    tenants: TenantsView, reader: Callable[[], Reader], runs: Callable[[], LastRuns]
) -> APIRouter:
    """The /v1/tenants/{tenant}/... routes over these tenants, warehouse and Dagster runs."""

    async def tenant_request(request: Request) -> None:
        """The bearer token first (a caller without it learns nothing, not even which
        parameters are wrong), then a parameter given twice: ambiguous (which one filters?),
        refused, not guessed. One dependency, no security class: FastAPI's cost per dependency
        is a tenth of a request's CPU; `READ_TOKEN_SCHEME` documents the scheme instead."""
        tenant = request.path_params.get("tenant", "")
        authenticate(tenants, tenant, request.headers.get("authorization"))
        request.state.tenant = tenant
        params = request.query_params
        repeated = sorted({k for k, _ in params.multi_items() if len(params.getlist(k)) > 1})
        if repeated:
            detail = [{"param": name, "problem": "given more than once"} for name in repeated]
            raise BadRequest("invalid parameters", detail)

    router = APIRouter(prefix=TENANT_PREFIX, dependencies=[Depends(tenant_request)])

    def page(route: queries.ListRoute, tenant: str, **options: Any) -> Response:
        try:
            result = queries.list_page(reader(), route, tenant, **options)
        except CursorError as exc:
            raise BadRequest("invalid cursor", [{"param": "cursor", "problem": str(exc)}]) from None
        body = f'{{"data":{result.data_json},"next_cursor":{json.dumps(result.next_cursor)}}}'
        return Response(body.encode(), media_type="application/json")

    @router.get(
        "/items",
        tags=["data"],
        summary="Items, newest first by updated_at",
        responses=_responses(schemas.ItemsPage),
    )
    def items(
        tenant: TenantPath,
        source_type: Annotated[Text | None, Query()] = None,
        source_instance: Annotated[Text | None, Query()] = None,
        updated_since: Annotated[
            TimeBound | None, Query(description="updated_at at or after this (inclusive).")
        ] = None,
        limit: LimitParam = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> Response:
        """normalized.items of the tenant; an item without updated_at comes last."""
        equal = {"source_type": source_type, "source_instance": source_instance}
        return page(
            queries.ITEMS_LIST, tenant, equal=equal, since=updated_since, cursor=cursor, limit=limit
        )

    @router.get(
        "/feedback",
        tags=["data"],
        summary="Feedback, newest first by created_at",
        responses=_responses(schemas.FeedbackPage),
    )
    def feedback(
        tenant: TenantPath,
        source_type: Annotated[Text | None, Query()] = None,
        source_instance: Annotated[Text | None, Query()] = None,
        rating: Annotated[Rating | None, Query(description="Only this rating (1 to 5).")] = None,
        since: Annotated[
            TimeBound | None, Query(description="created_at at or after this (inclusive).")
        ] = None,
        limit: LimitParam = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> Response:
        """normalized.feedback of the tenant; feedback without created_at comes last."""
        equal = {"source_type": source_type, "source_instance": source_instance, "rating": rating}
        return page(
            queries.FEEDBACK_LIST, tenant, equal=equal, since=since, cursor=cursor, limit=limit
        )

    @router.get(
        "/events",
        tags=["data"],
        summary="App events, newest first by occurred_at",
        responses=_responses(schemas.EventsPage),
    )
    def events(
        tenant: TenantPath,
        event_type: Annotated[Text | None, Query()] = None,
        item_id: Annotated[Text | None, Query()] = None,
        author_id: Annotated[Text | None, Query()] = None,
        from_: Annotated[
            TimeBound | None,
            Query(alias="from", description="occurred_at at or after (inclusive)."),
        ] = None,
        to: Annotated[
            TimeBound | None, Query(description="occurred_at before this (exclusive).")
        ] = None,
        limit: LimitParam = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> Response:
        """normalized.events of the tenant in [from, to)."""
        _ordered(from_, to)
        equal = {"event_type": event_type, "item_id": item_id, "author_id": author_id}
        return page(
            queries.EVENTS_LIST,
            tenant,
            equal=equal,
            since=from_,
            until=to,
            cursor=cursor,
            limit=limit,
        )

    @router.get(
        "/payments",
        tags=["data"],
        summary="Payments, newest first by updated_at",
        responses=_responses(schemas.PaymentsPage),
    )
    def payments(
        tenant: TenantPath,
        status: Annotated[Text | None, Query(description="e.g. succeeded, refunded.")] = None,
        since: Annotated[
            TimeBound | None, Query(description="updated_at at or after this (inclusive).")
        ] = None,
        limit: LimitParam = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> Response:
        """normalized.payments of the tenant."""
        return page(
            queries.PAYMENTS_LIST,
            tenant,
            equal={"status": status},
            since=since,
            cursor=cursor,
            limit=limit,
        )

    @router.get(
        "/rejects",
        tags=["data"],
        summary="Rejected records, newest first by rejected_at",
        responses=_responses(schemas.RejectsPage),
    )
    def rejects(
        tenant: TenantPath,
        source_type: Annotated[Text | None, Query()] = None,
        source_instance: Annotated[Text | None, Query()] = None,
        since: Annotated[
            TimeBound | None, Query(description="rejected_at at or after this (inclusive).")
        ] = None,
        limit: LimitParam = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> Response:
        """normalized.rejected_records of the tenant: the reason and the raw payload."""
        equal = {"source_type": source_type, "source_instance": source_instance}
        return page(
            queries.REJECTS_LIST, tenant, equal=equal, since=since, cursor=cursor, limit=limit
        )

    @router.get(
        "/uploads/{upload_id}",
        tags=["data"],
        summary="One upload's lifecycle",
        responses=_responses(schemas.UploadInfo, 404),
    )
    def upload(tenant: TenantPath, upload_id: Annotated[str, Path()]) -> Response:
        """normalized.uploads: status (Created, Queued, Processing, Completed, Failed), the time
        of each step, rows loaded and rejected, and the reason of a failure."""
        found = (
            queries.upload(reader(), tenant, upload_id) if UPLOAD_ID.fullmatch(upload_id) else None
        )
        if found is None:
            raise NotFound("no such upload")
        return json_response(found)

    @router.get(
        "/metrics/events",
        tags=["metrics"],
        summary="Event counts per minute, hour or day",
        responses=_responses(schemas.EventMetrics),
    )
    def metrics_events(
        tenant: TenantPath,
        bucket: Annotated[Bucket, Query(description="The table: minute, hour or day buckets.")],
        from_: Annotated[
            TimeBound | None,
            Query(alias="from", description="Buckets starting at or after (default: to - span)."),
        ] = None,
        to: Annotated[
            TimeBound | None, Query(description="Buckets starting before this (default: now).")
        ] = None,
        event_type: Annotated[Text | None, Query()] = None,
        source: Annotated[Text | None, Query(description="Only this source instance.")] = None,
    ) -> Response:
        """metrics.event_metrics_<bucket>, by bucket start. Without bounds: the last hour
        (minute), day (hour) or 30 days (day); at most 1 day, 92 days or 1096 days."""
        now = datetime.now(UTC)
        end = to or (max(now, from_) if from_ else now)
        with _in_range("to"):
            start = from_ or end - DEFAULT_SPAN[bucket]
        _ordered(start, end)
        if end - start > MAX_SPAN[bucket]:
            problem = f"at most {MAX_SPAN[bucket].days} day(s) of {bucket} buckets per request"
            raise BadRequest("range too long", [{"param": "from", "problem": problem}])
        rows = queries.event_metrics(reader(), tenant, bucket, start, end, event_type, source)
        return data_response(rows)

    def daily(
        entity: str,
        tenant: str,
        day: date | None,
        start: datetime | None,
        end: datetime | None,
        entity_id: str | None,
        limit: int,
    ) -> Response:
        if day is not None and (start or end):
            problem = "give date, or from/to, not both"
            raise BadRequest("conflicting parameters", [{"param": "date", "problem": problem}])
        days: tuple[date, date] | None = None
        if day is not None:
            with _in_range("date"):
                days = (day, day + timedelta(days=1))
        elif start or end:
            with _in_range("from" if start else "to"):
                last = first_day_from(end) if end else datetime.now(UTC).date() + timedelta(days=1)
                first = first_day_from(start) if start else last - timedelta(days=DEFAULT_DAYS)
            _ordered(start and day_start(first), end and day_start(last))
            if (last - first).days > MAX_DAYS:
                problem = f"at most {MAX_DAYS} days per request"
                raise BadRequest("range too long", [{"param": "from", "problem": problem}])
            days = (first, max(first, last))
        rows = queries.daily_metrics(reader(), tenant, entity, days, entity_id, limit)
        return data_response(rows)

    DayParam = Annotated[
        Day | None, Query(alias="date", description="One day (default: the latest built day).")
    ]
    FromDay = Annotated[
        TimeBound | None,
        Query(alias="from", description="Days starting at or after this (inclusive)."),
    ]
    ToDay = Annotated[TimeBound | None, Query(description="Days starting before this (exclusive).")]
    RowsParam = Annotated[
        int, Query(ge=1, le=MAX_METRICS_ROWS, description="At most this many rows.")
    ]

    @router.get(
        "/metrics/items",
        tags=["metrics"],
        summary="Daily activity per item",
        responses=_responses(schemas.ItemMetrics),
    )
    def metrics_items(
        tenant: TenantPath,
        day: DayParam = None,
        from_: FromDay = None,
        to: ToDay = None,
        item_id: Annotated[Text | None, Query()] = None,
        limit: RowsParam = DEFAULT_METRICS_ROWS,
    ) -> Response:
        """metrics.item_metrics_daily, by day then item: one `date`, or the days in
        [from, to) (at most 366; only from: through today; only to: the 30 days before)."""
        return daily("item", tenant, day, from_, to, item_id, limit)

    @router.get(
        "/metrics/authors",
        tags=["metrics"],
        summary="Daily activity and donations per author",
        responses=_responses(schemas.AuthorMetrics),
    )
    def metrics_authors(
        tenant: TenantPath,
        day: DayParam = None,
        from_: FromDay = None,
        to: ToDay = None,
        author_id: Annotated[Text | None, Query()] = None,
        limit: RowsParam = DEFAULT_METRICS_ROWS,
    ) -> Response:
        """metrics.author_metrics_daily, by day then author (as metrics/items)."""
        return daily("author", tenant, day, from_, to, author_id, limit)

    @router.get(
        "/trending",
        tags=["metrics"],
        summary="Trending items of a day, highest first",
        responses=_responses(schemas.Trending),
    )
    def trending(
        tenant: TenantPath, day: DayParam = None, limit: LimitParam = DEFAULT_LIMIT
    ) -> Response:
        """metrics.trending_scores of one day (default: the latest built day)."""
        return data_response(queries.trending(reader(), tenant, day, limit))

    @router.get(
        "/leaderboards",
        tags=["metrics"],
        summary="A leaderboard snapshot, by rank",
        responses=_responses(schemas.Leaderboard),
    )
    def leaderboards(
        tenant: TenantPath,
        window: Annotated[Window, Query(description="daily, weekly, monthly or all_time.")],
        entity: Annotated[Entity, Query(description="What is ranked: item or author.")],
        day: DayParam = None,
        limit: LimitParam = DEFAULT_LIMIT,
    ) -> Response:
        """metrics.leaderboard_snapshots of one window and entity on one day (default: the
        latest snapshot of that board)."""
        rows = queries.leaderboard(reader(), tenant, window, entity, day, limit)
        return data_response(rows)

    @router.get(
        "/stats",
        tags=["operations"],
        summary="Per source instance: last run, rows loaded and rejected",
        responses=_responses(schemas.Stats),
    )
    def stats(tenant: TenantPath) -> Response:
        """Every source instance of the tenant (in the tenants file, or with rows in the
        warehouse): its last ingest run from Dagster, rows written and rejected over the last
        24 hours and 7 days, and its newest ingested_at."""
        now = datetime.now(UTC)
        counts = queries.instance_counts(reader(), tenant, now)
        configured = {(i.type, i.name) for i in tenants.source_instances(tenant)}
        keys = sorted(configured | counts.keys())
        tags = {key: instance_tag(tenant, *key) for key in keys}
        try:
            last = runs().last_runs(tenant, list(tags.values()))
        except Exception as exc:
            raise ServiceUnavailable(
                f"Dagster's instance unreadable ({type(exc).__name__})"
            ) from exc
        data = []
        for key in keys:
            found = counts.get(key) or queries.InstanceCounts()
            data.append(
                {
                    "source_type": key[0],
                    "source_instance": key[1],
                    "configured": key in configured,
                    "last_run": last.get(tags[key]),
                    "rows_loaded_24h": found.rows_loaded_24h,
                    "rows_loaded_7d": found.rows_loaded_7d,
                    "rows_rejected_24h": found.rows_rejected_24h,
                    "rows_rejected_7d": found.rows_rejected_7d,
                    "newest_ingested_at": queries.json_value(found.newest_ingested_at),
                }
            )
        return json_response({"as_of": now.isoformat(), "data": data})

    return router


@contextlib.contextmanager
def _in_range(param: str) -> Iterator[None]:
    """A bound so near year 1 or 9999 that the range around it leaves the calendar: 400."""
    try:
        yield
    except OverflowError:
        problem = "too close to year 1 or 9999 for a range"
        raise BadRequest("out of range", [{"param": param, "problem": problem}]) from None


def _ordered(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        problem = "from must not be after to"
        raise BadRequest("invalid range", [{"param": "from", "problem": problem}])
