"""Fast tier: `deploy/helm/values.yaml`, the values for Dagster's official Helm chart, checked
without Helm or a cluster.

Rules checked:
- Every key path the values set is one the chart has (CHART_KEYS below, read from the chart's
  sources), and the chart's enumerated fields hold one of their values.
- The instance blocks that the chart does not render from keys of its own (run coordinator,
  concurrency limits, run monitoring, run retries) are deploy/dagster.postgres.yaml's, key
  for key. The chart's own keys for them are off, so dagster.yaml doesn't get them twice.
  Telemetry matches too.
- The S3 compute log manager has deploy/dagster.production.yaml's bucket, prefix, endpoint and
  skip_empty_files, and every pod that loads the instance gets the variables those name.
- The dagster.yaml the chart writes from these values passes Dagster's own instance schema.
- The code server runs docker-compose.yml's code-location command (module, attribute, port),
  from the image docker-compose builds, tagged with the package's version, with its
  DAGSTER_HOME. The tenants file is mounted where INGEST_TENANTS_FILE says.
- Every variable the values pass is a Settings field (prefix INGEST_), or one of a few named
  Dagster variables, and the settings accept the values together.
- No secret is written in the values: no password, token, key or URL with credentials. Those
  come from Secrets the values name.
Each rule is a function that returns the problems it finds. test_the_checks_catch_drift breaks
a copy of the files in the ways the rules forbid and expects every rule to object.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from pydantic import SecretStr

from ingest_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
POSTGRES = REPO / "deploy" / "dagster.postgres.yaml"
PRODUCTION = REPO / "deploy" / "dagster.production.yaml"
COMPOSE = REPO / "docker-compose.yml"

# The key paths of the dagster/dagster chart that the values may set ("[]" is any item of a
# list). They come from the chart's schema sources, the pydantic models that generate its
# values.schema.json, and the templates that read them: helm/dagster/schema/schema/charts/
# dagster/values.py, subschema/{global_,webserver,daemon,run_launcher,compute_log_manager,
# postgresql,telemetry,config}.py, dagster_user_deployments/subschema/user_deployments.py,
# templates/configmap-instance.yaml, templates/helpers/instance/_compute-log-manager.tpl and
# charts/dagster-user-deployments/templates/deployment-user.yaml, in dagster-io/dagster.
# The values target chart 1.13.27, but that release's files could not be read (the repository
# was too large to copy, and its stored files carry no release tags). The files read were the
# newest stored versions of each: the pydantic 2 sources, whose daemon already has backfills
# and logFormat, so 1.11 or later. Every key below is in them, under the same name as in the
# older versions read as well.
# OPEN: a value the chart takes as a whole (a map of variables, Kubernetes objects, instance
# config, a config source), not checked below that key.
OPEN = "open"
CHART_KEYS: dict[str, str] = {
    "global.postgresqlSecretName": "str",
    "global.dagsterHome": "str",
    "dagsterWebserver.image.repository": "str",
    "dagsterWebserver.image.tag": "str",
    "dagsterWebserver.image.pullPolicy": "str",
    "dagsterWebserver.env": OPEN,
    "dagsterWebserver.envSecrets[].name": "str",
    "dagsterDaemon.image.repository": "str",
    "dagsterDaemon.image.tag": "str",
    "dagsterDaemon.image.pullPolicy": "str",
    "dagsterDaemon.env": OPEN,
    "dagsterDaemon.envSecrets[].name": "str",
    "dagsterDaemon.runCoordinator.enabled": "bool",
    "dagsterDaemon.runMonitoring.enabled": "bool",
    "dagsterDaemon.runRetries.enabled": "bool",
    "dagster-user-deployments.enabled": "bool",
    "dagster-user-deployments.enableSubchart": "bool",
    "dagster-user-deployments.deployments[].name": "str",
    "dagster-user-deployments.deployments[].image.repository": "str",
    "dagster-user-deployments.deployments[].image.tag": "str",
    "dagster-user-deployments.deployments[].image.pullPolicy": "str",
    "dagster-user-deployments.deployments[].codeServerArgs": OPEN,
    "dagster-user-deployments.deployments[].port": "int",
    "dagster-user-deployments.deployments[].includeConfigInLaunchedRuns.enabled": "bool",
    "dagster-user-deployments.deployments[].env": OPEN,
    "dagster-user-deployments.deployments[].envSecrets[].name": "str",
    "dagster-user-deployments.deployments[].volumes": OPEN,
    "dagster-user-deployments.deployments[].volumeMounts": OPEN,
    "runLauncher.type": "str",
    "postgresql.enabled": "bool",
    "postgresql.postgresqlHost": "str",
    "postgresql.postgresqlUsername": "str",
    "postgresql.postgresqlDatabase": "str",
    "postgresql.service.port": "int",
    "generatePostgresqlPasswordSecret": "bool",
    "computeLogManager.type": "str",
    "computeLogManager.config.s3ComputeLogManager.bucket": OPEN,
    "computeLogManager.config.s3ComputeLogManager.prefix": OPEN,
    "computeLogManager.config.s3ComputeLogManager.endpointUrl": OPEN,
    "computeLogManager.config.s3ComputeLogManager.skipEmptyFiles": "bool",
    "telemetry.enabled": "bool",
    "additionalInstanceConfig": OPEN,
}
# The chart's enumerations (subschema/run_launcher.py, compute_log_manager.py; Kubernetes').
CHART_ENUMS = {
    "runLauncher.type": {"K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher"},
    "computeLogManager.type": {
        "NoOpComputeLogManager",
        "AzureBlobComputeLogManager",
        "GCSComputeLogManager",
        "S3ComputeLogManager",
        "CustomComputeLogManager",
    },
    "dagster-user-deployments.deployments[].image.pullPolicy": {
        "Always",
        "IfNotPresent",
        "Never",
    },
}
TYPES = {"str": str, "bool": bool, "int": int}
# The blocks of dagster.yaml the chart renders from its own keys; the rest of
# dagster.postgres.yaml goes into additionalInstanceConfig.
CHART_RENDERED = {"storage", "telemetry"}
# The chart's compute log manager keys and the dagster.yaml fields its template writes.
S3_LOG_FIELDS = {
    "bucket": "bucket",
    "prefix": "prefix",
    "endpointUrl": "endpoint_url",
    "skipEmptyFiles": "skip_empty_files",
}
# `dagster code-server start` as deployment-user.yaml starts it (before codeServerArgs).
CODE_SERVER = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p"]
# Variables that are not settings but are passed on purpose (docker-compose.yml sets them too).
DAGSTER_VARIABLES = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|CREDENTIAL|WEBHOOK", re.IGNORECASE)
# The settings whose values hold a password (the URL's credentials): from a Secret only.
URLS_WITH_CREDENTIALS = {
    "warehouse_url",
    "dagster_pg_url",
    "celery_broker_url",
    "celery_backend_url",
}
CREDENTIALS_IN_URL = re.compile(r"://[^/\s@:]+:[^/\s@]+@")

Files = dict[str, Any]
Rule = Callable[[Files], list[str]]


def load() -> Files:
    files: Files = {
        name: yaml.safe_load(path.read_text(encoding="utf-8"))
        for name, path in {
            "values": VALUES,
            "postgres": POSTGRES,
            "production": PRODUCTION,
            "compose": COMPOSE,
        }.items()
    }
    files["version"] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return files


@pytest.fixture(scope="module")
def files() -> Files:
    return load()


def key_paths(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of each leaf (an empty map or list is one), not below an OPEN key."""
    if prefix and CHART_KEYS.get(prefix) == OPEN:
        yield prefix, node
    elif isinstance(node, dict) and node:
        for key, value in node.items():
            yield from key_paths(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, list) and node:
        for item in node:
            yield from key_paths(item, f"{prefix}[]")
    else:
        yield prefix, node


