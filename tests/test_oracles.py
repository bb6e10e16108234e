"""The float64 oracles: the compiled loop and the NumPy loop run the same element formula bit for bit,
and the NaN rules each framework's kernel has (torch's max propagates NaN, MindSpore's std::max drops
a NaN gradient) hold."""
from __future__ import annotations

import numpy as np
import pytest

from conformance import compiled, oracles

FORMULAS = {"torch": oracles._torch_element, "mindspore": oracles._mindspore_element}


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Bitwise equal, any NaN equal to any NaN (payloads are not part of the contract)."""
    return bool(((x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))).all())


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed: only the NumPy loop exists here")
@pytest.mark.parametrize("kind", sorted(FORMULAS))
def test_compiled_loop_equals_numpy_loop(kind):
    rng = np.random.default_rng(11)
    n = 400
    p, m, g = (rng.standard_normal(n) * 10.0 ** rng.integers(-9, 2, n) for _ in range(3))
    u = np.abs(rng.standard_normal(n))
    for arr in (p, m, u, g):  # non-finite and signed-zero operands are data the oracles must handle
        arr[rng.integers(0, n, 8)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], 8)
    fast, slow = oracles._loop(FORMULAS[kind], True), oracles._loop(FORMULAS[kind], False)
    for args in [(0.004, 0.9, 0.999, 1e-8, 0.0, kind == "torch" or 1.0),
                 (0.02, 0.5, 0.9999, 0.0, 0.01, False if kind == "torch" else 1024.0)]:
        a, b = np.empty((6, n)), np.empty((6, n))
        with np.errstate(all="ignore"):
            fast(p, m, u, g, a, *args)
            slow(p, m, u, g, b, *args)
        assert _same(a, b)


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
