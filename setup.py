"""The wheel carries the repository files the package reads at run time (lib/repo_files.py);
everything else about the build is in pyproject.toml.

Rules kept here:
- They are copied into the built package as `ingest_pipeline/_repo_files/`, laid out as at the
  repo root: never into the source tree, and not at all for an editable install (it reads them
  where they are).
- The dbt project goes without dbt's run-time folders (target/, logs/, dbt_packages/) and its
  user id. Its manifest (`make manifest`: `dbt parse`, the build step of a wheel or an image)
  goes along only when it is newer than every file of the project; a stale one is left out
  with a warning, and the installed package then parses on first load, into its target folder.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGED_DIR = Path("ingest_pipeline") / "_repo_files"
# pyproject.toml for its [tool.dg] section: dagster's loader of the defs folder reads it.
PACKAGED_FILES = (
    "pyproject.toml",
    "dagster.yaml",
    "deploy/dagster.postgres.yaml",
    "tenants.example.yaml",
)
DBT_PROJECT = "dbt_metrics"
DBT_RUN_TIME = ("target", "logs", "dbt_packages", ".user.yml", "__pycache__")
MANIFEST = Path("target") / "manifest.json"


def fresh_manifest(project: Path) -> Path | None:
    """The project's parsed manifest, if no file of the project changed after it was parsed."""
    manifest = project / MANIFEST
    if not manifest.is_file():
        return None
    sources = [
        path
        for path in project.rglob("*")
        if path.is_file() and not set(path.relative_to(project).parts) & set(DBT_RUN_TIME)
    ]
    newest = max(path.stat().st_mtime for path in sources)
    return manifest if manifest.stat().st_mtime >= newest else None


def copy_repo_files(root: Path, destination: Path) -> bool:
    """Copy the files into `destination`; True when the dbt manifest went along."""
    shutil.rmtree(destination, ignore_errors=True)
    for name in PACKAGED_FILES:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, destination / name)
    project = root / DBT_PROJECT
    shutil.copytree(
        project, destination / DBT_PROJECT, ignore=shutil.ignore_patterns(*DBT_RUN_TIME)
    )
    manifest = fresh_manifest(project)
    if manifest is not None:
        (destination / DBT_PROJECT / MANIFEST).parent.mkdir()
        shutil.copy2(manifest, destination / DBT_PROJECT / MANIFEST)
    return manifest is not None


class BuildWithRepoFiles(build_py):
    """setuptools' build_py, then the repository files into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not copy_repo_files(ROOT, Path(self.build_lib) / PACKAGED_DIR):
            self.warn(
                f"{DBT_PROJECT}/{MANIFEST} is missing or older than the project (`make "
                "manifest`): the wheel has no dbt manifest; it is parsed on first load"
            )


setup(cmdclass={"build_py": BuildWithRepoFiles})
