"""The benchmark runs end to end at a tiny size and writes its JSON (speed itself is never asserted)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import backends

pytestmark = pytest.mark.skipif(
    any(backends.get(n).unavailable("cpu", "float32") for n in backends.names()),
    reason="needs torch and mindspore on the CPU")


def test_bench_runs_tiny_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "conformance", "bench", "--sizes", "1k", "--steps", "3",
                           "--repeats", "1", "--memory-size", "1k", "--memory-steps", "2", "4",
                           "--suite", "", "-o", str(out)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(out.read_text())
    (row,) = doc["overhead"]
    assert row["parameters"] == 992 and row["steps"] == 3
    assert set(row["median_s"]) == {"bare", "read", "stride", "full"}
    assert row["oracle"] == {"stride": 1, "setting": "auto", "steps_checked": 3}
    assert [m["steps"] for m in doc["memory"]] == [2, 4] and doc["memory"][0]["peak_rss_mib"] > 0
    assert doc["startup"]["first_case"]["torch_first_step_s"] > 0
    assert "overhead" in done.stdout and str(out) in done.stdout
