"""DAGSTER_HOME for the CLI and `make`: SQLite under the data dir unless PostgreSQL is configured."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ingest_pipeline.lib.repo_files import POSTGRES_CONFIG, SQLITE_CONFIG
from ingest_pipeline.settings import Settings

# A range run (a single-run backfill) plans each asset once with its partition range, not once
# per day (a year's backfill otherwise writes 365 planned events per model). Dagster reads it
# where runs are created (CLI, webserver, daemon): set for every process the CLI starts.
RANGE_PLANNING_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


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
        _install(source, target)
    return home


def _install(source: Path, target: Path) -> None:
    """`target` made a copy of `source`, replaced in one step and only when it differs: processes
    starting together (Celery workers, runs) never read a dagster.yaml half copied."""
    if target.is_file() and target.read_bytes() == source.read_bytes():
        return
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, scratch)
    os.replace(scratch, target)
