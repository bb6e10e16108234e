"""The benchmark runs end to end at a tiny size and writes its JSON (speed itself is never asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, needs_frameworks

pytestmark = pytest.mark.integration  # every test here starts a process


@needs_frameworks
def test_bench_runs_tiny_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "conformance", "bench", "--sizes", "1k", "--steps", "3",
                           "--repeats", "1", "--memory-sizes", "1k", "--memory-steps", "2", "4",
                           "--loads", "idle", "busy", "--startup-size", "1k", "--suite", "", "--replay-size", "1k",
                           "--replay-steps", "2", "4", "-o", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(out.read_text())
    idle, idle_trace, busy, busy_trace = doc["overhead"]
    assert (idle["load"], busy["load"]) == ("idle", "busy") and doc["loads"]["busy"]["description"].startswith("busy")
    assert (idle_trace["source"], idle_trace["parameters"], idle_trace["outcome"]) == ("trace", 992, "passed")
    row = idle
    assert row["parameters"] == 992 and row["steps"] == 3
    assert set(row["median_s"]) == {"bare", "read", "stride", "full"}
    assert row["oracle"] == {"stride": 1, "setting": "auto", "steps_checked": 3}
    assert [(m["load"], m["source"], m["steps"]) for m in doc["memory"]] == [
        (load, source, n) for load in ("idle", "busy") for source in ("generated", "trace") for n in (2, 4)]
    assert doc["memory"][0]["peak_rss_mib"] > 0 and doc["memory"][2]["outcome"] == "passed"
    assert [(g["load"], g["size"], g["source"], g["from"], g["to"]) for g in doc["memory_growth"]] == [
        ("idle", "1k", "generated", 2, 4), ("idle", "1k", "trace", 2, 4), ("busy", "1k", "generated", 2, 4),
        ("busy", "1k", "trace", 2, 4)]
    assert "growth busy    1k" in done.stdout and "growth busy 1k trace" in done.stdout
    assert doc["startup"]["first_case"]["torch_first_step_s"] > 0
    assert "overhead" in done.stdout and str(out) in done.stdout


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM needs Linux's /proc")
def test_child_peak_rss_is_its_own_not_its_parents():
    """A child started by subprocess (vfork) inherits the parent's ru_maxrss at exec; the bench must not
    report that: a parent holding 1 GiB starts a child that allocates nothing."""
    import numpy as np

    from conformance.bench.measure import _peak_rss_mib

    held = np.ones(1 << 27)  # 1 GiB, touched
    child = subprocess.run([sys.executable, "-c",
                            "from conformance.bench.measure import _peak_rss_mib as p; print(p())"],
                           env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert _peak_rss_mib() > 1024 > float(child.stdout.split()[-1]) * 2
    del held
