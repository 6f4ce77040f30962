"""A product catalog REST API: bearer auth, `links.next` pagination, `updated_since` filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ingest_pipeline.sandbox.server import Request, Response, SandboxServer, json_response

PAGE_SIZE = 2


class CatalogApi:
    def __init__(self, token: str, products: list[dict[str, Any]] | None = None, port: int = 0):
        self.token = token
        self.products = products if products is not None else sample_products(5)
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
        start = (page - 1) * PAGE_SIZE
        body: dict[str, Any] = {"data": matching[start : start + PAGE_SIZE], "links": {}}
        if start + PAGE_SIZE < len(matching):
            next_query = f"page={page + 1}" + (f"&updated_since={since}" if since else "")
            body["links"]["next"] = f"{self.server.url}{path}?{next_query}"
        return json_response(200, body)


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
