"""Attribution of a divergence to known causes by counterfactual oracles (conformance/attribution.py).

Unit level: for each formula switch, a two-step example where exactly that switch closes the gap between
MindSpore's formula stepped from torch's state and torch's values (the oracles stand in for the
frameworks, so each example isolates one mechanism). Case level: a case that declares the wrong cause
fails naming the attributed one, with real frameworks.
"""
from __future__ import annotations

import numpy as np
import pytest

from conformance.cases import causes
from conformance.cases.case import Item
from conformance.engine.runner import run_item
from conformance.numerics import attribution
from conformance.numerics.oracles import oracle
from tests.conftest import REPO, load_case, needs_frameworks

torch_adamax, mindspore_adamax = oracle("torch"), oracle("mindspore")

HP = {"lr": 0.25, "betas": (0.5, 0.75), "eps": 2.0 ** -10, "weight_decay": 0.0}


def _sides(grads, hp_torch=HP, hp_ms=None, name="dense0.weight", dtype="float64", p=1.0, counts=(2, 2),
           ms_grads=None):
    """Two steps of torch's formula from p; returns (torch side, mindspore side) at the second step."""
    hp_ms = hp_ms or hp_torch
    values = {k: [np.array([v], dtype=dtype)] for k, v in (("params", p), ("m", 0.0), ("u", 0.0))}
    pre = values
    for t, g in enumerate(grads, start=1):
        pre = values
        with np.errstate(all="ignore"):
            res = torch_adamax(pre["params"][0], pre["m"][0], pre["u"][0], np.array([g], dtype=dtype),
                               counts[0] if t == len(grads) else t, hp_torch, name, dtype)
        values = {"params": [res.p.astype(dtype)], "m": [res.m.astype(dtype)], "u": [res.u.astype(dtype)]}
    last = [np.array([grads[-1]], dtype=dtype)]
    a = attribution.Side(torch_adamax, hp_torch, pre, values, last, [counts[0]], [name])
    b = attribution.Side(mindspore_adamax, hp_ms, pre, values, ms_grads or last, [counts[1]], [name])
    return a, b


class _Case:
    """The few Item fields attribution reads."""

    def __init__(self, dtype="float64", defaults="neutral", schedule=None):
        from conformance.cases.case import OptimizerSpec
        from conformance.cases.loader import DEFAULT_ORACLE_TOLERANCE, _tolerance
        self.dtype = dtype
        self.case = type("C", (), {"oracle_tolerance": _tolerance(None, DEFAULT_ORACLE_TOLERANCE),
                                   "optimizer": OptimizerSpec(defaults=defaults, schedule=schedule)})()


def _attribute(a, b, item=None, step=2):
    return attribution.attribute_step(a, b, step, item or _Case())


def test_eps_placement_alone_closes_the_gap():
    a, b = _sides([2.0 ** -10, 0.0])
    result = _attribute(a, b)
    assert result["residual_before"]["outside"] > 0
    assert result["switches"] == ["eps"] and result["causes"] == ["eps_placement"]
    assert result["residual_after"]["outside"] == 0 and result["explained"]


def test_decay_name_filter_alone_closes_the_gap():
    hp = {**HP, "weight_decay": 0.5, "eps": 0.0}
    a, b = _sides([0.25, 0.25], hp, name="ln.gamma")
    assert _attribute(a, b)["causes"] == ["decay_name_filter"]


def test_loss_scale_alone_closes_the_gap():
    a, b = _sides([0.25, 0.5], {**HP, "eps": 0.0}, {**HP, "eps": 0.0, "loss_scale": 8.0})
    assert _attribute(a, b)["causes"] == ["loss_scale_division"]


def test_float32_scalars_alone_close_the_gap():
    hp = {"lr": 0.001, "betas": (0.999, 0.75), "eps": 0.0, "weight_decay": 0.0}
    a, b = _sides([1.0, 0.5], hp, dtype="float32")
    result = _attribute(a, b, _Case("float32"))
    assert result["causes"] == ["float32_scalars"], result


def test_float64_computed_in_float32_alone_closes_the_gap():
    a, b = _sides([0.25, 0.5], {**HP, "eps": 0.0}, p=1.0 + 2.0 ** -40)
    assert _attribute(a, b)["causes"] == ["float64_in_float32"]


def test_step_count_alone_closes_the_gap():
    """torch's parameter took 1 step (it thawed), MindSpore's optimizer 5: its bias correction uses 5."""
    a, b = _sides([0.25, 0.5], {**HP, "eps": 0.0}, counts=(1, 1))
    result = attribution.attribute_step(a, b, 5, _Case())
    assert result["causes"] == ["global_vs_per_parameter_step"]


