"""Fast tier: the Dagster instance configs (`dagster.yaml`, production
`deploy/dagster.postgres.yaml`) pass Dagster's own config schema, and the run queue they set up
keeps runs apart: one run at a time per source instance, a cap per tenant (Dagster's own
tag-limit counter, as the queue daemon uses it), also for a raw partition launched without its
instance's tags (the asset page's Materialize: the queue gives it them), run monitoring with a maximum runtime and a
lost worker ended, not resumed, by a launcher that cannot resume; each normalize step in a pool
of one."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.test_utils import create_run_for_test
from dagster._utils.tags import TagConcurrencyLimitsCounter

from ingest_pipeline.cli.dagster_home import ensure_dagster_home, instance_config, production_config
from ingest_pipeline.domain.tenants import instance_run_tags
from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG, PRODUCTION_CONFIG, SQLITE_CONFIG
from ingest_pipeline.lib.resources import DUCKDB_POOL, normalize_pool
from ingest_pipeline.lib.run_coordinator import InstanceQueuedRunCoordinator, missing_instance_tags
from ingest_pipeline.settings import Settings

CONFIGS = {"local": SQLITE_CONFIG, "production": POSTGRES_CONFIG}
TENANT_CAP = {"local": 3, "production": 4}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def configured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dg.DagsterInstance]]:
    """(name, an instance built from that config, its storage replaced by SQLite)."""
    config = yaml.safe_load(CONFIGS[request.param].read_text(encoding="utf-8"))
    home = tmp_path_factory.mktemp(request.param)
    config["storage"] = {"sqlite": {"base_dir": str(home)}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield request.param, instance


def run(tags: dict[str, str], run_id: str) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="ingest_rss", run_id=run_id, tags=tags)


def created(instance: dg.DagsterInstance, job_name: str, **kwargs: object) -> dg.DagsterRun:
    """A run as a launch creates it, before it is submitted (never executed here)."""
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("ingest_pipeline"), "repo")
    return create_run_for_test(
        instance,
        job_name=job_name,
        status=dg.DagsterRunStatus.NOT_STARTED,
        remote_job_origin=RemoteJobOrigin(repository, job_name),
        **kwargs,
    )


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_configs_pass_dagsters_schema(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_DAGSTER_PG_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    (tmp_path / "dagster.yaml").write_bytes(CONFIGS[name].read_bytes())
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["run_coordinator"]["class"] == "InstanceQueuedRunCoordinator"


def test_one_run_per_source_instance_and_a_cap_per_tenant(
    configured: tuple[str, dg.DagsterInstance],
) -> None:
    name, instance = configured
    # What the queue daemon reads (the `concurrency.runs` block merged in).
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits["ingest/source_instance"]["limit"] == 1
    assert limits["ingest/tenant"]["limit"] == TENANT_CAP[name] < queue.max_concurrent_runs
    for key in ("ingest/source_instance", "ingest/tenant"):
        assert limits[key]["value"] == {"applyLimitPerUniqueValue": True}

    # Dagster's own counter, as the queue daemon uses it. Two runs of one instance requested at
    # once: the second waits for the first. initech.main is another instance.
    first = run(instance_run_tags("rss", "acme.main"), "a1")
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [first])
    assert counter.is_blocked(run(instance_run_tags("rss", "acme.main"), "a2"))
    assert not counter.is_blocked(run(instance_run_tags("csv", "acme.main"), "a3"))
    assert not counter.is_blocked(run(instance_run_tags("rss", "initech.main"), "i1"))

    # acme's API hangs: its runs fill acme's share, never the other tenants'.
    hung = [
        run(instance_run_tags("rss", f"acme.feed{n}"), f"h{n}") for n in range(TENANT_CAP[name])
    ]
    counter = TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, hung)
    assert counter.is_blocked(run(instance_run_tags("rss", "acme.another"), "a4"))
    assert counter.is_blocked(run({"ingest/tenant": "acme"}, "landing"))  # a landing run
    assert not counter.is_blocked(run(instance_run_tags("rss", "initech.main"), "i2"))


def test_a_raw_partition_launched_without_its_tags_is_queued_with_them(
    configured: tuple[str, dg.DagsterInstance],
) -> None:
    """The asset page's Materialize of a raw partition runs Dagster's implicit asset job with
    `dagster/partition` alone: submitted, the run has its instance's tags, so it waits for the
    instance's other run and counts in its tenant's share like the job's runs."""
    _, instance = configured
    assert isinstance(instance.run_coordinator, InstanceQueuedRunCoordinator)
    raw = dg.AssetKey(["raw", "rss", "entries"])
    page = created(
        instance,
        "__ASSET_JOB",
        asset_selection=frozenset({raw}),
        tags={"dagster/partition": "acme.main"},
    )
    queued = instance.run_coordinator.submit_run(dg.SubmitRunContext(page, None))
    assert queued.status == dg.DagsterRunStatus.QUEUED
    assert queued.tags.items() >= instance_run_tags("rss", "acme.main").items()
    queue = instance.get_concurrency_config().run_queue_config
    assert queue is not None
    scheduled = run(instance_run_tags("rss", "acme.main"), "s1")
    assert TagConcurrencyLimitsCounter(queue.tag_concurrency_limits, [scheduled]).is_blocked(queued)

    # Any other run is queued as it came.
    landing = created(instance, "land_logs", tags={"ingest/tenant": "acme"})
    queued = instance.run_coordinator.submit_run(dg.SubmitRunContext(landing, None))
    assert queued.status == dg.DagsterRunStatus.QUEUED and queued.tags == landing.tags


