"""The package as a wheel installs it, away from the checkout: its dbt project, manifest and
instance configs come from the wheel, and dbt writes only under the data dir.

The wheel is built from a copy of the checkout's sources with the manifest `make` parses (the
build step of a wheel or an image), installed with `pip install --no-deps --target`, and used
from a process whose working directory is elsewhere and whose `ingest_pipeline` is the installed
one. That process loads the definitions and builds one day of metrics on an empty DuckDB
warehouse (a real `dbt build`): the shipped manifest is loaded (no parse, no manifest made in the
target folder), each dbt invocation's artifacts and log are under `$INGEST_DATA_DIR/dbt/target`,
and not a file of the install changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest_pipeline.defs.metrics.project import dbt_project
from ingest_pipeline.lib.repo_files import INSTALLED, REPO_ROOT

pytestmark = pytest.mark.integration

SOURCES = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "dagster.yaml",
    "tenants.example.yaml",
)
SOURCE_DIRS = ("ingest_pipeline", "deploy")
DBT_RUN_TIME = ("target", "logs", "dbt_packages", "__pycache__")

SCRIPT = textwrap.dedent(
    """
    import json
    from datetime import date

    import dagster as dg

    import ingest_pipeline
    from ingest_pipeline.cli.metrics_runs import build_metrics
    from ingest_pipeline.definitions import defs
    from ingest_pipeline.defs.metrics import project
    from ingest_pipeline.lib import repo_files

    definitions = defs()
    keys = [key.to_user_string() for key in definitions.resolve_all_asset_keys()]
    day = date(2026, 1, 10)
    result = build_metrics(definitions, dg.DagsterInstance.ephemeral(), day, day)
    print(json.dumps({
        "package": ingest_pipeline.__file__,
        "installed": repo_files.INSTALLED,
        "manifest": str(project.dbt_project.manifest_path),
        "target_dir": str(project.dbt_target_dir()),
        "tenants_example": repo_files.EXAMPLE_TENANTS_FILE.is_file(),
        "instance_configs": repo_files.SQLITE_CONFIG.is_file() and repo_files.POSTGRES_CONFIG.is_file(),
        "metrics_assets": sum(key.startswith("metrics/") for key in keys),
        "success": result.success,
    }))
    """
)


def copy_sources(destination: Path) -> None:
    """What a wheel is built from: the sources, and the dbt manifest parsed from them."""
    for name in SOURCES:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, destination / name)
    for name in SOURCE_DIRS:
        shutil.copytree(
            REPO_ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    project = destination / "dbt_metrics"
    shutil.copytree(
        REPO_ROOT / "dbt_metrics", project, ignore=shutil.ignore_patterns(*DBT_RUN_TIME)
    )
    (project / "target").mkdir()
    shutil.copy2(dbt_project.manifest_path, project / "target" / "manifest.json")


def build_and_install(tmp_path: Path) -> Path:
    """The wheel built (offline: the venv's setuptools) and installed without its dependencies."""
    sources, wheels, install = tmp_path / "src", tmp_path / "dist", tmp_path / "site"
    copy_sources(sources)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(sources)]
    subprocess.run(build, check=True, cwd=sources, timeout=120)
    [wheel] = wheels.glob("ingest_pipeline-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(install), str(wheel)], check=True)
    return install


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_the_installed_wheel_uses_its_packaged_project_and_writes_only_under_the_data_dir(
    tmp_path: Path,
) -> None:
    assert not INSTALLED  # the suite runs from the checkout
    install = build_and_install(tmp_path)
    packaged = install / "ingest_pipeline" / "_repo_files"
    assert (packaged / "dbt_metrics" / "target" / "manifest.json").is_file()
    assert not (install / "ingest_pipeline_tests").exists()
    before = files_of(install)
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    env = {
        "PATH": "/usr/bin:/bin",  # dbt is the venv's own, found beside its python
        "HOME": str(tmp_path),
        "PYTHONPATH": str(install),  # ahead of the venv's editable finder of the checkout
        "PYTHONDONTWRITEBYTECODE": "1",  # an image compiles at install time
        "INGEST_DATA_DIR": str(data),
        "INGEST_WAREHOUSE_URL": f"duckdb:///{data / 'warehouse.duckdb'}",
        "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    (tmp_path / "dagster").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert Path(seen["package"]).is_relative_to(install)
    assert seen["installed"] and seen["tenants_example"] and seen["instance_configs"]
    assert seen["manifest"] == str(packaged / "dbt_metrics" / "target" / "manifest.json")
    assert seen["metrics_assets"] > 0 and seen["success"], done.stderr[-3000:]
    target = data / "dbt" / "target"
    assert seen["target_dir"] == str(target.resolve())
    assert not (target / "manifest.json").exists() and not (target / ".parse.lock").exists()
    builds = [folder for folder in target.iterdir() if folder.name.startswith("dbt_metrics-")]
    assert builds and all((folder / "dbt.log").is_file() for folder in builds)
    assert any((folder / "run_results.json").is_file() for folder in builds)
    assert files_of(install) == before
    assert not os.listdir(work)
