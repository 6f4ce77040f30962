"""The one dbt project, `dbt_metrics/`, and its manifest (parsed on first load if missing).

dbt is always the virtualenv's own (`DBT_EXECUTABLE`), never whatever `dbt` is on PATH: the CLI,
`make` and the daemon run the venv's programs without activating it (dagster-dbt's own preparer
would look `dbt` up on PATH, so the manifest is parsed here with ours).
"""

import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_metrics"
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def parse_manifest(project: DbtProject) -> None:
    """`dbt parse` with the venv's dbt, writing the manifest dagster-dbt loads."""
    DbtCliResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
        ["parse", "--quiet"], target_path=project.target_path
    ).wait()


if not dbt_project.manifest_path.exists():
    # `make` parses it first; a fresh checkout's CLI, tests and daemon parse it here.
    parse_manifest(dbt_project)
