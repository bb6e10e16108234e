"""`resume:` on real frameworks: a state exported and loaded continues bit for bit in its own framework,
a converted one continues the other framework's trajectory, and a wrong conversion is caught."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conformance import backends, convert_state
from conformance.backends.base import SessionSpec
from conformance.cases.case import Item
from conformance.engine import feeding, models, resume
from conformance.engine.runner import run_item
from tests.conftest import load_case, needs_frameworks

pytestmark = needs_frameworks

RESUME_CASE = """
  - id: resumed
    model: {kind: mlp, sizes: [3, 4, 2]}
    gradients: autograd
    optimizer: {lr: 0.002}
    resume: {steps: 20, from: FROM}
    steps: 15
    devices: [cpu]
    tolerance: {params: {atol: 1.0e-6, ulp: 8}, state: {atol: 1.0e-6, ulp: 8}, loss: {atol: 1.0e-6, ulp: 16}}
"""


@pytest.mark.parametrize("framework", ["torch", "mindspore"])
def test_an_exported_and_reloaded_state_continues_bit_for_bit(tmp_path, framework):
    """20 steps in one session against 10, export, a new session on those parameters loading the state,
    10 more: the same bits. Session.native_state and load_native_state lose nothing."""
    case = load_case(tmp_path, """
  - id: reload
    model: {kind: layernorm_mlp, sizes: [3, 5, 2]}
    gradients: {mode: replay, seed: 4}
    optimizer: {lr: 0.01, weight_decay: 0.1}
    steps: 20
""")
    item = Item(case, "cpu", "float32")
    init = models.init_arrays(case.model)
    backend = backends.get(framework)

    def run(session, grads):
        for g in grads:
            session.step(feeding.feed(framework, item, g, [a.shape for a in init.values()]))

    stream = feeding.gradient_stream(item, init)
    grads = [next(stream) for _ in range(20)]
    spec = SessionSpec(item=item, device="cpu", init=init, hparams=case.optimizer.neutral())
    whole = backend.open(spec)
    run(whole, grads)
    first = backend.open(spec)
    run(first, grads[:10])
    params = {name: np.array(p, dtype=np.float64) for name, p in zip(init, first.params())}
    second = backend.open(SessionSpec(item=item, device="cpu", init=params, hparams=case.optimizer.neutral()))
    second.load_native_state(first.native_state())
    run(second, grads[10:])
    for a, b in zip(whole.params() + whole.state()["m"] + whole.state()["u"],
                    second.params() + second.state()["m"] + second.state()["u"]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("source", ["torch", "mindspore"])
def test_a_converted_state_continues_the_other_frameworks_trajectory(tmp_path, source):
    case = load_case(tmp_path, RESUME_CASE.replace("FROM", source))
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "passed", entry.get("message")
    assert entry["resume"] == {"from": source, "steps": 20} and entry["steps"] == entry["requested_steps"] == 35
    assert all(entry["pairs"][p]["observed"] == "conform" for p in ("torch~oracle", "mindspore~oracle"))
    records = (tmp_path / "steps" / "resumed__cpu-float32.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in records] == list(range(21, 36))
    assert entry["msprobe"]["last"]["step"] == 35 and 21 <= entry["msprobe"]["worst"]["step"] <= 35


@pytest.mark.parametrize("corrupt, failing_pair", [
    ("beta1_power", "mindspore~oracle"),  # nn.AdaMax steps from a beta1_power of step 0: off its formula
    ("swap", "torch~mindspore"),  # moment1 and moment2 exchanged: another trajectory
])
def test_a_wrong_conversion_fails_the_item(tmp_path, monkeypatch, corrupt, failing_pair):
    """The resume case can fail: corrupt what convert_state hands MindSpore, and the check that sees it
    says so."""
    def converted(state, to, names=None, beta1=None):
        out = convert_state(state, to, names, beta1)
        if to == "mindspore" and corrupt == "beta1_power":
            out["beta1_power"] = np.ones(1, dtype=np.float32)
        elif to == "mindspore":
            out = {k.replace("moment1", "momentX").replace("moment2", "moment1").replace("momentX", "moment2"): v
                   for k, v in out.items()}
        return out

    monkeypatch.setattr(resume, "convert_state", converted)
    case = load_case(tmp_path, RESUME_CASE.replace("FROM", "torch"))
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "failed" and entry["pairs"][failing_pair]["observed"] == "diverge"
    assert entry["pairs"][failing_pair]["first_divergent_step"] == 21


def test_a_framework_without_a_state_layout_is_refused_by_the_loader(tmp_path):
    from conformance.errors import CaseError

    body = RESUME_CASE.replace("FROM", "torch") + "    frameworks: [torch, mindspore_experimental]\n"
    problem = load_case(tmp_path, body)
    assert isinstance(problem, CaseError) and problem.key == "frameworks"
    assert "mindspore_experimental cannot" in str(problem)
