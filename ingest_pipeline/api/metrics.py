"""The read API's Prometheus metrics, in a registry of its own (one per app, so tests and
benchmarks can build several apps in one process). Labels are bounded: the route template
(`GET /v1/tenants/{tenant}/events`, or `unmatched`) and the status code, never a tenant name
or a raw path."""

from __future__ import annotations

from prometheus_client import Counter

from ingest_pipeline.lib.http_metrics import HttpMetrics


class ApiMetrics(HttpMetrics):
    def __init__(self) -> None:
        super().__init__("api")
        self.warehouse_busy = Counter(
            "api_warehouse_busy",
            "Requests answered 503 because the warehouse was busy (a writer held the DuckDB"
            " file, every pooled connection was taken, or a statement ran out of time).",
            registry=self.registry,
        )
