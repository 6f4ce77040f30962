"""The one dbt project, `dbt_metrics/`, and its manifest (parsed on first load if missing).

dbt is always the virtualenv's own (`DBT_EXECUTABLE`), never whatever `dbt` is on PATH: the CLI,
`make` and the daemon run the venv's programs without activating it (dagster-dbt's own preparer
would look `dbt` up on PATH, so the manifest is parsed here with ours).

Several processes load the code location at once on a fresh checkout (the runs and the Celery
workers of a machine, the daemon and its code server): `dbt parse` writes its manifest in place,
so two of them corrupted it for good (one document then the tail of another) and every load
failed on it. The rules: one process parses at a time (a lock file beside the manifest; the
others wait, then find the manifest made), into a folder of its own, and the manifest is moved
into place in one step, so a reader sees no manifest or a whole one.
"""

import fcntl
import os
import shutil
import sys
import tempfile
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_metrics"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


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


# `make` parses it first; a fresh checkout's CLI, tests, workers and daemon parse it here.
ensure_manifest(dbt_project)
