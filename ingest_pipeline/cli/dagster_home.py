"""DAGSTER_HOME for the CLI and `make`: SQLite under the data dir unless PostgreSQL is configured.

With INGEST_COMPUTE_LOGS_BUCKET set, the instance also keeps the steps' logs (their stdout and
stderr) in that S3 bucket (`COMPUTE_LOGS_ON_S3`), not on the disk of the machine that ran them:
the UI on any machine shows the logs of a step a Celery worker ran elsewhere.
`deploy/dagster.production.yaml` (what docker-compose mounts) is `instance_config` of the
PostgreSQL configuration with that bucket, written by `python -m
ingest_pipeline.cli.dagster_home` (a test keeps the two equal).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG, PRODUCTION_CONFIG, SQLITE_CONFIG
from ingest_pipeline.settings import Settings

# A range run (a single-run backfill) plans each asset once with its partition range, not once
# per day (a year's backfill otherwise writes 365 planned events per model). Dagster reads it
# where runs are created (CLI, webserver, daemon): set for every process the CLI starts.
RANGE_PLANNING_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
log = logging.getLogger(__name__)


def ensure_dagster_home(settings: Settings) -> Path:
    """Point DAGSTER_HOME at a folder holding the right dagster.yaml; return it."""
    os.environ.setdefault(RANGE_PLANNING_ENV, "true")
    home = Path(os.environ.get("DAGSTER_HOME") or (settings.data_dir / "dagster")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    use_postgres = bool(settings.dagster_pg_url or os.environ.get("DAGSTER_PG_HOST"))
    source = POSTGRES_CONFIG if use_postgres else SQLITE_CONFIG
    if source.resolve() != target.resolve() and source.is_file():
        _install(instance_config(source, settings.compute_logs_bucket), target)
    return home


def compute_logs_on_s3(endpoint_url: bool) -> str:
    """The instance's `compute_logs` block: S3ComputeLogManager in INGEST_COMPUTE_LOGS_BUCKET,
    through INGEST_S3_ENDPOINT_URL when one is set (an emulator, MinIO)."""
    endpoint = "    endpoint_url: {env: INGEST_S3_ENDPOINT_URL}\n" if endpoint_url else ""
    return (
        "\n# Step logs (stdout, stderr) in S3, readable from every machine's UI; a worker's disk\n"
        "# holds them only until they are uploaded (INGEST_COMPUTE_LOGS_BUCKET). Added by\n"
        "# ingest_pipeline/cli/dagster_home.py (deploy/dagster.production.yaml: `python -m\n"
        "# ingest_pipeline.cli.dagster_home`).\n"
        "compute_logs:\n"
        "  module: dagster_aws.s3.compute_log_manager\n"
        "  class: S3ComputeLogManager\n"
        "  config:\n"
        "    bucket: {env: INGEST_COMPUTE_LOGS_BUCKET}\n"
        "    prefix: dagster-compute-logs\n"
        f"{endpoint}"
        "    skip_empty_files: true\n"
    )


def instance_config(
    source: Path, compute_logs_bucket: str, endpoint_url: bool | None = None
) -> bytes:
    """`source`'s text, with the compute logs in S3 when a bucket is named (`endpoint_url`:
    whether INGEST_S3_ENDPOINT_URL is used; default: whether it is set now)."""
    text = source.read_bytes()
    if not compute_logs_bucket:
        return text
    if endpoint_url is None:
        endpoint_url = bool(os.environ.get("INGEST_S3_ENDPOINT_URL"))
    return text + compute_logs_on_s3(endpoint_url).encode()


def _install(content: bytes, target: Path) -> None:
    """`target` made to hold `content`, replaced in one step and only when it differs: processes
    starting together (Celery workers, runs) never read a dagster.yaml half written."""
    if target.is_file() and target.read_bytes() == content:
        return
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    try:
        scratch.write_bytes(content)
        os.replace(scratch, target)
    except OSError as exc:  # a read-only mount (EROFS, EBUSY): the operator's file stays
        scratch.unlink(missing_ok=True)
        if not target.is_file():
            raise
        log.warning("kept %s as it is (it differs from the settings' but %s)", target, exc)


def production_config() -> bytes:
    """What `deploy/dagster.production.yaml` holds: the PostgreSQL configuration, step logs in
    S3 through INGEST_S3_ENDPOINT_URL (MinIO in docker-compose). Byte for byte what
    `ensure_dagster_home` makes of the same settings, so a process of the image finds the
    mounted file already right and never writes it."""
    return instance_config(POSTGRES_CONFIG, "set", endpoint_url=True)


if __name__ == "__main__":
    PRODUCTION_CONFIG.write_bytes(production_config())
    print(f"wrote {PRODUCTION_CONFIG}", file=sys.stderr)
