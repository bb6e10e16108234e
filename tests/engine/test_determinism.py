"""Two runs of the same cases give bitwise-identical per-step JSONL, whatever the ambient thread settings.

Seeds are fixed in the cases (init, data, gradients: NumPy generators) and in the adapters (torch and
MindSpore global seeds). torch's intra-op thread count changes matmul/reduction bits, so the torch
adapter pins it (CONFORMANCE_TORCH_THREADS, default 1): this test runs with OMP_NUM_THREADS=1 and =4,
which without the pin would give torch 1 and 4 threads and different bits for the wide layer below.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import needs_frameworks

pytestmark = [pytest.mark.integration, needs_frameworks]  # two pytester runs on real torch and MindSpore

CASES = """cases:
  - id: wide_autograd
    model: {kind: linear, in: 4096, out: 64}
    data: {batch: 256, resample: true}
    loss: mse
    steps: 3
    devices: [cpu]
    tolerance: {params: {atol: 1.0}, state: {atol: 1.0}, loss: {atol: 1.0}}
  - id: mlp_replay
    model: {kind: layernorm_mlp, sizes: [8, 32, 4]}
    gradients: {mode: replay, seed: 9, scale: 1.0e-3}
    steps: 20
    devices: [cpu]
    dtype: [float32, float64]
    tolerance: {params: {atol: 1.0}, state: {atol: 1.0}, loss: {atol: 1.0}}
"""


def test_two_runs_write_identical_step_records(project, monkeypatch):
    (project.path / "cases" / "d.yaml").write_text(CASES, encoding="utf-8")
    monkeypatch.delenv("CONFORMANCE_TORCH_THREADS", raising=False)
    for run, threads in (("one", "1"), ("two", "4")):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        monkeypatch.setenv("MKL_NUM_THREADS", threads)
        result = project.runpytest_subprocess("-q", "--run-id", run)
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)  # verdicts: not the point here
    one, two = (project.path / "reports" / run / "steps" for run in ("one", "two"))
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) and len(names) == 3
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
        assert (one / name).stat().st_size > 0
    verdicts = [[{k: i[k] for k in ("nodeid", "outcome", "final", "max", "first_divergence")}
                 for i in json.loads((project.path / "reports" / run / "summary.json").read_text())["items"]]
                for run in ("one", "two")]
    assert verdicts[0] == verdicts[1]
