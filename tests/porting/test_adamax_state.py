"""conformance.convert_state on NumPy states: names, step counts, beta1_power, round trips, refusals.

The end-to-end proof on real frameworks (train, convert, continue) is cases/resume.yaml and
tests/engine/test_resume.py; here each rule of the conversion is checked against a value computed
independently, so a wrong name, count or product fails."""
from __future__ import annotations

import numpy as np
import pytest

from conformance import convert_state

pytestmark = pytest.mark.torch_only  # NumPy only


def _torch_state(steps=(5, 5), beta1s=(0.9, 0.9), eps=(1e-8, 1e-8)) -> dict:
    """A torch Adamax state_dict of two parameters, one parameter group each (NumPy values)."""
    rng = np.random.default_rng(0)
    shapes = [(3, 2), (3,)]
    state = {i: {"step": float(s), "exp_avg": rng.normal(size=shape).astype(np.float32),
                 "exp_inf": np.abs(rng.normal(size=shape)).astype(np.float32)}
             for i, (s, shape) in enumerate(zip(steps, shapes)) if s is not None}
    groups = [{"lr": 0.002, "betas": [b, 0.999], "eps": e, "weight_decay": 0.0, "params": [i]}
              for i, (b, e) in enumerate(zip(beta1s, eps))]
    return {"state": state, "param_groups": groups}


def _float32_product(beta1: float, steps: int) -> np.float32:
    power = np.float32(1.0)
    for _ in range(steps):
        power = np.float32(power * np.float32(beta1))
    return power


def test_torch_to_mindspore_renames_moments_and_keeps_one_step_count_as_nn_adamax_does():
    torch_state = _torch_state()
    out = convert_state(torch_state, to="mindspore", names=["dense0.weight", "dense0.bias"])
    assert sorted(out) == ["beta1_power", "global_step", "moment1.dense0.bias", "moment1.dense0.weight",
                           "moment2.dense0.bias", "moment2.dense0.weight"]
    assert np.array_equal(out["moment1.dense0.weight"], torch_state["state"][0]["exp_avg"])
    assert np.array_equal(out["moment2.dense0.bias"], torch_state["state"][1]["exp_inf"])
    assert out["global_step"].dtype == np.int32 and out["global_step"].tolist() == [5]
    # float32(0.9) multiplied 5 times in float32: not float32(0.9 ** 5), which differs in the last bit
    assert out["beta1_power"].dtype == np.float32 and out["beta1_power"][0] == _float32_product(0.9, 5)
    assert _float32_product(0.9, 5) != np.float32(0.9 ** 5)
    assert out["moment1.dense0.weight"] is not torch_state["state"][0]["exp_avg"]  # a copy


def test_round_trips_are_exact_both_ways():
    torch_state = _torch_state()
    names = ["w", "b"]
    there = convert_state(torch_state, to="mindspore", names=names)
    back = convert_state(there, to="torch", beta1=0.9)
    for i in (0, 1):
        assert back["state"][i]["step"] == 5.0
        for key in ("exp_avg", "exp_inf"):
            assert np.array_equal(back["state"][i][key], torch_state["state"][i][key])
    again = convert_state(back, to="mindspore", names=names, beta1=0.9)
    assert sorted(again) == sorted(there) and all(np.array_equal(again[k], there[k]) for k in there)
    # MindSpore -> MindSpore without beta1 keeps the saved beta1_power
    assert convert_state(there, to="mindspore")["beta1_power"][0] == there["beta1_power"][0]


def test_a_parameter_without_torch_state_keeps_nn_adamax_zero_moments():
    """A parameter that never had a gradient has no torch state: nothing is written for it (nn.AdaMax's
    moments start at zero), and the others' step count is the global one."""
    out = convert_state(_torch_state(steps=(4, None)), to="mindspore", names=["w", "b"])
    assert "moment1.b" not in out and "moment1.w" in out and out["global_step"].tolist() == [4]


def test_reads_whatever_numpy_asarray_reads_and_mindspore_style_asnumpy():
    class Tensorish:  # what a MindSpore Tensor offers
        def __init__(self, a):
            self.a = a

        def asnumpy(self):
            return self.a

    state = _torch_state()
    state["state"][0] = {k: (Tensorish(np.asarray(v)) if k != "step" else np.float32(v))
                         for k, v in state["state"][0].items()}
    out = convert_state(state, to="mindspore", names=["w", "b"])
    assert out["moment2.w"].shape == (3, 2)


@pytest.mark.parametrize("state, kwargs, words", [
    (_torch_state(steps=(5, 3)), {"names": ["w", "b"]}, ["different numbers of steps", "w: 5", "b: 3",
                                                           "global_vs_per_parameter_step"]),
    (_torch_state(beta1s=(0.9, 0.8)), {"names": ["w", "b"]}, ["differ in betas", "lr, weight_decay"]),
    (_torch_state(eps=(1e-8, 1e-6)), {"names": ["w", "b"]}, ["eps", "grad_centralization and order_params"]),
    (_torch_state(), {"names": ["w"]}, ["position 1", "lists 1 parameters"]),
    (_torch_state(), {}, ["needs `names`"]),
    (_torch_state(), {"names": ["w", "b"], "beta1": 0.8}, ["beta1=0.8 was given", "0.9"]),
    ({"state": {0: {"step": 1.0, "exp_avg": np.zeros(2)}}}, {"names": ["w"]}, ["lacks exp_inf"]),
    ({"weights": 1}, {"names": ["w"]}, ["not an AdaMax state", "weights"]),
    ({"state": {0: {"step": 1.5, "exp_avg": np.zeros(2), "exp_inf": np.zeros(2)}}, "param_groups": []},
     {"names": ["w"], "beta1": 0.9}, ["step'] is 1.5", "whole number"]),
])
def test_refuses_what_mindspore_cannot_hold_naming_it(state, kwargs, words):
    with pytest.raises(ValueError) as raised:
        convert_state(state, to="mindspore", **kwargs)
    assert all(w in str(raised.value) for w in words), str(raised.value)


def test_refuses_a_beta1_power_that_another_beta1_made():
    mindspore_state = convert_state(_torch_state(), to="mindspore", names=["w", "b"])
    assert convert_state(mindspore_state, to="torch", beta1=0.9)["state"][0]["step"] == 5.0
    with pytest.raises(ValueError, match="beta1_power is 0.5904899.*float32\\(0.8\\) multiplied global_step=5"):
        convert_state(mindspore_state, to="torch", beta1=0.8)


def test_refuses_an_unknown_target_layout():
    with pytest.raises(ValueError, match="allowed layouts are torch, mindspore"):
        convert_state(_torch_state(), to="paddle")
