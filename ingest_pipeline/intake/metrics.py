"""The intake's Prometheus metrics, in a registry of its own (one per app, so tests and
benchmarks can build several apps in one process without duplicate-metric errors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

UNKNOWN_TENANT_LABEL = "_unknown"  # any tenant not in the tenants file: bounded label values
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IntakeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "intake_deliveries",
            "Webhook deliveries and upload-URL requests by provider, tenant and verdict.",
            ["provider", "tenant", "verdict"],
            registry=self.registry,
        )
        self.requests = Counter(
            "intake_requests",
            "Requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "intake_request_duration_seconds",
            "Time from request to the end of the answer, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_pending = Gauge(
            "intake_audit_pending_rows",
            "Audit rows waiting to be written to normalized.intake_audit.",
            registry=self.registry,
        )
        self.audit_written = Counter(
            "intake_audit_rows_written",
            "Audit rows written to normalized.intake_audit.",
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "intake_audit_write_failures",
            "Failed attempts to write a batch of audit rows (retried, or split to drop a bad row).",
            registry=self.registry,
        )
        self.audit_dropped = Counter(
            "intake_audit_rows_dropped",
            "Audit rows dropped: queue_full (the warehouse stayed unreachable past the queue's"
            " bound) or refused (the warehouse refuses the row itself; the others are written).",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
