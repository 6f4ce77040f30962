from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ingest_pipeline.domain.tenants import TenantsFileError, load_source_instances
from ingest_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_development_defaults_to_embedded_duckdb(tmp_path, monkeypatch):
    monkeypatch.setenv("INGEST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("INGEST_WAREHOUSE_URL", raising=False)
    url = Settings().resolved_warehouse_url
    assert url == f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


def test_production_refuses_unsafe_defaults(monkeypatch):
    monkeypatch.setenv("INGEST_ENV", "production")
    monkeypatch.delenv("INGEST_WAREHOUSE_URL", raising=False)
    with pytest.raises(ValidationError, match="production mode refuses unsafe defaults"):
        Settings()


def test_production_accepts_a_complete_configuration(tmp_path, monkeypatch):
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants: {}\n")
    monkeypatch.setenv("INGEST_ENV", "production")
    monkeypatch.setenv("INGEST_WAREHOUSE_URL", "postgresql://u:p@127.0.0.1:5432/wh")
    monkeypatch.setenv("INGEST_TENANTS_FILE", str(tenants))
    monkeypatch.setenv("INGEST_DAGSTER_PG_URL", "postgresql+psycopg2://u:p@127.0.0.1/dagster")
    assert Settings().env == "production"


def test_env_example_lists_every_setting():
    listed = {
        line.split("=", 1)[0]
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    expected = {f"INGEST_{name.upper()}" for name in Settings.model_fields}
    assert expected <= listed


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alert_email_to": "ops@example.com"}, "INGEST_ALERT_EMAIL_SMTP_HOST must be"),
        (
            {"alert_email_to": "ops@example.com, oncall", "alert_email_smtp_host": "smtp"},
            "not e-mail addresses: \\['oncall'\\]",
        ),
        ({"alert_email_smtp_port": 0, "alert_email_smtp_host": "smtp"}, "greater than or equal"),
    ],
)
def test_email_alerts_refuse_an_incomplete_configuration(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants: [1, 2]", "must be a mapping"),
        ("tenants:\n  acme:\n    sources:\n      - {type: rss}", "each source needs type, name"),
        (
            "tenants:\n  Acme Corp:\n    sources:\n      - {type: rss, name: a, url: x}",
            "must match",
        ),
        (
            "tenants:\n  a:\n    sources:\n      - {type: rss, name: b}\n      - {type: rss, name: b}",
            "twice",
        ),
        ("tenants: [", "not valid YAML"),
        # A trailing newline passed `^...$` with match(); names are at most 63 characters.
        ('tenants:\n  "acme\\n":\n    sources:\n      - {type: rss, name: a}', "must match"),
        (f"tenants:\n  {'a' * 64}:\n    sources:\n      - {{type: rss, name: a}}", "must match"),
    ],
)
def test_invalid_tenants_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    with pytest.raises(TenantsFileError, match=message):
        load_source_instances(path)


def test_missing_tenants_file_names_the_setting(tmp_path):
    with pytest.raises(TenantsFileError, match="INGEST_TENANTS_FILE"):
        load_source_instances(tmp_path / "absent.yaml")


def test_docker_compose_has_the_production_shape():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"postgres", "minio", "webserver", "daemon", "code-location", "intake"} <= compose[
        "services"
    ].keys()
    daemon_env = compose["services"]["daemon"]["environment"]
    assert daemon_env["INGEST_ENV"] == "production"
    assert daemon_env["INGEST_WAREHOUSE_URL"].startswith("postgresql://")