def deployment(values: dict) -> dict:
    (only,) = values["dagster-user-deployments"]["deployments"]
    return only


def env_blocks(values: dict) -> dict[str, dict]:
    """The env of each pod that loads the instance: webserver, daemon, code server (and runs)."""
    return {
        "dagsterWebserver": values["dagsterWebserver"]["env"],
        "dagsterDaemon": values["dagsterDaemon"]["env"],
        "code server": deployment(values)["env"],
    }


def unknown_keys(f: Files) -> list[str]:
    problems = []
    for path, value in key_paths(f["values"]):
        kind = CHART_KEYS.get(path)
        if kind is None:
            problems.append(f"{path}: not a key of the chart")
        elif kind != OPEN and type(value) is not TYPES[kind]:
            problems.append(f"{path}: {value!r} is not a {kind}")
        elif path in CHART_ENUMS and value not in CHART_ENUMS[path]:
            problems.append(f"{path}: {value!r} is not one of {sorted(CHART_ENUMS[path])}")
    return problems


def instance_drift(f: Files) -> list[str]:
    values, postgres = f["values"], f["postgres"]
    expected = {k: v for k, v in postgres.items() if k not in CHART_RENDERED}
    added = values.get("additionalInstanceConfig", {})
    problems = [
        f"additionalInstanceConfig.{key}: {added.get(key)!r} != dagster.postgres.yaml's {value!r}"
        for key, value in expected.items()
        if added.get(key) != value
    ]
    problems += [
        f"additionalInstanceConfig.{key}: the chart renders it"
        for key in added.keys() - expected.keys()
    ]
    daemon = values["dagsterDaemon"]
    for key in ("runCoordinator", "runMonitoring", "runRetries"):
        if daemon.get(key, {}).get("enabled") is not False:
            problems.append(f"dagsterDaemon.{key}.enabled must be false (additionalInstanceConfig)")
    if values["telemetry"] != postgres["telemetry"]:
        problems.append(f"telemetry: {values['telemetry']} != {postgres['telemetry']}")
    return problems


