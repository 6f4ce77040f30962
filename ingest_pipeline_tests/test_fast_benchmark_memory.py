"""benchmarks/_common.py's peak memory reading: a worker's own, not its parent's."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

COMMON = Path(__file__).resolve().parents[1] / "benchmarks" / "_common.py"


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux's VmHWM")
def test_a_worker_peak_is_its_own_not_the_high_water_mark_of_its_parent():
    # The parent touches 300 MB and lets it go; a worker started after (vfork and exec, as
    # subprocess does) used to report at least that as its ru_maxrss.
    held = bytearray(300 * 1024 * 1024)
    held[::4096] = b"x" * len(held[::4096])
    del held
    read = f"import importlib.util as u; s = u.spec_from_file_location('c', {str(COMMON)!r}); "
    read += "m = u.module_from_spec(s); s.loader.exec_module(m); print(m.peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", read], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 200
    assert _common().peak_rss_mb() >= 300  # this process's own peak is still seen
