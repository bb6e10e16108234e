"""Training on a real dataset with real frameworks: the transformer block is the same model in both, its
MindSpore names are a ported model's, the `training` block matches the stored per-step losses, and a case
that expects agreement fails on MindFormers' standard when its loss curves part."""
from __future__ import annotations

import numpy as np
import pytest

from conformance import backends
from conformance.cases.case import Item
from conformance.engine import models
from conformance.engine.runner import run_item
from conformance.results import storage
from tests.conftest import load_case, needs_frameworks

pytest.importorskip("sklearn.datasets", reason="scikit-learn ships the datasets")
pytestmark = needs_frameworks

TRANSFORMER = """
  - id: block
    model: {{kind: transformer, sizes: [64, 16, 10], tokens: 8, init_seed: 3}}
    loss: cross_entropy
    data: {{dataset: digits, batch: 32, seed: 0}}
    optimizer: {{lr: 0.002, weight_decay: 0.01}}
    steps: {steps}
    devices: [cpu]
    tolerance: {{params: {{atol: 1.0e-5}}, state: {{atol: 1.0e-5}}, loss: {{atol: 1.0e-5}}}}
    expect: diverge
    cause: [decay_name_filter, eps_placement]
    reason: nn.AdaMax skips decay for the LayerNorm gamma/beta
"""


def _sessions(case):
    item, init = Item(case, "cpu", "float32"), models.init_arrays(case.model)
    spec = backends.base.SessionSpec(item=item, device="cpu", init=init, hparams=case.optimizer.neutral())
    return {name: backends.get(name).open(spec) for name in ("torch", "mindspore")}


def test_the_transformer_block_is_one_model_in_both_frameworks_under_its_ported_names(tmp_path):
    case = load_case(tmp_path, TRANSFORMER.format(steps=1))
    sessions = _sessions(case)
    x, y = next(models.batches(case.data, case.model))
    (loss_t, grads_t), (loss_m, grads_m) = (s.loss_and_grads(x, y) for s in sessions.values())
    assert abs(loss_t - loss_m) < 1e-5 * abs(loss_t)
    for name, gt, gm in zip(sessions["torch"].native_names, grads_t, grads_m):
        assert np.allclose(gt, gm, rtol=1e-4, atol=1e-6), name
    ms = sessions["mindspore"]
    assert [n for n in ms.native_names if not n.endswith((".weight", ".bias"))] == [
        "pos.embedding_table", "norm1.gamma", "norm1.beta", "norm2.gamma", "norm2.beta", "norm_f.gamma", "norm_f.beta"]
    # nn.AdaMax's own decay flags: its name filter skips exactly the LayerNorms' gamma and beta
    skipped = [n for n, decays in zip(ms.native_names, ms.optimizer.decay_flags) if not decays]
    assert skipped == ["norm1.gamma", "norm1.beta", "norm2.gamma", "norm2.beta", "norm_f.gamma", "norm_f.beta"]
    assert np.allclose(sessions["torch"].predict(x), ms.predict(x), atol=1e-5)


def test_the_decay_filter_is_attributed_in_a_trained_transformer(tmp_path):
    entry = run_item(Item(load_case(tmp_path, TRANSFORMER.format(steps=20)), "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "passed", entry.get("message")
    assert set(entry["attribution"]["causes"]) == {"decay_name_filter", "eps_placement"}
    assert entry["first_divergence"]["tensor"].startswith("norm")  # torch's names on the torch~mindspore pair


def test_the_training_block_is_what_the_stored_losses_say(tmp_path):
    case = load_case(tmp_path, """
  - id: mlp
    model: {kind: mlp, sizes: [64, 16, 10], init_seed: 3}
    loss: cross_entropy
    data: {dataset: digits, batch: 64, seed: 0}
    optimizer: {lr: 0.002}
    steps: 40
    devices: [cpu]
    tolerance: {params: {atol: 1.0e-4}, state: {atol: 1.0e-4}, loss: {atol: 1.0e-4}}
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    block = entry["training"]
    losses = [r["loss"] for r in storage.read_steps(tmp_path / entry["jsonl"])]
    a, b = np.array([r["torch"] for r in losses]), np.array([r["mindspore"] for r in losses])
    assert block["steps"] == len(losses) == 40
    assert block["loss_gap"]["mean_abs"] == pytest.approx(np.mean(np.abs(a - b)), rel=1e-9)
    assert block["loss_gap"]["mean_rel"] == pytest.approx(np.mean(np.abs(a - b) / np.abs(a)), rel=1e-9)
    assert block["loss_gap"]["first_abs"] == abs(a[0] - b[0]) and block["final_loss"]["torch"] == a[-1]
    for accuracy in block["final_accuracy"].values():  # a share of the 359 held-out samples
        assert 0.1 < accuracy <= 1 and (accuracy * 359) == pytest.approx(round(accuracy * 359))
    assert block["mindformers"]["first_loss_ok"] and block["mindformers"]["mean_loss_ok"]
    assert entry["outcome"] == "passed", entry.get("message")


def test_a_conforming_case_fails_when_its_loss_curves_break_mindformers_standard(tmp_path):
    """Native default learning rates (0.002 vs 0.001) under a tolerance loose enough to hold: the parameter
    check passes, the loss curves part by more than MindFormers allows, so the item fails and says so."""
    case = load_case(tmp_path, """
  - id: loose
    model: {kind: mlp, sizes: [64, 16, 10], init_seed: 3}
    loss: cross_entropy
    data: {dataset: digits, batch: 64, seed: 0}
    optimizer: {defaults: native}
    steps: 60
    devices: [cpu]
    tolerance: {params: {atol: 10.0}, state: {atol: 10.0}, loss: {atol: 10.0}}
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["pairs"]["torch~mindspore"]["observed"] == "conform"
    assert entry["outcome"] == "failed" and entry["training"]["mindformers"]["mean_loss_ok"] is False
    assert "fail MindFormers' standard" in entry["message"]
    again = run_item(Item(case, "cpu", "float32"), tmp_path / "again")
    assert again["training"] == entry["training"]  # the same batches, the same figures, run after run


def test_without_the_dataset_package_the_item_is_skipped_with_the_reason(tmp_path, monkeypatch):
    from conformance.engine import datasets

    monkeypatch.setattr(datasets, "unavailable", lambda name: f"no package ships {name} here")
    entry = run_item(Item(load_case(tmp_path, TRANSFORMER.format(steps=3)), "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "skipped" and entry["steps"] == 0
    assert entry["reason"] == "torch: no package ships digits here; mindspore: no package ships digits here"
