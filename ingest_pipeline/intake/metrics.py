"""The intake's Prometheus metrics, in a registry of its own (one per app, so tests and
benchmarks can build several apps in one process without duplicate-metric errors)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from ingest_pipeline.lib.http_metrics import HttpMetrics

UNKNOWN_TENANT_LABEL = "_unknown"  # any tenant not in the tenants file: bounded label values


class IntakeMetrics(HttpMetrics):
    def __init__(self) -> None:
        super().__init__("intake")
        self.deliveries = Counter(
            "intake_deliveries",
            "Webhook deliveries and upload-URL requests by provider, tenant and verdict.",
            ["provider", "tenant", "verdict"],
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
