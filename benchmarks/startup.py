"""Start-up of the CLI and the code location (issue 14): wall seconds and peak RSS of whole processes.

Run: .venv/bin/python benchmarks/startup.py [--runs 5]
Each figure is the median of `--runs` fresh processes (after one warm-up run that is not
counted), timed from outside, start-up included:

- `ingest-pipeline --help`;
- importing `ingest_pipeline.definitions`, and loading the code location (`defs()`, what the UI,
  the daemon and every run process of the multiprocess executor load);
- `ingest-pipeline ingest` of one csv instance of 3 rows on DuckDB, from an empty warehouse,
  data dir and DAGSTER_HOME each run (the raw run and the normalize run included).

Peak is the largest resident size of the process (`ru_maxrss` of the reaped child), in MB; it
cannot read below this script's own peak (about 10 MB), which the child starts from.
`--imports N` also prints, for each command, the N slowest imports of one more run
(`python -X importtime`, cumulative, top level only): where the start-up goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
ROWS = "sku,name,link,updated\n" + "".join(
    f"SKU-{n},Product {n},https://shop.example/p/{n},2026-01-0{n}\n" for n in (1, 2, 3)
)


def csv_instance(folder: Path) -> dict:
    """The tests' csv instance (`sandbox/instances.py`), built in a child process: importing it
    here would raise this process's own peak, which a child's `ru_maxrss` cannot read below."""
    code = (
        "import json, sys; from ingest_pipeline.sandbox.instances import catalog_csv_instance; "
        "print(json.dumps(catalog_csv_instance(sys.argv[1])))"
    )
    out = subprocess.run(
        [str(BIN / "python"), "-c", code, str(folder)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of one process, its output thrown away."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, child.returncode


def measure(command: list[str], env: dict[str, str], runs: int, before_each=None) -> dict:
    figures = []
    for n in range(runs + 1):  # the first is a warm-up (file cache, .pyc files)
        if before_each:
            before_each()
        wall, peak, status = run_once(command, env)
        if status != 0:
            raise SystemExit(f"{' '.join(command)} exited {status}")
        if n:
            figures.append((wall, peak))
    return {
        "wall_s": statistics.median(w for w, _ in figures),
        "peak_mb": statistics.median(p for _, p in figures),
        "wall_min_s": min(w for w, _ in figures),
        "wall_max_s": max(w for w, _ in figures),
    }


def slowest_imports(command: list[str], env: dict[str, str], count: int) -> list[tuple[float, str]]:
    """The `count` slowest top-level imports of one run (seconds, package), by `-X importtime`."""
    if Path(command[0]).name != "python":  # a console script: run its module under python
        command = [
            str(BIN / "python"),
            "-c",
            "from ingest_pipeline.cli import main; main()",
            *command[1:],
        ]
    out = subprocess.run(
        [command[0], "-X", "importtime", *command[1:]],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    found = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith("  "):  # one space: a top-level import
            found.append((int(cumulative) / 1e6, name.strip()))
    return sorted(found, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--imports", type=int, default=0, help="show the N slowest imports")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "csv").mkdir()
        (work / "csv" / "items.csv").write_text(ROWS, encoding="utf-8")
        tenants = {"tenants": {"bench": {"sources": [csv_instance(work / "csv")]}}}
        (work / "tenants.yaml").write_text(json.dumps(tenants), encoding="utf-8")
        env = {
            **os.environ,
            "INGEST_WAREHOUSE_URL": f"duckdb:///{work / 'wh.duckdb'}",
            "INGEST_DATA_DIR": str(work / "data"),
            "INGEST_TENANTS_FILE": str(work / "tenants.yaml"),
            "DAGSTER_HOME": str(work / "dagster"),
        }

        def fresh_state() -> None:
            for leftover in ("wh.duckdb", "wh.duckdb.wal", "data", "dagster"):
                path = work / leftover
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()

        python, cli = str(BIN / "python"), str(BIN / "ingest-pipeline")
        cases = {
            "ingest-pipeline --help": ([cli, "--help"], None),
            "import ingest_pipeline.definitions": (
                [python, "-c", "import ingest_pipeline.definitions"],
                None,
            ),
            "load the definitions (defs())": (
                [python, "-c", "from ingest_pipeline.definitions import defs; defs()"],
                None,
            ),
            "ingest-pipeline ingest (3 csv rows)": ([cli, "ingest"], fresh_state),
        }
        print(f"{'command':<40} {'wall s (median)':>16} {'min..max':>14} {'peak MB':>9}")
        for label, (command, before_each) in cases.items():
            got = measure(command, env, args.runs, before_each)
            spread = f"{got['wall_min_s']:.2f}..{got['wall_max_s']:.2f}"
            print(f"{label:<40} {got['wall_s']:>16.2f} {spread:>14} {got['peak_mb']:>9.0f}")
            if args.imports:
                if before_each:
                    before_each()
                for seconds, name in slowest_imports(command, env, args.imports):
                    print(f"    import {name:<50} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
