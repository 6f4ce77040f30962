"""The read API service: `create_app(settings)` builds the FastAPI app that `ingest-pipeline
serve-api` serves with uvicorn.

Routes: the tenant routes (`routes`, GET /v1/tenants/{tenant}/...), and GET /health (the
process answers), GET /ready (the warehouse answers a query now), GET /metrics (Prometheus
text), GET /openapi.json and GET /docs.

Rules it keeps:
- Every answer is JSON `{"error": ..., "detail": ...}` when it is not a success: 400 for any
  parameter FastAPI or a route refuses (never FastAPI's 422, which the OpenAPI document does
  not list either), 401 (`auth`), 404, 405, 503 with Retry-After when the warehouse is busy,
  503 when it or the tenants file or Dagster's instance cannot be read. A fault of our own is
  a 500 with the request id and nothing else; its traceback goes to the log.
- Every answer carries X-Request-ID: the caller's when it sent a sane one (1 to 128 of
  `A-Za-z0-9._:+=/-`), else a new one.
- One log line per request (logger `ingest_pipeline.api.access`, fields: request_id, method,
  route template, tenant, status, duration_ms, and for a 401 the reason), never a token or a
  header value. INGEST_LOG_FORMAT/INGEST_LOG_LEVEL decide its shape (`lib/logging_config`).
- /metrics counts requests by route template and status, and their latency.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_pipeline.api import schemas
from ingest_pipeline.api.auth import CHALLENGE, UNAUTHORIZED_BODY, Unauthorized
from ingest_pipeline.api.config import ApiStartupError, TenantsView, production_problems
from ingest_pipeline.api.metrics import ApiMetrics
from ingest_pipeline.api.reader import (
    MissingTable,
    Reader,
    WarehouseBusy,
    WarehouseUnavailable,
    open_reader,
)
from ingest_pipeline.api.routes import (
    READ_TOKEN_SCHEME,
    TENANT_PREFIX,
    BadRequest,
    NotFound,
    ServiceUnavailable,
    json_response,
    tenant_router,
)
from ingest_pipeline.api.runs import LastRuns
from ingest_pipeline.domain.tenants import TenantsFileError
from ingest_pipeline.settings import Settings, get_settings, refresh_tenants_file

log = logging.getLogger(__name__)
access_log = logging.getLogger("ingest_pipeline.api.access")

REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
PROBE_TIMEOUT_SECONDS = 3.0
UNMATCHED = "unmatched"


class ApiService:
    """The service's parts, shared by every request of one app."""

    def __init__(
        self, settings: Settings, reader: Reader | None = None, runs: LastRuns | None = None
    ) -> None:
        self.settings = settings
        self.tenants = TenantsView(settings.tenants_file, partial(refresh_tenants_file, settings))
        self.reader = reader or open_reader(
            settings.resolved_warehouse_url,
            duckdb_wait_seconds=settings.api_duckdb_wait_seconds,
            pool_size=settings.api_pool_size,
            statement_timeout_seconds=settings.api_statement_timeout_seconds,
        )
        self.runs = runs or LastRuns()
        self.metrics = ApiMetrics()

    def warm_up(self) -> None:
        """Import Dagster and open its instance now, so the first `stats` does not wait."""
        try:
            self.runs.instance()
        except Exception as exc:  # stats answers 503 and says so; the rest works
            log.warning("Dagster's instance is not readable (stats will answer 503): %s", exc)

    def close(self) -> None:
        self.reader.close()
        with contextlib.suppress(Exception):
            self.runs.close()


