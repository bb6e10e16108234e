"""The runner on real frameworks: oracles agree with their framework, and the oracle check can fail."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conformance import backends, oracles
from conformance.case import Item
from conformance.loader import load_file
from conformance.runner import run_item

pytestmark = pytest.mark.skipif(
    any(backends.get(n).unavailable("cpu", "float32") for n in backends.names()),
    reason="needs torch and mindspore on the CPU")


def _case(tmp_path: Path, body: str):
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n" + body, encoding="utf-8")
    (case,) = load_file(path)
    return case


@pytest.mark.parametrize("gradients", ["{mode: replay, seed: 3}", "autograd"])
def test_each_oracle_agrees_with_its_framework(tmp_path, gradients):
    case = _case(tmp_path, f"""
  - id: oracle_check
    model: {{kind: layernorm_mlp, sizes: [3, 5, 2]}}
    gradients: {gradients}
    optimizer: {{lr: 0.01, weight_decay: 0.1}}
    steps: 30
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    for label in ("torch~oracle", "mindspore~oracle"):
        pair = entry["pairs"][label]
        assert pair["observed"] == "conform", pair["first_divergence"]
        # stated bound: 8 float32 ULP, or 8 eps times the operands' magnitude where values cancel
        assert pair["max"]["params"]["abs"] < 1e-6
    assert entry["hparams"]["mindspore"]["lr"] == 0.01 and entry["hparams"]["torch"]["weight_decay"] == 0.1


def test_oracle_check_catches_a_framework_that_leaves_its_formula(tmp_path, monkeypatch):
    """Give torch MindSpore's formula as its oracle: with eps-sized gradients the check must fail."""
    case = _case(tmp_path, """
  - id: wrong_formula
    model: {kind: linear, in: 2, out: 3}
    gradients: {mode: replay, seed: 3, scale: 1.0e-8}
    steps: 3
    expect: diverge
    reason: eps placement
""")
    torch_backend = backends.get("torch")
    monkeypatch.setattr(type(torch_backend), "formula", staticmethod(oracles.mindspore_adamax))
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["pairs"]["torch~oracle"]["observed"] == "diverge"
    assert entry["outcome"] == "failed"
    assert "torch departs from its own formula's float64 oracle" in entry["message"]


def test_native_defaults_are_introspected(tmp_path):
    case = _case(tmp_path, """
  - id: native
    model: {kind: linear, in: 2, out: 3}
    optimizer: {defaults: native}
    steps: 1
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["hparams"]["torch"]["lr"] == 0.002
    assert entry["hparams"]["mindspore"]["lr"] == 0.001


def test_gpu_item_without_gpu_is_skipped_with_reason(tmp_path):
    case = _case(tmp_path, """
  - id: gpu_only
    model: {kind: linear, in: 2, out: 3}
    steps: 2
    devices: [gpu]
""")
    if backends.get("torch").unavailable("gpu", "float32") is None:
        pytest.skip("this machine has a CUDA device; the skip path is not reachable")
    entry = run_item(dataclasses.replace(Item(case, "gpu", "float32")), tmp_path / "steps")
    assert entry["outcome"] == "skipped" and "CUDA" in entry["reason"]
