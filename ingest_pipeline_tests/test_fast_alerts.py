"""Alert payloads: every field there (null where it does not apply), checks by severity, errors as
one line with secrets masked, folding keyed by kind and subject; the e-mail an alert makes."""

import json

import dagster as dg
import pytest

from ingest_pipeline.defs.alerts.sensors import check_alert, run_failure_alert
from ingest_pipeline.lib.alerts import email_message, first_line, webhook_body
from ingest_pipeline.settings import Settings

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


def test_an_alert_as_an_e_mail() -> None:
    run = dg.DagsterRun(job_name="ingest_csv", run_id="r1", tags={"ingest/tenant": "acme"})
    alert = run_failure_alert(run, "boom")
    settings = Settings(
        alert_email_to=" ops@example.com,,oncall@example.com ",
        alert_email_from="alerts@pipeline.example",
        alert_email_smtp_host="smtp.example",
    )
    assert settings.alert_email_recipients == ["ops@example.com", "oncall@example.com"]
    message = email_message(alert, settings)
    assert message["Subject"] == f"[ingest-pipeline] {alert.text}"
    assert message["From"] == "alerts@pipeline.example"
    assert message["To"] == "ops@example.com, oncall@example.com"
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines() == [
        f"{name}: {'-' if value is None else value}" for name, value in alert.payload().items()
    ]
    assert "job: ingest_csv" in text and "check: -" in text
    [attachment] = message.iter_attachments()
    assert json.loads(attachment.get_content()) == webhook_body(alert)
    # A line break in the text (never expected) is not a header injection: one line.
    broken = email_message(run_failure_alert(run, "a\nBcc: x@evil.example"), settings)
    assert "\n" not in broken["Subject"] and broken["Bcc"] is None
