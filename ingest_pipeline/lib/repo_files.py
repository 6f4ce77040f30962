"""Files of the repository the package reads at run time: the dbt project `dbt_metrics/`, the
Dagster instance configurations, the example tenants file, and `pyproject.toml` (its [tool.dg]
section tells dagster's loader where the defs folder is).

Rules kept here:
- A checkout (an editable install, `make`, the tests) reads them where they are, at the repo
  root (`REPO_ROOT`).
- A wheel carries copies of them under `ingest_pipeline/_repo_files/`, laid out as at the repo
  root (`setup.py` copies them while building; `PACKAGED_FILES` there lists them). An installed
  package reads those (`FILES_ROOT`) and never writes beside them.
- The copies exist only inside a built wheel, never in the source tree: a checkout cannot read a
  stale copy, and `INSTALLED` (the copies are there) tells the two apart.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
PACKAGED_ROOT = PACKAGE_DIR / "_repo_files"  # the name setup.py copies to
INSTALLED = PACKAGED_ROOT.is_dir()
# The checkout's root (`make dev`, the tests, the benchmarks): not there in an installed package.
REPO_ROOT = PACKAGE_DIR.parent
FILES_ROOT = PACKAGED_ROOT if INSTALLED else REPO_ROOT

DBT_PROJECT_DIR = FILES_ROOT / "dbt_metrics"
SQLITE_CONFIG = FILES_ROOT / "dagster.yaml"
POSTGRES_CONFIG = FILES_ROOT / "deploy" / "dagster.postgres.yaml"
# POSTGRES_CONFIG with the steps' logs in S3, docker-compose's (a checkout's file: written by
# `python -m ingest_pipeline.cli.dagster_home`, the way an installed package makes it itself).
PRODUCTION_CONFIG = REPO_ROOT / "deploy" / "dagster.production.yaml"
EXAMPLE_TENANTS_FILE = FILES_ROOT / "tenants.example.yaml"
