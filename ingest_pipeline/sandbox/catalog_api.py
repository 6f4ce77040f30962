"""A product catalog REST API: bearer auth, `links.next` pagination, `updated_since` filter.

Besides the server's shared faults (statuses, rate limits, delays), the catalog can answer with
broken pages, each off by default and set as an option (constructor keyword or attribute):

- `next_link_loops`: the last page links back to page 1 instead of ending (paged forever);
- `endless`: every page links to a next one, past the last product (an API that never ends);
- `page_without_data`: that page number has no `data` key (with `null_data`: `data` is null);
- `html_page`: that page number answers 200 with an HTML body (a proxy's or portal's page).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_pipeline.sandbox.demo_world import sandbox_part
from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

PAGE_SIZE = 2


HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service unavailable</title></head>"
    "<body><h1>We'll be back soon</h1><p>Maintenance in progress.</p></body></html>"
)


class CatalogApi:
    def __init__(
        self,
        token: str,
        products: list[dict[str, Any]] | None = None,
        port: int = 0,
        *,
        next_link_loops: bool = False,
        endless: bool = False,
        page_without_data: int = 0,
        null_data: bool = False,
        html_page: int = 0,
    ):
        self.token = token
        self.products = products if products is not None else sample_products(5)
        self.next_link_loops = next_link_loops
        self.endless = endless
        self.page_without_data = page_without_data
        self.null_data = null_data
        self.html_page = html_page
        self.server = SandboxServer(self.handle, port)

    def handle(self, request: Request) -> Response:
        path = request.path
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return json_response(401, {"error": "unauthorized"})
        if not path.rstrip("/").endswith("/products"):
            return json_response(404, {"error": "not found"})
        since = request.arg("updated_since", "")
        page = int(request.arg("page", "1"))
        matching = sorted(
            (p for p in self.products if not since or p["updated_at"] >= since),
            key=lambda p: (p["updated_at"], p["id"]),
        )
        if page == self.html_page:
            return Response(200, HTML_PAGE.encode(), {"Content-Type": "text/html; charset=utf-8"})
        start = (page - 1) * PAGE_SIZE
        body: dict[str, Any] = {"data": matching[start : start + PAGE_SIZE], "links": {}}
        next_page = self._next_page(page, more=start + PAGE_SIZE < len(matching))
        if next_page:
            next_query = f"page={next_page}" + (f"&updated_since={since}" if since else "")
            body["links"]["next"] = f"{self.server.url}{path}?{next_query}"
        if page == self.page_without_data:
            if self.null_data:
                body["data"] = None
            else:
                del body["data"]
        return json_response(200, body)

    def _next_page(self, page: int, more: bool) -> int | None:
        if more or self.endless:
            return page + 1
        return 1 if self.next_link_loops and page > 1 else None


def sample_products(count: int, start: int = 1) -> list[dict[str, Any]]:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": n,
            "name": f"Product {n}",
            "url": f"https://shop.example/p/{n}",
            "updated_at": (base + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "price": {"amount": n * 100, "currency": "EUR"},
        }
        for n in range(start, start + count)
    ]


# This sandbox's part of the demo world (sandbox/demo_world.py), as tenants.example.yaml names it.
DEMO_SECRET_ENV = "DEMO_CATALOG_TOKEN"


def demo_sandbox(port: int) -> CatalogApi:
    """The catalog API with a dozen products behind the demo token."""
    return CatalogApi(os.environ[DEMO_SECRET_ENV], sample_products(12), port)


DEMO = sandbox_part(8081, demo_sandbox, {DEMO_SECRET_ENV: "demo-token"})