def create_app(
    settings: Settings | None = None,
    *,
    reader: Reader | None = None,
    runs: LastRuns | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """The read API's ASGI app; `app.state.api` is its `ApiService`. Raises ApiStartupError in
    production while a named read-token env var is missing or empty."""
    settings = settings or get_settings()
    problems = production_problems(settings)
    if problems:
        raise ApiStartupError("the read API refuses to start in production: " + "; ".join(problems))
    service = ApiService(settings, reader, runs)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=service.warm_up, name="api-warm-up", daemon=True).start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="ingest-pipeline read API",
        version=_version(),
        description=(
            "The ingested data and the metrics of one tenant, read-only. Authenticate with "
            "`Authorization: Bearer <the tenant's read token>`. Lists page by `next_cursor`."
        ),
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.api = service
    app.include_router(tenant_router(service.tenants, lambda: service.reader, lambda: service.runs))
    _ops_routes(app, service)
    _error_handlers(app, service)
    app.add_middleware(_RequestContext, service=service)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _ops_routes(app: FastAPI, service: ApiService) -> None:
    @app.get("/health", tags=["operations"], response_model=schemas.Health)
    async def health() -> Response:
        """The process answers."""
        return json_response({"status": "ok"})

    @app.get(
        "/ready",
        tags=["operations"],
        responses={200: {"model": schemas.Ready}, 503: {"model": schemas.Ready}},
    )
    async def ready() -> Response:
        """The warehouse answers a query now (a DuckDB file a pipeline run is writing: not
        ready until the run lets go of it)."""
        try:
            with anyio.fail_after(PROBE_TIMEOUT_SECONDS):
                await anyio.to_thread.run_sync(service.reader.probe, abandon_on_cancel=True)
            state = "ok"
        except TimeoutError:
            state = f"timed out after {PROBE_TIMEOUT_SECONDS:g} s"
        except WarehouseBusy:
            state = "busy (a pipeline run is writing it)"
        except (WarehouseUnavailable, MissingTable) as exc:
            log.warning("warehouse not ready: %s", exc)
            state = f"unreachable ({type(exc).__name__})"
        ok = state == "ok"
        body = {"status": "ready" if ok else "not ready", "checks": {"warehouse": state}}
        return json_response(body, 200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        """Prometheus text: requests by route and status, latency histogram."""
        return Response(service.metrics.render(), media_type=service.metrics.content_type)


def _error(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None):
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _error_handlers(app: FastAPI, service: ApiService) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail = []
        for error in exc.errors():
            where = [str(part) for part in error.get("loc", ())]
            param = ".".join(where[1:]) if len(where) > 1 else ".".join(where)
            problem = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            detail.append({"param": param, "in": where[0] if where else "", "problem": problem})
        return _error(400, "invalid parameters", detail)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return _error(400, exc.error, exc.detail)

    @app.exception_handler(Unauthorized)
    async def unauthorized(request: Request, exc: Unauthorized) -> Response:
        request.state.auth_refused = exc.reason  # the log line's, never the answer's
        return JSONResponse(UNAUTHORIZED_BODY, status_code=401, headers=CHALLENGE)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return _error(404, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        error = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, error, headers=exc.headers)

    @app.exception_handler(WarehouseBusy)
    async def busy(request: Request, exc: WarehouseBusy) -> Response:
        service.metrics.warehouse_busy.inc()
        headers = {"Retry-After": str(exc.retry_after)}
        return _error(503, "warehouse busy, try again", str(exc), headers)

    @app.exception_handler(WarehouseUnavailable)
    async def unavailable(request: Request, exc: WarehouseUnavailable) -> Response:
        log.warning("warehouse unavailable: %s", exc)
        return _error(503, "warehouse unavailable", None, {"Retry-After": "5"})

    @app.exception_handler(MissingTable)
    async def missing(request: Request, exc: MissingTable) -> Response:
        log.error("warehouse not initialized: %s", exc)
        return _error(503, "warehouse not initialized (run `ingest-pipeline init`)")

    @app.exception_handler(TenantsFileError)
    async def tenants_file(request: Request, exc: TenantsFileError) -> Response:
        return _error(503, "tenants file unusable (see the service log)")

    @app.exception_handler(ServiceUnavailable)
    async def dependency(request: Request, exc: ServiceUnavailable) -> Response:
        log.warning("%s", exc)
        return _error(503, str(exc))


class _RequestContext:
    """Request id, timing, the log line and the metrics of every HTTP request; a fault that
    escapes the app becomes a JSON 500 here (pure ASGI: answers are never buffered)."""

    def __init__(self, app: ASGIApp, service: ApiService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request %s failed", request_id)
            if status == 0:
                answer = _error(500, "internal error", {"request_id": request_id})
                await answer(scope, receive, send_with_id)
            status = 500
        finally:
            self._finish(scope, status or 500, time.perf_counter() - started)

    def _finish(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None)
        label = f"{scope.get('method', '')} {template}" if template else UNMATCHED
        self.service.metrics.observe(label, status, elapsed)
        state = scope.get("state") or {}
        tenant = (scope.get("path_params") or {}).get("tenant")
        fields: dict[str, Any] = {
            "request_id": state.get("request_id"),
            "method": scope.get("method"),
            "route": template or UNMATCHED,
            "tenant": tenant[:64] if isinstance(tenant, str) else None,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        }
        if state.get("auth_refused"):
            fields["auth_refused"] = state["auth_refused"]
        level = logging.ERROR if status >= 500 else logging.INFO
        access_log.log(level, "request", extra={"fields": fields})


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, without the 422 answers it lists by default (this API answers 400),
    with the bearer scheme on the tenant routes."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    for route, path in document.get("paths", {}).items():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
            if route.startswith(TENANT_PREFIX):
                operation["security"] = [{name: []} for name in READ_TOKEN_SCHEME]
    components = document.setdefault("components", {})
    components["securitySchemes"] = READ_TOKEN_SCHEME
    schemas_ = components.get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas_.pop(name, None)
    app.openapi_schema = document
    return document


def _version() -> str:
    try:
        return version("ingest-pipeline")
    except PackageNotFoundError:
        return "0"
