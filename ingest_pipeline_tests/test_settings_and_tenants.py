import argparse
import json
import shlex
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from ingest_pipeline.domain.tenants import TenantsFileError, load_source_instances
from ingest_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# The Compose Specification's JSON schema, from `make compose-schema` (see the Makefile).
COMPOSE_SCHEMA = REPO / ".data" / "compose-spec" / "compose-spec.json"


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
    # A field excluded from the model's dump is derived, not set (tenants_file_url).
    expected = {
        f"INGEST_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if not field.exclude
    }
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


def test_docker_compose_has_the_production_shape(tmp_path):
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {
        "postgres",
        "minio",
        "rabbitmq",
        "redis",
        "webserver",
        "daemon",
        "code-location",
        "worker-1",
        "worker-2",
        "intake",
        "api",
    } <= services.keys()
    daemon_env = services["daemon"]["environment"]
    assert daemon_env["INGEST_ENV"] == "production"
    assert daemon_env["INGEST_WAREHOUSE_URL"].startswith("postgresql://")
    # The steps go to the workers through the broker, and the settings accept that shape.
    assert daemon_env["INGEST_EXECUTOR"] == "celery"
    # RabbitMQ as the broker: a lost worker's step is given to another as soon as its
    # connection drops (test_celery); the results in Redis.
    assert daemon_env["INGEST_CELERY_BROKER_URL"].startswith("pyamqp://")
    assert daemon_env["INGEST_CELERY_BROKER_URL"].endswith("@rabbitmq:5672//")
    assert daemon_env["INGEST_CELERY_BACKEND_URL"] == "redis://redis:6379/0"
    settings = {k.removeprefix("INGEST_").lower(): v for k, v in daemon_env.items()}
    settings = {k: v for k, v in settings.items() if k in Settings.model_fields}
    settings["tenants_file"] = tmp_path / "tenants.yaml"  # the mounted file, here
    settings["tenants_file"].write_text("tenants: {}\n")
    assert Settings(**settings).executor == "celery"  # the production checks accept it
    for name, service in services.items():
        if name != "minio-init":  # a job that ends, not a service to watch
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, condition in _depends_on(service).items():
            assert needed in services, f"{name} depends on an unknown service {needed}"
            if condition == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"


def compose_errors(text: str) -> list[str]:
    """What the Compose Specification's schema finds wrong with a compose file's text."""
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(f"{COMPOSE_SCHEMA} is missing: `make compose-schema` fetches it")
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)  # the schema's own draft
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(yaml.safe_load(text))
    ]


def test_docker_compose_follows_the_compose_specification():
    assert compose_errors((REPO / "docker-compose.yml").read_text()) == []


@pytest.mark.parametrize(
    ("written", "misspelled"),
    [
        ("healthcheck:", "healthchek:"),  # a service's key
        ("start_period:", "start_perod:"),  # a healthcheck's
        ("service_healthy", "service_healty"),  # a depends_on condition
        ("content: |", "contents: |"),  # a config's
        ("\nvolumes:", "\nvolume:"),  # a top-level key
    ],
)
def test_a_misspelled_compose_key_fails_the_schema(written, misspelled):
    text = (REPO / "docker-compose.yml").read_text()
    assert written in text
    assert compose_errors(text.replace(written, misspelled, 1)), f"{misspelled} passed"


def test_docker_compose_runs_only_commands_that_exist():
    """Each command the image runs is a program the package installs, and an ingest-pipeline
    command is one the CLI has."""
    from ingest_pipeline.cli import build_parser

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    bin_dir = Path(sys.executable).parent
    cli_commands = _subcommands(build_parser())
    checked = 0
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("ingest-pipeline") and "command" in service:
            program, *args = shlex.split(service["command"])
            assert (bin_dir / program).is_file(), f"{name}: {program} is not installed"
            if program == "ingest-pipeline":
                assert args[0] in cli_commands, f"{name}: no ingest-pipeline {args[0]}"
                build_parser().parse_args(args)  # its options are the CLI's
            checked += 1
        health = service.get("healthcheck", {}).get("test", [])
        if health[:1] == ["CMD"] and service.get("image", "").startswith("ingest-pipeline"):
            assert (bin_dir / health[1]).is_file() or health[1] == "python", health
    assert checked == 7  # code-location, webserver, daemon, two workers, intake, api


def _depends_on(service: dict) -> dict[str, str]:
    needs = service.get("depends_on", {})
    if isinstance(needs, list):
        return dict.fromkeys(needs, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in needs.items()}


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()
