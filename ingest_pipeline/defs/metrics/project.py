"""The one dbt project, `dbt_metrics/`: where it is, the manifest the definitions load, and the
folder dbt writes into.

Rules kept here:
- The project is the checkout's `dbt_metrics/`, or the copy an installed wheel carries
  (lib/repo_files.py). dbt is always the virtualenv's own (`DBT_EXECUTABLE`), never whatever
  `dbt` is on PATH: the CLI, `make` and the daemon run the venv's programs without activating
  it (dagster-dbt's own preparer would look `dbt` up on PATH, so the manifest is parsed here
  with ours).
- The manifest: the one a wheel ships (parsed at build time, `make manifest` or the
  Dockerfile), read where it is and never parsed again; otherwise `<target folder>/manifest.json`,
  parsed on first load if missing (a checkout; `make` parses it first).
- dbt writes only under the target folder, `dbt_target_dir()` (INGEST_DBT_TARGET_DIR; by default
  the project's `target/` in a checkout, `<data dir>/dbt/target` for an installed package, which
  never writes into its own files): each invocation of `MetricsDbtCliResource` in a folder of
  its own there (its artifacts and dbt.log), the parse too.
- Several processes load the code location at once on a fresh checkout (the runs and the
  Celery workers of a machine, the daemon and its code server): `dbt parse` writes its manifest
  in place, so two of them corrupted it for good (one document then the tail of another) and
  every load failed on it. One process parses at a time (a lock file beside the manifest; the
  others wait, then find the manifest made), into a folder of its own, and the manifest is
  moved into place in one step, so a reader sees no manifest or a whole one.
"""

import fcntl
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource, DbtProject

from ingest_pipeline.lib.repo_files import DBT_PROJECT_DIR, INSTALLED
from ingest_pipeline.settings import Settings, get_settings

DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")
SHIPPED_TARGET = DBT_PROJECT_DIR / "target"  # in a wheel: the manifest parsed at build time
DbtContext = dg.OpExecutionContext | dg.AssetExecutionContext


def dbt_target_dir(settings: Settings | None = None) -> Path:
    """The folder dbt writes into (absolute): the setting, or the default for this install."""
    settings = settings or get_settings()
    if settings.dbt_target_dir:
        return settings.dbt_target_dir.resolve()
    if INSTALLED:
        return (settings.data_dir / "dbt" / "target").resolve()
    return DBT_PROJECT_DIR / "target"


def load_project() -> DbtProject:
    """The project, its `manifest_path` the manifest the definitions load."""
    shipped = INSTALLED and (SHIPPED_TARGET / "manifest.json").is_file()
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=SHIPPED_TARGET if shipped else dbt_target_dir(),
    )


def invocation_target_path(context: DbtContext | None = None) -> Path:
    """A folder of its own under the target folder for one dbt invocation, named as
    dagster-dbt names it (`<op>-<run id>-<random>`, or just the random part)."""
    name = uuid.uuid4().hex[:7]
    if context is not None:
        name = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{name}"
    return dbt_target_dir() / name


class MetricsDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, every invocation's artifacts and log under `dbt_target_dir()`
    (dagster-dbt's own default: `$DBT_TARGET_PATH`, else the project's `target/`)."""

    def cli(
        self,
        args: Sequence[str],
        *,
        target_path: Path | None = None,
        context: DbtContext | None = None,
        **kwargs: Any,
    ) -> DbtCliInvocation:
        target_path = target_path or invocation_target_path(context)
        return super().cli(args, target_path=target_path, context=context, **kwargs)


def parse_manifest(project: DbtProject) -> None:
    """`dbt parse` with the venv's dbt, writing the manifest dagster-dbt loads (whole or not)."""
    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=target))
    try:
        DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            ["parse", "--quiet"], target_path=scratch
        ).wait()
        os.replace(scratch / "manifest.json", project.manifest_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def ensure_manifest(project: DbtProject) -> None:
    """The manifest parsed unless it is there, by one process at a time."""
    if project.manifest_path.exists():
        return
    target = Path(project.project_dir) / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not project.manifest_path.exists():  # not parsed while this process waited
            parse_manifest(project)


dbt_project = load_project()
# A wheel ships it; `make` parses it first; a fresh checkout's CLI, tests, workers and daemon
# (or a wheel built without it) parse it here.
ensure_manifest(dbt_project)
