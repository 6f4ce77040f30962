"""The intake service: verify, record and land each delivery; the S3 sensors do the rest.

`create_app(settings)` builds the Starlette app that `ingest-pipeline serve-intake` serves with
uvicorn. Routes:

- `POST /webhooks/intercom/{tenant}` (`X-Hub-Signature`) and `POST /webhooks/stripe/{tenant}`
  (`Stripe-Signature`): the raw body, once verified, lands as
  `webhooks/<provider>/<tenant>/<yyyy-mm-dd>/<event id>.json`; 200 only after it is stored.
- `POST /uploads/{tenant}` (`Authorization: Bearer <token>`, `{"kind", "filename"}`): 201 with
  a presigned PUT URL, the upload recorded Created (as `ingest-pipeline upload-url`).
- `GET /health` (the process answers), `GET /ready` (object store and warehouse reachable),
  `GET /metrics` (Prometheus text).

Per webhook request, in this order: the client IP's budget of unauthenticated requests (429),
tenant known and route configured (404), content type (415), body size (413, read as a stream
within `body_timeout_seconds`, else 408 and the connection closed), secret configured (503),
signature (401; a genuine but stale Stripe signature: 400), the tenant's rate limit (429),
a UTF-8 JSON object with an event id (400), landing (503 when the store fails, so the sender
retries). Upload-URL requests check the token (401) before the tenant's limit, then the body.
Only authenticated requests spend the tenant's rate limit; the others spend their client IP's
(see `ratelimit`). Input is validated by whole-string matches (`fullmatch`: `$` would let a
trailing newline through), and a body is accepted only if it is what the landing can read
(UTF-8 JSON, an object), because a 200 stops the sender's retries.

Every request, whatever its fate, gets a row in `normalized.intake_audit` and counts in
/metrics. Blocking calls (boto3, the warehouse) run on worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
import psycopg2
from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_pipeline.domain.landing import (
    DEFAULT_EXPIRES_SECONDS,
    MAX_WEBHOOK_BYTES,
    LandingError,
    issue_upload_url,
    s3_client,
)
from ingest_pipeline.domain.tenants import TenantIntake, TenantsFileError
from ingest_pipeline.intake.audit import AuditWriter, audit_row, describe_error
from ingest_pipeline.intake.config import (
    IntakeStartupError,
    TenantIntakes,
    production_problems,
    secret_value,
)
from ingest_pipeline.intake.metrics import UNKNOWN_TENANT_LABEL, IntakeMetrics
from ingest_pipeline.intake.ratelimit import UNAUTHENTICATED_PER_MINUTE, RateLimiter
from ingest_pipeline.intake.signatures import Verdict, verify_intercom, verify_stripe
from ingest_pipeline.intake.store import (
    EVENT_ID_PATTERN,
    PROBE_CONFIG,
    REDELIVERY_LOOKBACK_DAYS,
    STORE_CONFIG,
    WebhookStore,
)
from ingest_pipeline.lib.warehouse import Warehouse
from ingest_pipeline.settings import Settings, get_settings, refresh_tenants_file

log = logging.getLogger(__name__)

MAX_BODY_BYTES = MAX_WEBHOOK_BYTES  # 1 MiB: more is 413
# The whole body must arrive within this (408 and the connection closed otherwise): uvicorn's
# timeout_keep_alive covers only the wait between requests, not a body trickling in.
BODY_TIMEOUT_SECONDS = 30.0
PROBE_TIMEOUT_SECONDS = 2.0
EVENT_ID_RULE = "1 to 128 letters, digits, '_' or '-'"

ROUTE_INTERCOM = "POST /webhooks/intercom/{tenant}"
ROUTE_STRIPE = "POST /webhooks/stripe/{tenant}"
ROUTE_UPLOADS = "POST /uploads/{tenant}"
ROUTE_HEALTH = "GET /health"
ROUTE_READY = "GET /ready"
ROUTE_METRICS = "GET /metrics"
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class WebhookProvider:
    signature_header: str
    created_field: str  # the event's creation time (unix seconds), inside the signed body
    verify: Callable[[bytes, str | None, str], Verdict]


PROVIDERS = {
    "intercom": WebhookProvider("x-hub-signature", "created_at", verify_intercom),
    "stripe": WebhookProvider("stripe-signature", "created", verify_stripe),
}


@dataclass
class RequestRecord:
    """What a handler decided about its request; the middleware audits and counts it."""

    route: str
    received_at: datetime
    provider: str | None = None
    client: str | None = None  # the client's IP (uvicorn applies trusted proxy headers)
    tenant: str | None = None
    known_tenant: bool = False
    authenticated: bool = False  # signature verified or token valid: the tenant's budget
    event_id: str | None = None
    object_key: str | None = None
    verdict: str | None = None
    reason: str | None = None


class Intake:
    """The service's parts, shared by every request of one app."""

    def __init__(
        self,
        settings: Settings,
        *,
        debug: bool,
        max_body_bytes: int,
        body_timeout_seconds: float,
        unauthenticated_per_minute: int,
        lookback_days: int,
        audit_flush_interval: float,
    ) -> None:
        self.settings = settings
        self.debug = debug
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds
        self.unauthenticated_per_minute = unauthenticated_per_minute
        self.tenants = TenantIntakes(settings.tenants_file, partial(refresh_tenants_file, settings))
        self.metrics = IntakeMetrics()
        self.limiter = RateLimiter()  # per tenant: authenticated requests
        self.client_limiter = RateLimiter()  # per client IP: the requests that do not
        self.warehouse = Warehouse(settings.resolved_warehouse_url)
        self.warehouse_lock = threading.Lock()
        self.audit = AuditWriter(
            self.warehouse, self.metrics, self.warehouse_lock, flush_interval=audit_flush_interval
        )
        self.s3_probe = s3_client(settings, PROBE_CONFIG)
        self.store = WebhookStore(
            s3_client(settings, STORE_CONFIG), settings.landing_bucket, lookback_days
        )

    # -- routes ---------------------------------------------------------------------------

    async def intercom(self, request: Request) -> Response:
        return await self._webhook(request, "intercom", ROUTE_INTERCOM)

    async def stripe(self, request: Request) -> Response:
        return await self._webhook(request, "stripe", ROUTE_STRIPE)

    async def _webhook(self, request: Request, provider: str, route: str) -> Response:
        record = _begin(request, route, provider)
        limited = self._client_limited(record)
        if limited:
            return limited
        found = self._tenant(request, record, f"{provider}_secret_env")
        if isinstance(found, Response):
            return found
        intake, env_name = found
        body = await self._checked_body(request, record)
        if isinstance(body, Response):
            return body
        secret = secret_value(env_name)
        if not secret:
            return _answer(record, 503, "error", f"secret env var {env_name} is not set")
        spec = PROVIDERS[provider]
        verdict = spec.verify(body, request.headers.get(spec.signature_header), secret)
        if not verdict:
            return _answer(record, verdict.status, "rejected", verdict.reason)
        record.authenticated = True
        limited = self._rate_limited(record, intake)
        if limited:
            return limited
        event = _json_object(body)
        if isinstance(event, str):
            return _answer(record, 400, "rejected", event)
        event_id = event.get("id")
        if not isinstance(event_id, str) or not EVENT_ID_PATTERN.fullmatch(event_id):
            reason = f"event id missing or not {EVENT_ID_RULE}"
            return _answer(record, 400, "rejected", reason)
        record.event_id = event_id
        created_at = _created_at(event, spec.created_field)
        try:
            outcome, key = await run_in_threadpool(
                self.store.land,
                provider,
                record.tenant,
                event_id,
                body,
                record.received_at,
                created_at,
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("intake: landing %s/%s failed: %s", provider, event_id, describe_error(exc))
            reason = f"landing failed ({type(exc).__name__})"
            return _answer(record, 503, "error", reason, headers={"Retry-After": "5"})
        record.object_key = key
        if outcome == "duplicate":
            reason = "already landed (redelivery)"
            return _answer(record, 200, "duplicate", reason, {"event_id": event_id})
        return _answer(record, 200, "accepted", "landed", {"event_id": event_id})

    async def uploads(self, request: Request) -> Response:
        record = _begin(request, ROUTE_UPLOADS, "uploads")
        limited = self._client_limited(record)
        if limited:
            return limited
        found = self._tenant(request, record, "token_env")
        if isinstance(found, Response):
            return found
        intake, env_name = found
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not token.strip():
            return _answer(record, 401, "rejected", "missing bearer token", headers=bearer)
        expected = secret_value(env_name)
        if not expected:
            return _answer(record, 503, "error", f"secret env var {env_name} is not set")
        if not hmac.compare_digest(token.strip().encode(), expected.encode()):
            invalid = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return _answer(record, 401, "rejected", "invalid token", headers=invalid)
        record.authenticated = True
        limited = self._rate_limited(record, intake)
        if limited:
            return limited
        body = await self._checked_body(request, record)
        if isinstance(body, Response):
            return body
        payload = _json_object(body)
        if isinstance(payload, str):
            return _answer(record, 400, "rejected", payload)
        if not isinstance(payload.get("kind"), str):
            return _answer(record, 400, "rejected", 'body must be {"kind": ..., "filename": ...}')
        filename = payload.get("filename")
        expires = payload.get("expires", DEFAULT_EXPIRES_SECONDS)
        if (filename is not None and not isinstance(filename, str)) or not isinstance(expires, int):
            return _answer(record, 400, "rejected", "filename must be text, expires an integer")
        try:
            upload = await run_in_threadpool(
                self._issue_upload, record.tenant, payload["kind"], filename, expires
            )
        except LandingError as exc:
            return _answer(record, 400, "rejected", str(exc))
        except (BotoCoreError, ClientError, psycopg2.Error, OSError, RuntimeError) as exc:
            log.warning("intake: upload URL for %s failed: %s", record.tenant, describe_error(exc))
            return _answer(record, 503, "error", f"upload URL failed ({type(exc).__name__})")
        record.event_id, record.object_key = upload.upload_id, upload.object_key
        answer = {
            "upload_id": upload.upload_id,
            "url": upload.url,
            "expires_at": upload.expires_at.isoformat(),
            "key": upload.object_key,
        }
        return _answer(record, 201, "accepted", "upload URL issued", answer, status_field=False)

    def _issue_upload(self, tenant: str, kind: str, filename: str | None, expires: int) -> Any:
        # One at a time: it writes the warehouse (one DuckDB writer per process).
        with self.warehouse_lock:
            self.audit.ensure_table()
            return issue_upload_url(
                self.settings,
                tenant,
                kind,
                filename,
                expires,
                client=self.store.client,
                warehouse=self.warehouse,
            )

    async def health(self, request: Request) -> Response:
        record = _begin(request, ROUTE_HEALTH)
        return _answer(record, 200, "accepted", None, {"status": "ok"}, status_field=False)

    async def ready(self, request: Request) -> Response:
        record = _begin(request, ROUTE_READY)
        checks: dict[str, str] = {}

        async def probe(name: str, check: Any) -> None:
            try:
                with anyio.fail_after(PROBE_TIMEOUT_SECONDS):
                    await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
                checks[name] = "ok"
            except TimeoutError:
                checks[name] = f"timed out after {PROBE_TIMEOUT_SECONDS:g} s"
            except Exception as exc:
                log.warning("intake: %s not ready: %s", name, describe_error(exc))
                checks[name] = f"unreachable ({type(exc).__name__})"

        async with anyio.create_task_group() as group:
            group.start_soon(probe, "object_store", self._probe_object_store)
            group.start_soon(probe, "warehouse", self._probe_warehouse)
        failed = sorted(name for name, state in checks.items() if state != "ok")
        body = {"status": "not ready" if failed else "ready", "checks": checks}
        if failed:
            return _answer(record, 503, "error", "not ready: " + ", ".join(failed), body, False)
        return _answer(record, 200, "accepted", None, body, status_field=False)

    async def metrics_page(self, request: Request) -> Response:
        _begin(request, ROUTE_METRICS)  # the middleware audits and counts it (200: accepted)
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    def _probe_object_store(self) -> None:
        self.s3_probe.head_bucket(Bucket=self.settings.landing_bucket)

    def _probe_warehouse(self) -> None:
        self.warehouse.sql_dialect.probe(PROBE_TIMEOUT_SECONDS)

    # -- the checks every tenant route makes ----------------------------------------------

    def _tenant(
        self, request: Request, record: RequestRecord, env_field: str
    ) -> tuple[TenantIntake, str] | Response:
        record.tenant = request.path_params["tenant"]
        try:
            intake = self.tenants.get(record.tenant)
        except TenantsFileError:
            return _answer(record, 503, "error", "tenants file unusable (see the service log)")
        if intake is None:
            return _answer(record, 404, "rejected", "unknown tenant (no intake configured)")
        record.known_tenant = True
        env_name = getattr(intake, env_field)
        if not env_name:
            what = "upload" if record.provider == "uploads" else str(record.provider)
            return _answer(record, 404, "rejected", f"no {what} intake for this tenant")
        return intake, env_name

    def _client_limited(self, record: RequestRecord) -> Response | None:
        """429 when the client IP has spent its budget of unauthenticated requests (checked
        before the body is read; `finish` charges the budget)."""
        if record.client is None:
            return None
        wait = self.client_limiter.wait(record.client, self.unauthenticated_per_minute)
        if not wait:
            return None
        reason = (
            "too many unauthenticated requests from this client"
            f" (limit {self.unauthenticated_per_minute}/min)"
        )
        headers = {"Retry-After": RateLimiter.retry_after_header(wait)}
        return _answer(record, 429, "rejected", reason, headers=headers)

    def _rate_limited(self, record: RequestRecord, intake: TenantIntake) -> Response | None:
        """429 when the tenant has spent its budget (authenticated requests only)."""
        assert record.tenant is not None and record.authenticated
        wait = self.limiter.acquire(record.tenant, intake.rate_limit_per_minute)
        if not wait:
            return None
        reason = f"rate limit of {intake.rate_limit_per_minute}/min exceeded"
        headers = {"Retry-After": RateLimiter.retry_after_header(wait)}
        return _answer(record, 429, "rejected", reason, headers=headers)

    async def _checked_body(self, request: Request, record: RequestRecord) -> bytes | Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return _answer(record, 415, "rejected", "content type must be application/json")
        try:
            with anyio.fail_after(self.body_timeout_seconds):
                body = await _read_body(request, self.max_body_bytes)
        except ClientDisconnect:
            return _answer(record, 400, "rejected", "client disconnected before the body ended")
        except TimeoutError:
            # Close the connection: the rest of a body this slow is not worth waiting for.
            reason = f"body not received within {self.body_timeout_seconds:g} s"
            return _answer(record, 408, "rejected", reason, headers={"Connection": "close"})
        if body is None:
            return _answer(record, 413, "rejected", f"body over {self.max_body_bytes} bytes")
        return body

    # -- the audit row and the metrics of every request -----------------------------------

    def finish(self, scope: Scope, status: int, elapsed: float, failure: str | None) -> None:
        state = scope.get("state") or {}
        record: RequestRecord | None = state.get("intake")
        if record is None:  # no route matched (404, 405): the raw path, cut short
            received_at = state["received_at"]  # set by this middleware before the app ran
            path = f"{scope.get('method', '')} {scope.get('path', '')}"
            record = RequestRecord(route=path[:200], received_at=received_at)
            label = UNMATCHED
        else:
            label = record.route
        verdict = record.verdict or _verdict_of(status)
        reason = failure or record.reason or (None if status < 400 else f"HTTP {status}")
        if failure:
            verdict = "error"
        self.audit.record(
            audit_row(
                route=record.route,
                verdict=verdict,
                status_code=status,
                reason=reason,
                tenant_id=record.tenant,
                provider=record.provider,
                event_id=record.event_id,
                object_key=record.object_key,
                received_at=record.received_at,
            )
        )
        self._charge_client(record, status)
        self.metrics.observe(label, status, elapsed)
        if record.provider:
            tenant = record.tenant if record.known_tenant and record.tenant else None
            self.metrics.deliveries.labels(
                record.provider, tenant or UNKNOWN_TENANT_LABEL, verdict
            ).inc()

    def _charge_client(self, record: RequestRecord, status: int) -> None:
        """A tenant-route request that did not authenticate spends its client IP's budget
        (not the service's own failures, 5xx: the sender is not at fault)."""
        if record.provider and record.client and not record.authenticated and status < 500:
            self.client_limiter.acquire(record.client, self.unauthenticated_per_minute)


class _ObserveMiddleware:
    """Times every HTTP request and hands its outcome to `Intake.finish` (pure ASGI, so a
    streamed body is never buffered here)."""

    def __init__(self, app: ASGIApp, intake: Intake) -> None:
        self.app = app
        self.intake = intake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["received_at"] = datetime.now(UTC)
        status = 0

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        failure: str | None = None
        try:
            await self.app(scope, receive, send_and_watch)
        except Exception as exc:
            failure = f"internal error ({type(exc).__name__})"
            raise
        finally:
            self.intake.finish(scope, status or 500, time.perf_counter() - started, failure)


def create_app(
    settings: Settings | None = None,
    *,
    debug: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_seconds: float | None = None,
    unauthenticated_rate_limit_per_minute: int = UNAUTHENTICATED_PER_MINUTE,
    redelivery_lookback_days: int = REDELIVERY_LOOKBACK_DAYS,
    audit_flush_interval: float = 0.5,
) -> Starlette:
    """The intake ASGI app. Raises IntakeStartupError in production while a configured secret
    env var is missing or empty, or debug is on. `app.state.intake` is the `Intake`.

    `body_timeout_seconds`: how long a request's body may take to arrive (default: the
    setting `intake_body_timeout_seconds` when Settings has it, else 30 s).
    `unauthenticated_rate_limit_per_minute`: per client IP (see `ratelimit`)."""
    settings = settings or get_settings()
    if body_timeout_seconds is None:
        body_timeout_seconds = getattr(
            settings, "intake_body_timeout_seconds", BODY_TIMEOUT_SECONDS
        )
    if body_timeout_seconds <= 0 or unauthenticated_rate_limit_per_minute < 1:
        raise ValueError("the body timeout and the per-client limit must be positive")
    debug = settings.intake_debug if debug is None else debug
    problems = production_problems(settings, debug)
    if problems:
        raise IntakeStartupError(
            "the intake refuses to start in production: " + "; ".join(problems)
        )
    intake = Intake(
        settings,
        debug=debug,
        max_body_bytes=max_body_bytes,
        body_timeout_seconds=body_timeout_seconds,
        unauthenticated_per_minute=unauthenticated_rate_limit_per_minute,
        lookback_days=redelivery_lookback_days,
        audit_flush_interval=audit_flush_interval,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer = asyncio.create_task(intake.audit.run())
        try:
            yield
        finally:
            intake.audit.stop()  # and the writer flushes what is queued before it ends
            await writer

    app = Starlette(
        debug=debug,
        routes=[
            Route("/webhooks/intercom/{tenant}", intake.intercom, methods=["POST"]),
            Route("/webhooks/stripe/{tenant}", intake.stripe, methods=["POST"]),
            Route("/uploads/{tenant}", intake.uploads, methods=["POST"]),
            Route("/health", intake.health, methods=["GET"]),
            Route("/ready", intake.ready, methods=["GET"]),
            Route("/metrics", intake.metrics_page, methods=["GET"]),
        ],
        middleware=[Middleware(_ObserveMiddleware, intake=intake)],
        lifespan=lifespan,
    )
    app.state.intake = intake
    return app


def _begin(request: Request, route: str, provider: str | None = None) -> RequestRecord:
    received_at = request.scope["state"]["received_at"]  # set by the middleware
    client = request.client.host if request.client else None
    record = RequestRecord(route=route, received_at=received_at, provider=provider, client=client)
    request.state.intake = record
    return record


def _answer(
    record: RequestRecord,
    status: int,
    verdict: str,
    reason: str | None,
    body: dict[str, Any] | None = None,
    status_field: bool = True,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    record.verdict, record.reason = verdict, reason
    if body is None:
        body = {"error": reason} if status >= 400 else {}
    if status_field and status < 400:
        body = {"status": verdict, **body}
    return JSONResponse(body, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None past `limit` bytes: Content-Length is a hint, the stream decides."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | str:
    """The body as a JSON object, or why not. Decoded as the landing decodes it (strict UTF-8,
    no BOM): `json.loads(bytes)` would also take UTF-16 and UTF-32, which the landing refuses
    after our 200 has ended the sender's retries."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    try:
        document = json.loads(text)
    except ValueError:
        return "body is not valid JSON (UTF-8, no byte order mark)"
    if not isinstance(document, dict):
        return "body must be a JSON object"
    return document


def _created_at(event: dict[str, Any], field_name: str) -> datetime | None:
    """When the sender created the event (a unix time in the verified body), if it says."""
    value = event.get(field_name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _verdict_of(status: int) -> str:
    if status >= 500:
        return "error"
    return "rejected" if status >= 400 else "accepted"
