"""Alert payloads: every field there (null where it does not apply), checks by severity, errors as
one line with secrets masked, folding keyed by kind and subject."""

import dagster as dg
import pytest

from ingest_pipeline.defs.alerts.sensors import check_alert, run_failure_alert
from ingest_pipeline.lib.alerts import first_line

FIELDS = {
    "kind", "text", "job", "run_id", "tenant", "source_instance", "partition", "asset", "check",
    "severity", "error", "url",
}  # fmt: skip


def evaluation(passed: bool, severity: dg.AssetCheckSeverity) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(["normalized", "items"]),
        check_name="natural_key_unique",
        passed=passed,
        severity=severity,
        description="2 duplicate keys\nfirst: acme",
    )


@pytest.mark.parametrize("severity", [dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN])
def test_a_failed_check_is_an_alert_of_its_severity(severity, monkeypatch) -> None:
    monkeypatch.setenv("INGEST_UI_BASE_URL", "http://ui:3000/")
    alert = check_alert(evaluation(False, severity), "run-1")
    assert alert is not None
    body = alert.payload()
    assert set(body) == FIELDS
    assert body["severity"] == severity.value and body["check"] == "natural_key_unique"
    assert body["asset"] == "normalized/items" and body["run_id"] == "run-1"
    assert body["error"] == "2 duplicate keys" and body["job"] is None
    assert body["url"] == "http://ui:3000/assets/normalized/items"
    assert "\n" not in body["text"]
    assert check_alert(evaluation(True, severity), "run-1") is None


def test_a_failed_run_names_its_tenant_instance_and_partition() -> None:
    run = dg.DagsterRun(
        job_name="ingest_csv",
        run_id="r1",
        tags={
            "ingest/tenant": "acme",
            "ingest/source": "catalog",
            "dagster/partition": "acme.catalog",
        },
    )
    alert = run_failure_alert(run, "boom")
    assert (alert.tenant, alert.source_instance) == ("acme", "catalog")
    assert alert.text == "Run of ingest_csv (acme.catalog) failed: boom"
    # Folding: the same failure again is the same alert; another error is another one.
    assert run_failure_alert(run, "boom").fold_key == alert.fold_key
    assert run_failure_alert(run, "other").fold_key != alert.fold_key


def test_an_error_is_one_line_without_secrets(monkeypatch) -> None:
    monkeypatch.setenv("ACME_API_TOKEN", "tok-123456")
    message = "\n  401 Unauthorized for url: http://x/?token=tok-123456\nTraceback ..."
    assert first_line(message) == "401 Unauthorized for url: http://x/?token=***"
    assert first_line(None) is None and first_line("x" * 500) == "x" * 300
