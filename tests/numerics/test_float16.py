"""The float16 roundings the oracles model (conformance/numerics/float16.py): hand-derived values.

In float16 below 2^-14 every value is a whole number of units U = 2^-24, so a decay of a few units loses
a fraction of one when it is stored, and m/u moves by that fraction. Each test steps a formula from the
pre-step values a real framework had (cases/found/found_mindspore_oracle_float16_87ed34591a54.yaml, and
constructed ones), works the result out by hand in units of U, and checks that the oracle with the rounding
gives the framework's stored value while the oracle without it (Features.float16_decay off) does not.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from conformance.numerics import float16
from conformance.numerics.oracles import oracle

pytestmark = pytest.mark.torch_only

U = 2.0 ** -24  # the float16 subnormal unit
FOUND = {"lr": 1e-3, "betas": (0.9, 0.5), "eps": 1e-8, "weight_decay": 1e-4}  # the found case's optimizer


def _step(formula, p, m, u, g, t, hp, name="dense1.bias"):
    """One float16 element stepped by `formula`: its float64 (p, m, u)."""
    res = formula(*(np.array([x], np.float16) for x in (p, m, u, g)), t, hp, name, "float16", t)
    return float(res.p[0]), float(res.m[0]), float(res.u[0])


def test_float16_rounding_matches_numpy():
    rng = np.random.default_rng(3)
    ties = (2 * rng.integers(1024, 2048, 500) + 1) * 2.0 ** rng.integers(-30, 4, 500)  # 12 bits: halfway
    x = np.abs(np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 5, 2000), ties,
                               [0.0, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -14 - 2.0 ** -26, 65504.0, 65519.0,
                                65520.0, 1e6, 1e300, np.inf]]))
    to16 = getattr(float16.to_float16, "py_func", float16.to_float16)
    signed = getattr(float16.signed_float16, "py_func", float16.signed_float16)
    with np.errstate(over="ignore"):  # 65520 and up: inf, as the cast gives
        assert np.array_equal([to16(float(v)) for v in x], x.astype(np.float16).astype(np.float64))
        assert np.array_equal([signed(float(-v)) for v in x], (-x).astype(np.float16).astype(np.float64))
    assert np.isnan(to16(float("nan")))
    assert float16.scalar16(1e-4) == 1678 * U  # 1e-4 / U = 1677.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # wd*loss_scale beyond float16 in a float32 item: no warning per step
        assert float16.scalar16(1e6) == np.inf and float16.scalar16(1e-9) == 0.0


def test_torch_step_67_of_the_found_case_stores_7_35_units_of_decay_as_7():
    """torch, step 67, dense1.bias[2]: p = 287/2^16 (0.00438), m = 35U, u = 12U, g = 0.
    grad.add(param, alpha=1e-4): alpha = fl16(1e-4) = 1678U; 1678U * p = 7.348U, stored as 7U.
    u = max(0.5 * 12U, fl16(7U + 1e-8 = 7.168U)) = 7U;  m = fl16(35U + 0.1*(7U - 35U) = 32.2U) = 32U;
    p = p - clr * 32/7 with clr = 1e-3/(1 - 0.9**67) = -1.961e-4: torch's value (measured).
    Unrounded decay: |7.348U| + 1e-8 = 7.516U -> u = 8U, m = 32.235U -> 32U, p = p - clr*4 = +3.758e-4."""
    p, clr = 287 / 2 ** 16, 1e-3 / (1 - 0.9 ** 67)
    new_p, new_m, new_u = _step(oracle("torch"), p, 35 * U, 12 * U, 0.0, 67, FOUND)
    assert (new_m, new_u) == (32 * U, 7 * U)
    assert new_p == pytest.approx(p - clr * 32 / 7, rel=1e-15)
    assert np.float16(new_p) == np.float16(-0.00019609928131103516)  # what torch stored at step 67

    old_p, old_m, old_u = _step(oracle("torch").replace(float16_decay=False), p, 35 * U, 12 * U, 0.0, 67, FOUND)
    assert (old_m, old_u) == (32 * U, 8 * U)
    assert old_p == pytest.approx(p - clr * 4, rel=1e-15) and np.float16(old_p) == np.float16(3.758e-4)


def test_mindspore_step_92_of_the_found_case_stores_8_48_units_of_decay_as_8():
    """nn.AdaMax, step 92, dense1.bias[2]: p = -0.005054473876953125, m = -12U, u = 10U, g = 0.
    _apply_decay: Mul(p, fl16(1e-4) = 1678U) = -8.48U, stored as -8U; AddN with g = 0: -8U.
    The kernel (float32, outputs stored in float16): u = max(0.5 * 10U, 8U) = 8U; m = b1*(-12U) + (1-b1)*(-8U)
    = -11.6U with b1 = float32(0.9); p -= clr * m/(u + eps): -0.0036334991 as MindSpore stored it.
    Unrounded decay: u = 8.48U, p 39 float16 ULP away from MindSpore's."""
    p, b1 = -0.005054473876953125, float(np.float32(0.9))
    new_p, new_m, new_u = _step(oracle("mindspore"), p, -12 * U, 10 * U, 0.0, 92, FOUND)
    assert new_u == 8 * U and new_m == pytest.approx(b1 * -12 * U + (1 - b1) * -8 * U, rel=1e-15)
    assert np.float16(new_p) == np.float16(-0.0036334991455078125)  # what MindSpore stored at step 92
    old_p, _, old_u = _step(oracle("mindspore").replace(float16_decay=False), p, -12 * U, 10 * U, 0.0, 92, FOUND)
    assert old_u == pytest.approx(1e-4 * -p, rel=1e-15)  # 8.48U, unrounded
    ulps = abs(int(np.float16(old_p).view(np.int16)) - int(np.float16(new_p).view(np.int16)))
    assert ulps == 39


