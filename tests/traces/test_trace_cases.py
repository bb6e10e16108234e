"""A case that names a trace as its gradient source: what the trace brings (parameters, steps, dtype, the
port's hyper-parameters, the tolerance), how a port is written (porting.py), and each mistake as one
CaseError naming the key."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import conformance
from conformance.errors import CaseError
from conformance.traces import porting
from conformance.traces.format import open_trace
from tests.conftest import load_case

pytestmark = pytest.mark.torch_only


def _record(path, optimizer_of, steps: int = 3, schedule: bool = False):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    optimizer = optimizer_of(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (s + 1)) if schedule else None
    with conformance.record(optimizer, path, model=model):
        for _ in range(steps):
            optimizer.zero_grad()
            model(torch.randint(0, 10, (6,))).pow(2).mean().backward()
            optimizer.step()
            if scheduler:
                scheduler.step()
    return open_trace(path)


def _groups(model):
    decay = [model[0].weight, model[2].weight]
    return torch.optim.Adamax([{"params": decay, "weight_decay": 0.05},
                               {"params": [p for p in model.parameters() if all(p is not d for d in decay)],
                                "weight_decay": 0.0, "lr": 0.003}], lr=0.01, betas=(0.8, 0.99))


def test_a_trace_case_takes_model_steps_dtype_port_and_tolerance_from_the_trace(tmp_path):
    trace = _record(tmp_path / "t", lambda m: torch.optim.Adamax(m.parameters(), lr=0.01, weight_decay=0.01))
    case = load_case(tmp_path, "  - id: mine\n    gradients: {mode: replay, source: trace, trace: t}\n"
                               "    devices: [cpu]\n")
    assert case.gradients.trace == str((tmp_path / "t").resolve())
    assert case.model.kind == "trace" and case.model.names == ("0.weight", "1.weight", "1.bias", "2.weight", "2.bias")
    assert case.model.modules == ("Embedding", "LayerNorm", "LayerNorm", "Linear", "Linear")
    assert case.model.shapes == ((10, 4), (4,), (4,), (2, 4), (2,))
    assert (case.steps, case.dtypes) == (3, ("float32",))
    assert case.optimizer.neutral() == {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
    eps = float(np.finfo(np.float32).eps)
    params = trace.init_absmax + 3 * 0.01
    assert case.tolerance.params.atol == pytest.approx(4 * eps * params, rel=1e-12)
    assert case.tolerance.state.atol == pytest.approx(4 * eps * (trace.grad_absmax + 0.01 * params), rel=1e-12)
    fewer = load_case(tmp_path, "  - id: mine\n    gradients: {mode: replay, source: trace, trace: t}\n    steps: 2\n"
                                "    optimizer: {weight_decay: 0.0}\n    tolerance: {params: {atol: 1.0e-6}}\n")
    assert fewer.steps == 2 and fewer.optimizer.hparams["weight_decay"] == 0.0
    assert fewer.tolerance.params.atol == 1e-6


def test_the_ports_of_groups_and_a_schedule(tmp_path):
    trace = _record(tmp_path / "g", _groups, steps=3, schedule=True)
    ported = porting.optimizer(trace, 3, native=False)
    assert ported == {"lr": [0.01, 0.005, 0.01 * (1 / 3)], "betas": [0.8, 0.99], "eps": 1e-8, "weight_decay": 0.05,
                      "groups": [{"params": ["0.weight", "2.weight"], "lr": [0.01, 0.005, 0.01 * (1 / 3)],
                                  "weight_decay": 0.05},
                                 {"params": ["1.weight", "1.bias", "2.bias"], "lr": [0.003, 0.0015, 0.001],
                                  "weight_decay": 0.0}]}
    native = porting.optimizer(trace, 3, native=True)
    assert native == {"defaults": "native", "lr": 0.01, "betas": [0.8, 0.99],
                      "groups": [{"params": ["0.weight", "2.weight"], "lr": [0.01, 0.005, 0.01 * (1 / 3)],
                                  "weight_decay": 0.05},
                                 {"params": ["1.weight", "1.bias", "2.bias"], "lr": [0.003, 0.0015, 0.001]}]}


def test_a_port_with_native_defaults_writes_only_what_the_torch_code_wrote(tmp_path):
    trace = _record(tmp_path / "d", lambda m: torch.optim.Adamax(m.parameters(), weight_decay=0.01))
    assert porting.optimizer(trace, 3, native=True) == {"defaults": "native", "weight_decay": 0.01}
    assert porting.optimizer(trace, 3, native=False) == {"lr": 0.002, "betas": [0.9, 0.999], "eps": 1e-8,
                                                         "weight_decay": 0.01}


@pytest.mark.parametrize("body, key, words", [
    ("gradients: {mode: replay, source: trace, trace: nowhere}", "gradients.trace", "nowhere: not a folder"),
    ("gradients: {mode: replay, source: trace}", "gradients.trace", "name the trace folder"),
    ("gradients: {mode: replay, trace: t}", "gradients.trace", "add source: trace"),
    ("gradients: {mode: autograd, source: trace, trace: t}", "gradients.mode", "mode: replay"),
    ("gradients: {mode: replay, source: trace, trace: t}\n    model: {kind: linear}", "model",
     "a trace case takes its parameters from the trace"),
    ("gradients: {mode: replay, source: trace, trace: t}\n    steps: 9", "steps",
     "9 steps, but the trace has 3 complete steps"),
    ("gradients: {mode: replay, source: trace, trace: t}\n    optimizer: {groups: [{params: [0.weight]}]}",
     "optimizer.groups", "each parameter belongs to exactly one group; in none: 1.weight"),
    ("gradients: {mode: replay, source: trace, trace: t}\n    optimizer: {groups: [{params: [w]}]}",
     "optimizer.groups", "no parameter 'w' in this model"),
    ("gradients: {mode: replay, seed: 1}", "model", "'model' is a required property"),
])
def test_each_mistake_is_one_case_error_naming_the_key(tmp_path, body, key, words):
    _record(tmp_path / "t", lambda m: torch.optim.Adamax(m.parameters()))
    error = load_case(tmp_path, f"  - id: bad\n    {body}\n")
    assert isinstance(error, CaseError), error
    assert (error.case_id, error.key) == ("bad", key), str(error)
    assert words in error.message, error.message


def test_a_generated_file_names_its_own_rerun_command(tmp_path):
    from conformance.cases.case import Item
    from conformance.cases.loader import load_file
    from conformance.results.entry import rerun_command

    _record(tmp_path / "t", lambda m: torch.optim.Adamax(m.parameters()))
    path = tmp_path / "c.yaml"
    path.write_text("rerun: python -m conformance replay 't t'\ncases:\n"
                    "  - id: own\n    gradients: {mode: replay, source: trace, trace: t}\n", encoding="utf-8")
    (case,) = load_file(path, "cases/c.yaml")
    assert rerun_command(Item(case, "cpu", "float32")) == "python -m conformance replay 't t' -k own"
    path.write_text("rerun: [1]\ncases:\n  - id: own\n    gradients: {mode: replay, source: trace, trace: t}\n")
    (error,) = load_file(path, "cases/c.yaml")
    assert isinstance(error, CaseError) and error.key == "rerun" and "the command that reruns" in error.message
