"""Files that live beside the package in the repository (and in the image, which copies it):
the Dagster instance configurations and the example tenants file."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SQLITE_CONFIG = REPO_ROOT / "dagster.yaml"
POSTGRES_CONFIG = REPO_ROOT / "deploy" / "dagster.postgres.yaml"
# POSTGRES_CONFIG with the steps' logs in S3 (cli/dagster_home.py writes it): docker-compose's.
PRODUCTION_CONFIG = REPO_ROOT / "deploy" / "dagster.production.yaml"
EXAMPLE_TENANTS_FILE = REPO_ROOT / "tenants.example.yaml"