def test_nan_in_the_max_alone_closes_the_gap():
    a, b = _sides([0.25, np.nan], {**HP, "eps": 0.0})
    assert _attribute(a, b)["causes"] == ["nan_dropped_by_max"]


def test_lerp_alone_closes_the_gap_with_an_infinite_m():
    a, b = _sides([np.inf, 0.5], {**HP, "eps": 0.0})
    assert _attribute(a, b)["causes"] == ["lerp_vs_mul_add"]


def test_float16_rounding_with_eps_placement_close_the_gap():
    """float16, zero gradient: torch's |0| + 1e-8 is 0 in float16 and 0/0 is NaN; MindSpore's formula needs
    both torch's eps placement and its float16 rounding to reproduce that."""
    hp = {**HP, "eps": 1e-8}
    a, b = _sides([0.0], hp, dtype="float16", counts=(1, 1))
    result = _attribute(a, b, _Case("float16"), step=1)
    assert sorted(result["causes"]) == ["eps_placement", "float16_rounding"]


def test_a_learning_rate_difference_is_default_lr_only_with_native_defaults():
    a, b = _sides([0.25, 0.5], {**HP, "eps": 0.0}, {**HP, "eps": 0.0, "lr": 0.125})
    assert _attribute(a, b, _Case(defaults="native"))["causes"] == ["default_lr"]
    schedule = {"kind": "cosine", "max_lr": 0.25, "min_lr": 0.0, "period": 2}
    assert _attribute(a, b, _Case(schedule=schedule))["causes"] == ["schedule_past_period"]
    plain = _attribute(a, b, _Case())
    assert plain["switches"] == ["hparam.lr"] and not plain["explained"]  # a switch no cause accounts for


def test_float32_rounded_hyper_parameters_are_not_a_hyper_parameter_difference():
    hp = {"lr": 0.002, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    ms = {**hp, "lr": float(np.float32(0.002))}
    a, b = _sides([0.25, 0.5], hp, ms)
    assert "hparam.lr" not in attribution.candidates(a, b)


def test_the_registry_is_valid_and_every_switch_is_a_feature():
    known = causes.load()
    assert {"default_lr", "eps_placement", "decay_name_filter", "loss_scale_division"} <= set(known)
    with pytest.raises(causes.RegistryError, match="is used twice"):
        causes.parse("causes:\n" + 2 * "  - {id: a, title: t, kind: validation, mechanism: m, matters_when: w, "
                     "fix: null, fix_case: null, impact: {tier: 1, why: w}}\n", "x.yaml")
    with pytest.raises(causes.RegistryError, match="at causes/0"):
        causes.parse("causes:\n  - {id: a, title: t, kind: formula, switch: nope, mechanism: m, matters_when: w, "
                     "fix: null, fix_case: null, impact: {tier: 1, why: w}}\n", "x.yaml")


def test_every_fix_case_of_the_registry_exists_and_expects_to_conform():
    from conformance.cases import loader

    for cause in causes.load().values():
        if cause.fix_case is None:
            continue
        file, rest = cause.fix_case.split("::")
        case_id = rest.split("[")[0]
        (case,) = [c for c in loader.load_file(REPO / file, file) if getattr(c, "id", None) == case_id]
        assert case.expect == "conform", cause.id


@needs_frameworks
def test_a_case_declaring_the_wrong_cause_fails_naming_the_attributed_one(tmp_path):
    case = load_case(tmp_path, """
  - id: layernorm_decay_declared_as_eps
    model: {kind: layernorm_mlp, sizes: [3, 4, 2], init_seed: 5}
    gradients: {mode: replay, seed: 7}
    optimizer: {lr: 0.002, betas: [0.9, 0.999], eps: 1.0e-8, weight_decay: 0.1}
    steps: 5
    tolerance: {params: {atol: 2.5e-7}, state: {atol: 1.0e-6}}
    expect: diverge
    cause: eps_placement
    reason: a deliberately wrong declaration
""")
    entry = run_item(Item(case, "cpu", "float32"), tmp_path / "steps")
    assert entry["outcome"] == "failed"
    assert entry["attribution"]["causes"] == ["decay_name_filter"]
    assert "declares cause eps_placement, while the divergence is attributed to decay_name_filter" in entry["message"]
    assert "elements outside the oracle bound" in entry["message"]