@pytest.mark.parametrize(
    ("job_name", "selection", "tags", "added"),
    [
        # `dagster job launch -j ingest_csv --tags '{"dagster/partition": ...}'`: the job's own
        # partition tags are not added by the CLI.
        ("ingest_csv", None, {"dagster/partition": "acme.main"}, "csv"),
        ("__ASSET_JOB", [("raw", "rss", "entries")], {"dagster/partition": "acme.main"}, "rss"),
        # Tagged already (the job's partitioned config, a schedule): nothing to add.
        ("ingest_rss", None, {**instance_run_tags("rss", "acme.main")}, None),
        # Not one instance's raw partition: a normalize or metrics run, two types, no partition.
        ("normalize_items", None, {}, None),
        ("__ASSET_JOB", [("normalized", "items")], {}, None),
        ("__ASSET_JOB", [("metrics", "feedback_daily")], {"dagster/partition": "2026-01-05"}, None),
        ("__ASSET_JOB", [("raw", "rss", "entries")], {}, None),
    ],
)
def test_which_runs_get_instance_tags(
    job_name: str, selection: list[tuple[str, ...]] | None, tags: dict, added: str | None
) -> None:
    keys = [dg.AssetKey(list(path)) for path in selection] if selection else None
    missing = missing_instance_tags(job_name, keys, {**tags})
    expected = instance_run_tags(added, "acme.main") if added else {}
    assert missing == {k: v for k, v in expected.items() if k not in tags}


def test_run_monitoring_ends_dead_and_endless_runs(
    configured: tuple[str, dg.DagsterInstance],
) -> None:
    _, instance = configured
    assert instance.run_monitoring_enabled
    assert 0 < instance.run_monitoring_max_runtime_seconds <= 3600
    assert 0 < instance.run_monitoring_start_timeout_seconds <= 300
    # A launcher that cannot resume a run whose worker was lost must not be asked to.
    if not instance.run_launcher.supports_resume_run:
        assert instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_retries_enabled


def test_normalize_steps_hold_a_pool_of_one(
    configured: tuple[str, dg.DagsterInstance], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two normalize runs of an entity at once: the second's step waits for the first's."""
    _, instance = configured
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    monkeypatch.setenv("INGEST_WAREHOUSE_URL", "postgresql://u:p@127.0.0.1:1/warehouse")
    assert normalize_pool("items") == "normalize_items"
    monkeypatch.setenv("INGEST_WAREHOUSE_URL", "duckdb:///wh.duckdb")
    assert normalize_pool("items") == DUCKDB_POOL


def test_the_compose_config_is_the_production_one_with_step_logs_in_s3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/dagster.production.yaml is written from dagster.postgres.yaml (they cannot drift),
    and Dagster builds its S3 compute log manager from it."""
    assert PRODUCTION_CONFIG.read_bytes() == production_config(), (
        "deploy/dagster.production.yaml is stale: python -m ingest_pipeline.cli.dagster_home"
    )
    for name, value in {
        "INGEST_DAGSTER_PG_URL": "postgresql+psycopg2://u:p@127.0.0.1:1/dagster",
        "INGEST_COMPUTE_LOGS_BUCKET": "dagster-logs",
        "INGEST_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_bytes(PRODUCTION_CONFIG.read_bytes())
    validated, _ = dagster_instance_config(str(tmp_path))
    assert validated["compute_logs"]["class"] == "S3ComputeLogManager"
    without_logs = dict(validated)
    without_logs.pop("compute_logs")
    (tmp_path / "dagster.yaml").write_bytes(POSTGRES_CONFIG.read_bytes())
    assert dagster_instance_config(str(tmp_path))[0] == without_logs


def test_step_logs_go_to_s3_only_when_a_bucket_is_named(tmp_path: Path) -> None:
    assert instance_config(POSTGRES_CONFIG, "") == POSTGRES_CONFIG.read_bytes()
    with_bucket = yaml.safe_load(instance_config(SQLITE_CONFIG, "logs", endpoint_url=False))
    assert with_bucket["compute_logs"]["config"]["bucket"] == {"env": "INGEST_COMPUTE_LOGS_BUCKET"}
    assert "endpoint_url" not in with_bucket["compute_logs"]["config"]  # AWS's own endpoint


def test_a_process_of_the_image_finds_the_mounted_config_right_and_never_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose mounts dagster.production.yaml read-only as DAGSTER_HOME/dagster.yaml;
    `ingest-pipeline worker` (ensure_dagster_home) with compose's settings makes the same bytes,
    and a read-only file that differs is the operator's: left as it is."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("INGEST_S3_ENDPOINT_URL", "http://minio:9000")
    settings = Settings(
        dagster_pg_url="postgresql+psycopg2://u:p@pg/dagster", compute_logs_bucket="dagster-logs"
    )
    ensure_dagster_home(settings)
    assert (tmp_path / "dagster.yaml").read_bytes() == PRODUCTION_CONFIG.read_bytes()
    (tmp_path / "dagster.yaml").write_text("# the operator's\n")

    def read_only_mount(source: object, target: object) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")  # as a bind-mounted file answers

    monkeypatch.setattr(os, "replace", read_only_mount)
    ensure_dagster_home(settings)
    assert (tmp_path / "dagster.yaml").read_text() == "# the operator's\n"
