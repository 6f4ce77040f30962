"""The dbt manifest of a fresh checkout: parsed once however many processes load the code
location at once (the runs and Celery workers of a machine), and never read half written."""

import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

from ingest_pipeline.defs.metrics import project as dbt_project_module


def _ensure_with_a_slow_parse(folder: str) -> None:
    """One process: ensure_manifest, whose parse takes a while and notes that it ran."""
    root = Path(folder)
    fake = SimpleNamespace(
        project_dir=root, target_path=Path("target"), manifest_path=root / "target" / "m.json"
    )

    def parse(project: SimpleNamespace) -> None:
        with (root / "parses").open("a") as log:
            log.write("parse\n")
        time.sleep(0.5)
        project.manifest_path.write_text("{}")

    dbt_project_module.parse_manifest = parse  # this forked process's module only
    dbt_project_module.ensure_manifest(fake)  # type: ignore[arg-type]


def test_processes_loading_at_once_parse_the_manifest_once(tmp_path) -> None:
    fork = multiprocessing.get_context("fork")  # each its own lock holder, as real loads are
    processes = [
        fork.Process(target=_ensure_with_a_slow_parse, args=(str(tmp_path),)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert (tmp_path / "parses").read_text() == "parse\n"
    assert (tmp_path / "target" / "m.json").read_text() == "{}"
