"""The one dbt project, `dbt_metrics/`, and its manifest (parsed on first load if missing)."""

import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[3] / "dbt_metrics"
# The venv's dbt, even when the venv is not activated (as under `make` or the daemon).
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
if not dbt_project.manifest_path.exists():
    # `dagster dev` prepares it itself; tests, the CLI and the daemon need it before loading.
    dbt_project.preparer.prepare(dbt_project)