def test_mindspore_unscales_by_a_float16_reciprocal_of_loss_scale_and_rounds():
    """loss_scale = 3: scale_grad multiplies by fl16(1/3) = 1365/4096, and the product is stored in float16.
    g = 5/64, no decay: 5/64 * 1365/4096 = 1706.25 * 2^-16 -> 1706 * 2^-16 (u = |g'| at step 1); dividing
    by 3 would give 1706.67 * 2^-16 -> 1707.
    With decay 1e-4 on p = 287/2^16, g = 0: fl16(wd*loss_scale = 3e-4) = 1258 * 2^-22; times p = 22.04U ->
    22U; times 1365/4096 = 7.33U -> 7U. Unrounded: (0 + 3e-4*p)/3 = 7.35U."""
    hp = {**FOUND, "weight_decay": 0.0, "loss_scale": 3.0}
    assert float16.scalar16(1 / 3) == 1365 / 4096
    *_, u = _step(oracle("mindspore"), 0.5, 0.0, 0.0, 5 / 64, 1, hp)
    assert u == 1706 * 2.0 ** -16
    *_, u = _step(oracle("mindspore").replace(float16_decay=False), 0.5, 0.0, 0.0, 5 / 64, 1, hp)
    assert u == 5 / 64 / 3

    hp = {**FOUND, "loss_scale": 3.0}
    assert float16.scalar16(3e-4) == 1258 * 2.0 ** -22
    *_, u = _step(oracle("mindspore"), 287 / 2 ** 16, 0.0, 0.0, 0.0, 1, hp)
    assert u == 7 * U
    *_, u = _step(oracle("mindspore").replace(float16_decay=False), 287 / 2 ** 16, 0.0, 0.0, 0.0, 1, hp)
    assert u == pytest.approx(1e-4 * 287 / 2 ** 16, rel=1e-15)


def test_torch_lerp_weight_is_float32_and_decides_a_float16_tie():
    """m = 0, g = 175U, b1 = 0.9: m' = 0.1 * 175U = 17.5U, a tie between 17U and 18U. torch's lerp weight
    float32(0.1) = 0.10000000149 gives 17.5000003U -> 18U; the float64 weight 1 - 0.9 = 0.09999999999999998
    gives 17.4999999U -> 17U."""
    assert (1 - 0.9) * 175 < 17.5 < float(np.float32(1 - 0.9)) * 175
    hp = {**FOUND, "weight_decay": 0.0}
    _, m, _ = _step(oracle("torch"), 1.0, 0.0, 0.0, 175 * U, 1, hp)
    assert m == 18 * U
    _, m, _ = _step(oracle("torch_compile"), 1.0, 0.0, 0.0, 175 * U, 1, hp)  # float32 in Inductor, not stored
    assert m == pytest.approx(17.5 * U, rel=1e-15)


def test_keras_decoupled_decay_is_a_float32_factor_and_a_float16_product():
    """p = 1, g = 0, eps = 1 (so u + eps = 1 and m = 0: no step), lr = 0.01, wd = 0.1:
    p *= float32(1 - float32(0.1)*float32(0.01)) = 0.99900001287, stored in float16: 2046/2048 = 0.9990234375
    (the float16 spacing below 1 is 2^-11). Unrounded: 0.99900001287."""
    hp = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1.0, "weight_decay": 0.1}
    factor = float(np.float32(1 - np.float32(0.1) * np.float32(0.01)))
    p, _, _ = _step(oracle("keras"), 1.0, 0.0, 0.0, 0.0, 1, hp)
    assert p == 2046 / 2048
    p, _, _ = _step(oracle("keras").replace(float16_decay=False), 1.0, 0.0, 0.0, 0.0, 1, hp)
    assert p == factor != 0.999


def test_only_torch_compile_computes_its_float16_decay_in_float32():
    """Measured: torch eager, nn.AdaMax (and mindspore.experimental) round each decay op in float16;
    Inductor fuses the decay into its float32 arithmetic. So the feature never separates torch from
    MindSpore: attribution has no switch for it between them."""
    from conformance.numerics.formulas import FEATURES

    assert [name for name, f in FEATURES.items() if not f.float16_decay] == ["torch_compile"]
    assert "float16_decay" not in FEATURES["mindspore"].differences(FEATURES["torch"])
