"""Prometheus metrics every HTTP service of the project shares (the intake, the read API): a
registry of its own per app (tests and benchmarks build several apps in one process without
duplicate-metric errors), requests by route template and status, and their latency. A
service adds its own metrics to `registry`. Labels stay bounded: route templates and status
codes, never a raw path or a tenant name from the outside."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """`<prefix>_requests_total{route,status}` and `<prefix>_request_duration_seconds{route}`."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, prefix: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{prefix}_requests",
            "Requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            f"{prefix}_request_duration_seconds",
            "Time from request to the end of the answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        """One finished request."""
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
