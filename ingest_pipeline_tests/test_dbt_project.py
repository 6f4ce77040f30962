"""dbt is the virtualenv's own: the manifest is parsed with no `dbt` on PATH (the CLI, `make`
and the daemon run the venv's programs without activating it)."""

import shutil
import subprocess
import sys
import textwrap

import pytest

from ingest_pipeline.defs.metrics.project import DBT_PROJECT_DIR

pytestmark = pytest.mark.integration


def test_the_manifest_is_parsed_without_dbt_on_path(tmp_path):
    project = tmp_path / "dbt_metrics"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    script = textwrap.dedent(
        f"""
        import shutil
        from dagster_dbt import DbtProject
        from ingest_pipeline.defs.metrics.project import parse_manifest
        assert shutil.which("dbt") is None
        project = DbtProject(project_dir={str(project)!r}, profiles_dir={str(project)!r})
        parse_manifest(project)
        print(project.manifest_path)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (project / "target" / "manifest.json").is_file()
