"""The read API's Prometheus metrics, in a registry of its own (one per app, so tests and
benchmarks can build several apps in one process). Labels are bounded: the route template
(`GET /v1/tenants/{tenant}/events`, or `unmatched`) and the status code, never a tenant name
or a raw path."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "api_requests",
            "Requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "api_request_duration_seconds",
            "Time from request to the end of the answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.warehouse_busy = Counter(
            "api_warehouse_busy",
            "Requests answered 503 because the warehouse was busy (a writer held the DuckDB"
            " file, every pooled connection was taken, or a statement ran out of time).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
