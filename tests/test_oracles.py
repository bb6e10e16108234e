"""The float64 oracles: the compiled loop and the NumPy loop run the same element formula bit for bit,
and the NaN rules each framework's kernel has (torch's max propagates NaN, MindSpore's std::max drops
a NaN gradient) hold."""
from __future__ import annotations

import numpy as np
import pytest

from conformance import compiled, oracles
from conformance.case import Bound
from conformance.compare import diff

KINDS = {"torch": 0, "mindspore": 1}


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Bitwise equal, any NaN equal to any NaN (payloads are not part of the contract)."""
    return bool(((x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))).all())


def _operands(rng: np.random.Generator, n: int, dtype=np.float64) -> tuple[np.ndarray, ...]:
    p, m, g = (rng.standard_normal(n) * 10.0 ** rng.integers(-9, 2, n) for _ in range(3))
    u = np.abs(rng.standard_normal(n))
    return tuple(x.astype(dtype) for x in (p, m, u, g))


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed: only the NumPy loop exists here")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_compiled_loop_equals_numpy_loop(kind):
    rng = np.random.default_rng(11)
    n = 400
    p, m, u, g = _operands(rng, n)
    for arr in (p, m, u, g):  # non-finite and signed-zero operands are data the oracles must handle
        arr[rng.integers(0, n, 8)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], 8)
    for args in [(0.004, 0.9, 0.999, 1e-8, 0.0, 1.0), (0.02, 0.5, 0.9999, 0.0, 0.01, 0.0 if kind == "torch" else 1024.0)]:
        a, b = np.empty((6, n)), np.empty((6, n))
        with np.errstate(all="ignore"):
            oracles._apply_loop(KINDS[kind], p, m, u, g, a, *args)
            oracles._numpy_loop(KINDS[kind], p, m, u, g, b, *args)
        assert _same(a, b)


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed: check() is the compiled pass")
@pytest.mark.parametrize("formula", [oracles.torch_adamax, oracles.mindspore_adamax], ids=["torch", "mindspore"])
def test_fused_check_equals_stepping_then_diff(formula):
    """check() never writes the oracle's arrays; it must report what diff() of them reports."""
    rng = np.random.default_rng(5)
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "lr": 0.002, "maximize": True, "loss_scale": 8.0}
    bounds = {"params": (8 * 2.0 ** -23, 0.0, -1.0), "state": (4 * 2.0 ** -23, 1e-6, 3.0)}
    for trial in range(10):
        pre = _operands(rng, int(rng.integers(1, 300)), np.float32)[:3]
        g = _operands(rng, pre[0].size, np.float32)[3]
        exact = formula(*pre, g, 7, hp, "dense0.weight")
        noise = 1.0 + rng.standard_normal(pre[0].size) * 10.0 ** -int(rng.integers(5, 9))
        post = tuple((x * noise).astype(np.float32) for x in (exact.p, exact.m, exact.u))
        fused = formula.check(pre, g, 7, hp, "dense0.weight", post, "float32", bounds)
        for key, value, scale, quantity, out in zip(("params", "m", "u"), (exact.p, exact.m, exact.u),
                                                    (exact.scale_p, exact.scale_m, exact.scale_u),
                                                    ("params", "state", "state"), post):
            katol, rtol, ulp = bounds[quantity]
            bound = Bound(atol=katol / 2.0 ** -23, rtol=rtol, ulp=None if ulp < 0 else ulp)
            assert fused[key] == diff(out, value, "float32", bound, katol * scale), (trial, key)


def test_check_steps_aside_for_nonfinite_values():
    nan = np.array([np.nan], np.float32)
    one = np.ones(1, np.float32)
    bounds = {"params": (1e-6, 0.0, -1.0), "state": (1e-6, 0.0, -1.0)}
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "lr": 0.002}
    assert oracles.torch_adamax.check((one, one, one), nan, 1, hp, "w", (one, one, one), "float32", bounds) is None


def test_zero_denominators_give_ieee_results_not_exceptions():
    """eps = 0 with a zero gradient and zero state: 0/0 in the step, as NumPy computes it (NaN)."""
    hp = {"betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0, "lr": 0.002}
    zero = np.zeros(2)
    for formula in (oracles.torch_adamax, oracles.mindspore_adamax):
        with np.errstate(all="ignore"):
            step = formula(zero, zero, zero, zero, 1, hp, "w")
        assert np.isnan(step.p).all() and (step.u == 0).all()


def test_float32_operands_are_widened_before_arithmetic():
    """g - m of two float32 values rounds in float32; the oracle must see the float64 difference."""
    p, m, u = (np.zeros(1, np.float32) for _ in range(3))
    g = np.array([1.0 + 2.0 ** -23], np.float32)
    hp = {"betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0, "lr": 1.0}
    m32 = oracles.torch_adamax(p, np.array([1.0], np.float32), u, g, 1, hp, "w").m
    assert m32[0] == 1.0 + 0.1 * 2.0 ** -23  # exact in float64, not representable in float32


def test_nan_rules_of_each_kernel():
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "lr": 0.002}
    p, m, u = np.zeros(1), np.zeros(1), np.ones(1)
    g = np.array([np.nan])
    assert np.isnan(oracles.torch_adamax(p, m, u, g, 1, hp, "w").u[0])  # max(b2*u, NaN) = NaN
    assert oracles.mindspore_adamax(p, m, u, g, 1, hp, "w").u[0] == 0.999  # std::max drops the NaN |g|