def compute_log_drift(f: Files) -> list[str]:
    manager = f["values"]["computeLogManager"]
    production = f["production"]["compute_logs"]
    problems = []
    if manager["type"] != production["class"]:
        problems.append(f"computeLogManager.type {manager['type']} != {production['class']}")
    s3 = manager["config"]["s3ComputeLogManager"]
    written = {S3_LOG_FIELDS[key]: value for key, value in s3.items()}
    if written != production["config"]:
        problems.append(f"s3ComputeLogManager {written} != production's {production['config']}")
    needed = {v["env"] for v in s3.values() if isinstance(v, dict)}
    for pod, env in env_blocks(f["values"]).items():
        if missing := needed - env.keys():
            problems.append(f"{pod} lacks {sorted(missing)}, named by the compute log manager")
    return problems


def code_server_drift(f: Files) -> list[str]:
    values, compose = f["values"], f["compose"]
    server = deployment(values)
    service = compose["services"]["code-location"]
    problems = []
    chart_command = [*CODE_SERVER, str(server["port"]), *server["codeServerArgs"]]
    if chart_command != shlex.split(service["command"]):
        problems.append(f"code server {chart_command} != compose's {service['command']!r}")
    repository, _, _ = service["image"].partition(":")
    image = server["image"]
    if (image["repository"], image["tag"]) != (repository, f["version"]):
        problems.append(f"image {image} is not {repository}:{f['version']}")
    # The webserver and the daemon load the instance's run coordinator, the project's own.
    for pod in ("dagsterWebserver", "dagsterDaemon"):
        if values[pod].get("image") != image:
            problems.append(f"{pod}.image {values[pod].get('image')} is not the project's {image}")
    home = service["environment"]["DAGSTER_HOME"]
    if values["global"]["dagsterHome"] != home:
        problems.append(f"global.dagsterHome {values['global']['dagsterHome']} != {home}")
    tenants = Path(server["env"]["INGEST_TENANTS_FILE"])
    mounts = {Path(m["mountPath"]) for m in server["volumeMounts"]}
    if not any(tenants.parent == mount for mount in mounts):
        problems.append(f"INGEST_TENANTS_FILE {tenants} is on no volume mount {sorted(mounts)}")
    return problems


def unknown_variables(f: Files) -> list[str]:
    problems = []
    for pod, env in env_blocks(f["values"]).items():
        for name in env:
            field = name.removeprefix("INGEST_").lower()
            if name in DAGSTER_VARIABLES:
                continue
            if not name.startswith("INGEST_") or field not in Settings.model_fields:
                problems.append(f"{pod}: {name} is not a setting")
    return problems


def inline_secrets(f: Files) -> list[str]:
    values = f["values"]
    problems = []
    for pod, env in env_blocks(values).items():
        for name in env:
            field = Settings.model_fields.get(name.removeprefix("INGEST_").lower())
            secret_field = field is not None and field.annotation is SecretStr
            if secret_field or SECRET_NAME.search(name):
                problems.append(f"{pod}: {name} is a secret, written inline")
            if name.removeprefix("INGEST_").lower() in URLS_WITH_CREDENTIALS:
                problems.append(f"{pod}: {name} holds credentials, written inline")
    for path, value in key_paths(values):
        if isinstance(value, str) and CREDENTIALS_IN_URL.search(value):
            problems.append(f"{path}: a URL with credentials")
    if "postgresqlPassword" in values["postgresql"]:
        problems.append("postgresql.postgresqlPassword is set")
    if values["generatePostgresqlPasswordSecret"] is not False:
        problems.append("generatePostgresqlPasswordSecret: the password would be in the values")
    if not values["global"].get("postgresqlSecretName"):
        problems.append("global.postgresqlSecretName names no Secret")
    if not deployment(values).get("envSecrets"):
        problems.append("the code server takes no Secret")
    return problems


RULES: list[Rule] = [
    unknown_keys,
    instance_drift,
    compute_log_drift,
    code_server_drift,
    unknown_variables,
    inline_secrets,
]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.__name__)
def test_the_helm_values_keep_the_rule(rule: Rule, files: Files) -> None:
    assert rule(files) == []


def test_the_settings_accept_the_code_servers_env(files: Files, tmp_path: Path) -> None:
    """The code server's variables as Settings (the Secret's URLs and the mounted tenants
    file stand in): the production checks pass and each value parses."""
    env = deployment(files["values"])["env"]
    given = {
        name.removeprefix("INGEST_").lower(): value
        for name, value in env.items()
        if name.startswith("INGEST_")
    }
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text("tenants: {}\n")
    settings = Settings(
        **{**given, "tenants_file": tenants},
        warehouse_url="postgresql://from-the-secret/warehouse",
        dagster_pg_url="postgresql+psycopg2://from-the-secret/dagster",
    )
    assert settings.env == "production"
    assert settings.executor == "in_process"  # K8sRunLauncher: the steps in the run's pod


def test_the_charts_dagster_yaml_passes_dagsters_schema(
    files: Files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster.yaml as the chart writes it from these values (storage from postgresql.*,
    compute_logs by _compute-log-manager.tpl, telemetry, then additionalInstanceConfig)."""
    values = files["values"]
    pg = values["postgresql"]
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    storage = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
    }
    instance = {
        "storage": {"postgres": {"postgres_db": storage}},
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": values["computeLogManager"]["type"],
            "config": {S3_LOG_FIELDS[key]: value for key, value in s3.items()},
        },
        "telemetry": values["telemetry"],
        **values["additionalInstanceConfig"],
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["run_coordinator"]["class"] == "InstanceQueuedRunCoordinator"
    assert validated["concurrency"]["runs"]["max_concurrent_runs"] == 8


def _set(tree: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        if key.endswith("[]"):
            (tree,) = tree[key.removesuffix("[]")]  # the only item
        else:
            tree = tree[key]
    tree[last] = value


UD = "dagster-user-deployments.deployments[]"
S3 = "computeLogManager.config.s3ComputeLogManager"
# What is broken: (the file, the key path, its new value, the rule that must object).
DRIFT: dict[str, tuple[str, str, Any, Rule]] = {
    "a key the chart lacks": ("values", "dagsterDaemon.runMonitor", {}, unknown_keys),
    "a misspelled chart key": ("values", f"{S3}.endpointURL", "x", unknown_keys),
    "a launcher the chart lacks": ("values", "runLauncher.type", "DockerRunLauncher", unknown_keys),
    "a port as a string": ("values", f"{UD}.port", "4000", unknown_keys),
    "the run queue edited in postgres.yaml alone": (
        "postgres",
        "concurrency.runs.max_concurrent_runs",
        16,
        instance_drift,
    ),
    "monitoring edited in the values alone": (
        "values",
        "additionalInstanceConfig.run_monitoring.max_runtime_seconds",
        600,
        instance_drift,
    ),
    "retries edited in postgres.yaml alone": (
        "postgres",
        "run_retries.max_retries",
        3,
        instance_drift,
    ),
    "the chart's own retries on": (
        "values",
        "dagsterDaemon.runRetries.enabled",
        True,
        instance_drift,
    ),
    "telemetry on": ("values", "telemetry.enabled", True, instance_drift),
    "another log prefix": ("production", "compute_logs.config.prefix", "logs", compute_log_drift),
    "the daemon without the log variables": ("values", "dagsterDaemon.env", {}, compute_log_drift),
    "another module in compose": (
        "compose",
        "services.code-location.command",
        "dagster code-server start -h 0.0.0.0 -p 4000 -m ingest_pipeline.defs -a defs",
        code_server_drift,
    ),
    "another port in the values": ("values", f"{UD}.port", 4001, code_server_drift),
    "an image tag behind the package": ("values", f"{UD}.image.tag", "0.0.9", code_server_drift),
    "the daemon on the chart's own image (no project run coordinator in it)": (
        "values",
        "dagsterDaemon.image",
        {"repository": "docker.io/dagster/dagster-k8s", "tag": "1.13.27"},
        code_server_drift,
    ),
    "a variable that is no setting": (
        "values",
        f"{UD}.env.INGEST_EXECUTER",
        "x",
        unknown_variables,
    ),
    "a password inline": (
        "values",
        f"{UD}.env.INGEST_ALERT_EMAIL_SMTP_PASSWORD",
        "x",
        inline_secrets,
    ),
    "the warehouse URL inline": (
        "values",
        "dagsterWebserver.env.INGEST_WAREHOUSE_URL",
        "postgresql://u:p@db/wh",
        inline_secrets,
    ),
    "a generated password Secret": (
        "values",
        "generatePostgresqlPasswordSecret",
        True,
        inline_secrets,
    ),
    "PostgreSQL's password in the values": (
        "values",
        "postgresql.postgresqlPassword",
        "p",
        inline_secrets,
    ),
}


@pytest.mark.parametrize(("file", "path", "value", "rule"), DRIFT.values(), ids=DRIFT.keys())
def test_the_checks_catch_drift(files: Files, file: str, path: str, value: Any, rule: Rule) -> None:
    broken = copy.deepcopy(files)
    _set(broken[file], path, value)
    assert rule(broken), f"{rule.__name__} did not object"
