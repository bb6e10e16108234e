"""The float64 oracles.

Hand-derived values: each feature of each formula (where eps enters, bias correction, the decay name
filter, loss_scale with weight decay, zero gradients, a NaN inside the max, float32 scalars, float64
computed in float32, float16 rounding of |g| + eps, per-parameter vs global step counts, lerp vs
multiply-add) is checked against numbers worked out by hand over two or three steps, with operands
chosen exactly representable (betas 0.5 and 0.75, eps and gradients powers of two) so the expected values
are exact. A formula that gets one feature wrong fails here, not only in a case file.

Machinery: the compiled loop and the NumPy loop run the same element formula bit for bit; the fused
check reports what stepping then diffing reports.
"""
from __future__ import annotations

import numpy as np
import pytest

from conformance.cases.case import Bound
from conformance.numerics import compiled, formulas, oracles
from conformance.numerics.diff import BLOCK, diff
from conformance.numerics.formulas import Features
from conformance.numerics.oracles import oracle

pytestmark = pytest.mark.torch_only

torch_adamax, mindspore_adamax = oracle("torch"), oracle("mindspore")

FORMULAS = {"torch": torch_adamax, "mindspore": mindspore_adamax}
EPS = 2.0 ** -10
HP = {"lr": 0.25, "betas": (0.5, 0.75), "eps": EPS, "weight_decay": 0.0}  # exact in float32 too


def _run(formula, steps, hp=HP, p=1.0, name="dense0.weight", dtype="float64", m=0.0, u=0.0):
    """Step a one-element parameter through `steps` gradients; returns the list of (p, m, u) after each."""
    values = [np.array([x], dtype=dtype) for x in (p, m, u)]
    out = []
    for t, g in enumerate(steps, start=1):
        with np.errstate(all="ignore"):
            res = formula(*values, np.array([g], dtype=dtype), t, hp, name, dtype)
        values = [np.array([x[0]], dtype=dtype) for x in (res.p, res.m, res.u)]
        out.append((res.p[0], res.m[0], res.u[0]))
    return out


# ---- hand-derived values -------------------------------------------------------------------------------

def test_torch_puts_eps_inside_the_max_and_corrects_the_bias():
    """g = eps then 0; b1 = 0.5, b2 = 0.75, lr = 0.25.
    step 1: m = 0 + 0.5*(eps - 0) = eps/2; u = max(0, eps + eps) = 2eps; clr = 0.25/(1 - 0.5) = 0.5;
            p = 1 - 0.5 * (eps/2)/(2eps) = 0.875
    step 2: m = eps/2 + 0.5*(0 - eps/2) = eps/4; u = max(0.75*2eps, 0 + eps) = 1.5eps;
            clr = 0.25/(1 - 0.25) = 1/3; p = 0.875 - (1/3) * (eps/4)/(1.5eps) = 0.875 - 1/18"""
    (p1, m1, u1), (p2, m2, u2) = _run(torch_adamax, [EPS, 0.0])
    assert (p1, m1, u1) == (0.875, EPS / 2, 2 * EPS)
    assert (m2, u2) == (EPS / 4, 1.5 * EPS)
    assert p2 == pytest.approx(0.875 - 1 / 18, rel=1e-15)


def test_mindspore_adds_eps_after_the_max():
    """The same inputs. step 1: m = 0.5*0 + 0.5*eps = eps/2; u = max(0, eps) = eps;
            p = 1 - 0.5 * (eps/2)/(eps + eps) = 0.875 (the same p as torch: u + eps = |g| + eps at step 1)
    step 2: m = eps/4; u = max(0.75*eps, 0) = 0.75eps; p = 0.875 - (1/3) * (eps/4)/(0.75eps + eps)
            = 0.875 - 1/21 (torch: 0.875 - 1/18)"""
    (p1, m1, u1), (p2, m2, u2) = _run(mindspore_adamax, [EPS, 0.0])
    assert (p1, m1, u1) == (0.875, EPS / 2, EPS)
    assert (m2, u2) == (EPS / 4, 0.75 * EPS)
    assert p2 == pytest.approx(0.875 - 1 / 21, rel=1e-15)


def test_paddle_style_eps_is_added_to_the_decayed_u():
    """eps='decayed_u': u = max(b2*u + eps, |g|), no eps in the denominator.
    step 1 (g = eps): u = max(0 + eps, eps) = eps; p = 1 - 0.5 * (eps/2)/eps = 0.75
    step 2 (g = 0): u = max(0.75eps + eps, 0) = 1.75eps; p = 0.75 - (1/3)*(eps/4)/(1.75eps) = 0.75 - 1/21"""
    formula = oracles.Formula("paddle-like", Features(eps="decayed_u", moment="mul_add"))
    (p1, m1, u1), (p2, m2, u2) = _run(formula, [EPS, 0.0])
    assert (p1, u1, u2) == (0.75, EPS, 1.75 * EPS)
    assert p2 == pytest.approx(0.75 - 1 / 21, rel=1e-15)


@pytest.mark.parametrize("kind", ["torch", "mindspore"])
def test_a_zero_gradient_leaves_p_and_gives_torch_an_eps_floor(kind):
    """g = 0 at step 1: m = 0, so p does not move; torch's u = |0| + eps = eps, MindSpore's u = 0."""
    ((p1, m1, u1),) = _run(FORMULAS[kind], [0.0])
    assert (p1, m1, u1) == (1.0, 0.0, EPS if kind == "torch" else 0.0)


def test_mindspore_decay_skips_beta_and_gamma_names_unless_grouped():
    """wd = 0.5, p = 1, g = 0.25: decayed g = 0.25 + 0.5*1 = 0.75, m = 0.5*0.75 = 0.375; skipped: m = 0.125."""
    hp = {**HP, "weight_decay": 0.5}
    for name, decayed in (("dense0.weight", True), ("ln.gamma", False), ("ln.beta", False),
                          ("gamma_proj.weight", False)):
        ((_, m, _),) = _run(mindspore_adamax, [0.25], hp, name=name)
        assert m == (0.375 if decayed else 0.125), name
        ((_, m, _),) = _run(torch_adamax, [0.25], hp, name=name)
        assert m == 0.375, name  # torch decays every parameter
    ((_, m, _),) = _run(mindspore_adamax, [0.25], {**hp, "param_groups": True}, name="ln.gamma")
    assert m == 0.375  # a group that sets weight_decay decays every parameter in it


def test_mindspore_divides_the_decayed_gradient_by_loss_scale():
    """loss_scale = 4, g = 1 (already scaled), wd = 0.5, p = 1: nn.Optimizer stores wd*loss_scale = 2, so
    g = (1 + 2*1)/4 = 0.75 and m = 0.375 (decay without loss_scale: (1 + 0.5)/4 = 0.375, m = 0.1875).
    torch has no loss_scale: g = 1 + 0.5 = 1.5, m = 0.75."""
    hp = {**HP, "weight_decay": 0.5, "loss_scale": 4.0}
    ((_, m, u),) = _run(mindspore_adamax, [1.0], hp)
    assert (m, u) == (0.375, 0.75)
    ((_, m, _),) = _run(mindspore_adamax, [1.0], {**hp, "weight_decay": 0.0})
    assert m == 0.125  # 1/4, halved
    ((_, m, _),) = _run(torch_adamax, [1.0], hp)
    assert m == 0.75


def test_nan_inside_the_max():
    """A NaN gradient: torch's max propagates it into u; MindSpore's kernel std::max(b2*u, NaN) keeps b2*u."""
    hp = {**HP, "betas": (0.9, 0.999), "eps": 1e-8}
    ((_, _, u_torch),) = _run(torch_adamax, [np.nan], hp, u=1.0)
    ((_, _, u_ms),) = _run(mindspore_adamax, [np.nan], hp, u=1.0)
    assert np.isnan(u_torch)
    assert u_ms == float(np.float32(0.999))  # MindSpore's beta2 is float32(0.999)


def test_mindspore_holds_its_scalars_in_float32():
    """beta1 = 0.9, g = 1, from zero state: m = (1 - float32(0.9)) * 1 = 0.10000002384185791 in MindSpore,
    (1 - 0.9) = 0.09999999999999998 in torch; u = max(0, 1) and the step uses float32 eps and lr too."""
    hp = {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    ((p_ms, m_ms, _),) = _run(mindspore_adamax, [1.0], hp, p=0.0)
    ((p_t, m_t, _),) = _run(torch_adamax, [1.0], hp, p=0.0)
    b1, lr, eps = (float(np.float32(x)) for x in (0.9, 0.001, 1e-8))
    assert m_ms == 1.0 - b1 == 0.10000002384185791
    assert m_t == 1.0 - 0.9 == 0.09999999999999998
    assert p_ms == -(lr / (1.0 - b1)) * (m_ms / (1.0 + eps))
    assert p_t == -(0.001 / (1.0 - 0.9)) * (m_t / (1.0 + 1e-8))


def test_mindspore_beta1_power_is_a_float32_running_product():
    """beta1_power after t steps: float32(float32(...(1*b1)...)*b1), t products each rounded to float32;
    the oracle's bias correction at step 3 uses it (torch: 0.9**3 in float64)."""
    b1 = np.float32(0.9)
    running = np.float32(1.0)
    for _ in range(3):
        running = np.float32(running * b1)
    assert oracles.float32_power(float(b1), 3) == float(running)
    assert float(running) != float(b1) ** 3 != 0.9 ** 3
    hp = {"lr": 0.5, "betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0}
    # a zero state and |g| = u: m/u = (1 - b1) exactly as the formula takes it at step 3 from zero state
    s = mindspore_adamax.scalars(hp, "w", 3, 3, "float32")
    assert s[0] == 0.5 / (1.0 - float(running))
    assert torch_adamax.scalars(hp, "w", 3, 3, "float32")[0] == 0.5 / (1.0 - 0.9 ** 3)


def test_global_step_for_mindspore_per_parameter_step_for_torch():
    """A parameter that took 2 steps in an optimizer that took 5: MindSpore's bias correction uses 5
    (its beta1_power advances once per optimizer step), torch's uses the parameter's own 2."""
    assert mindspore_adamax.scalars(HP, "w", 2, 5, "float32")[0] == 0.25 / (1.0 - 0.5 ** 5)
    assert torch_adamax.scalars(HP, "w", 2, 5, "float32")[0] == 0.25 / (1.0 - 0.5 ** 2)


def test_mindspore_computes_float64_parameters_in_float32():
    """p = 1 + 2^-40 (not a float32 value) with g = 0: MindSpore's float64 parameter comes back as the
    float32 value 1.0; torch keeps 1 + 2^-40."""
    ((p_ms, _, _),) = _run(mindspore_adamax, [0.0], p=1.0 + 2.0 ** -40)
    ((p_t, _, _),) = _run(torch_adamax, [0.0], p=1.0 + 2.0 ** -40)
    assert p_ms == 1.0 and p_t == 1.0 + 2.0 ** -40
    assert mindspore_adamax.compute_dtype("float64") == "float32" and torch_adamax.compute_dtype("float64") == "float64"


def test_torch_float16_rounds_eps_away_and_a_zero_gradient_gives_nan():
    """In float16, |0| + 1e-8 rounds to 0: u = 0 and the step is 0/0 = NaN (in float32, u = 1e-8)."""
    hp = {**HP, "eps": 1e-8}
    ((p16, m16, u16),) = _run(torch_adamax, [0.0], hp, dtype="float16")
    assert u16 == 0.0 and m16 == 0.0 and np.isnan(p16)
    ((p32, _, u32),) = _run(torch_adamax, [0.0], hp, dtype="float32")
    assert u32 == 1e-8 and p32 == 1.0
    # a gradient whose float16 sum with eps rounds: 1 + 2^-11 is a tie between 1 and 1 + 2^-10: to even, 1
    ((_, _, u),) = _run(torch_adamax, [1.0], {**hp, "eps": 2.0 ** -11}, dtype="float16")
    assert u == 1.0


def test_maximize_negates_the_gradient():
    ((p, m, _),) = _run(torch_adamax, [EPS], {**HP, "maximize": True})
    assert (p, m) == (1.125, -EPS / 2)


def test_lerp_and_multiply_add_round_differently_and_each_formula_uses_its_own():
    """m + (1-b1)*(g-m) (torch's lerp) and b1*m + (1-b1)*g (MindSpore) are equal in exact arithmetic and
    differ in rounding: on these operands in at least one element, and each oracle matches its own."""
    rng = np.random.default_rng(7)
    m, g = rng.standard_normal(500), rng.standard_normal(500)
    hp = {**HP, "betas": (0.9, 0.999), "eps": 1e-8}
    lerp = m + (1.0 - 0.9) * (g - m)
    b1 = float(np.float32(0.9))
    zeros = np.zeros(500)
    assert np.array_equal(torch_adamax(zeros, m, zeros, g, 1, hp, "w", "float64").m, lerp)
    assert np.array_equal(mindspore_adamax(zeros, m.astype(np.float32), zeros, g.astype(np.float32), 1, hp, "w",
                                           "float32").m,
                          b1 * m.astype(np.float32).astype(np.float64)
                          + (1.0 - b1) * g.astype(np.float32).astype(np.float64))
    swapped = torch_adamax.replace(moment="mul_add")(zeros, m, zeros, g, 1, hp, "w", "float64").m
    assert not np.array_equal(swapped, lerp)
    assert np.array_equal(swapped, 0.9 * m + (1.0 - 0.9) * g)


def test_replace_changes_one_feature_and_names_it():
    swapped = mindspore_adamax.replace(eps="max")
    assert swapped.features.differences(mindspore_adamax.features) == ["eps"]
    assert "eps=max" in swapped.name
    assert formulas.FEATURES["mindspore"].differences(formulas.FEATURES["torch"]) == [
        "eps", "moment", "nan_in_max", "scalars", "float64_compute", "decay_filter", "loss_scale",
        "float16_ops", "step_count"]


# ---- machinery -----------------------------------------------------------------------------------------

def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """Bitwise equal, any NaN equal to any NaN (payloads are not part of the contract)."""
    return bool(((x.view(np.int64) == y.view(np.int64)) | (np.isnan(x) & np.isnan(y))).all())


def _operands(rng: np.random.Generator, n: int, dtype=np.float64) -> tuple[np.ndarray, ...]:
    p, m, g = (rng.standard_normal(n) * 10.0 ** rng.integers(-9, 2, n) for _ in range(3))
    u = np.abs(rng.standard_normal(n))
    return tuple(x.astype(dtype) for x in (p, m, u, g))


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed: only the NumPy loop exists here")
@pytest.mark.parametrize("kind", sorted(FORMULAS))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_compiled_loop_equals_numpy_loop(kind, dtype):
    rng = np.random.default_rng(11)
    n = 400
    p, m, u, g = _operands(rng, n)
    for arr in (p, m, u, g):  # non-finite and signed-zero operands are data the oracles must handle
        arr[rng.integers(0, n, 8)] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0], 8)
    for hp in [{"lr": 0.004, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
               {"lr": 0.02, "betas": (0.5, 0.9999), "eps": 0.0, "weight_decay": 0.01, "loss_scale": 1024.0,
                "maximize": True},
               {"lr": 0.002, "betas": (0.3, 0.9), "eps": 1e-8, "weight_decay": 1e-4, "loss_scale": 3.0}]:
        s = FORMULAS[kind].scalars(hp, "w", 3, 3, dtype)
        a, b = np.empty((6, n)), np.empty((6, n))
        with np.errstate(all="ignore"):
            oracles._apply_loop(p, m, u, g, a, s)
            oracles._numpy_loop(p, m, u, g, b, s)
        assert _same(a, b)


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba is not installed: check() is the compiled pass")
@pytest.mark.parametrize("kind", sorted(FORMULAS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_check_equals_stepping_then_diff(kind, dtype):
    """check() never writes the oracle's arrays; it must report what diff() of them reports."""
    formula = FORMULAS[kind]
    rng = np.random.default_rng(5)
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01, "lr": 0.002, "maximize": True, "loss_scale": 8.0}
    eps = float(np.finfo(formula.compute_dtype(dtype)).eps)
    bounds = {"params": (8 * eps, 0.0, -1.0), "state": (4 * eps, 1e-6, 3.0)}
    for trial in range(10):
        size = int(rng.integers(1, 300)) + (2 * BLOCK if trial % 3 == 2 else 0)  # some across blocks
        pre = _operands(rng, size, dtype)[:3]
        g = _operands(rng, pre[0].size, dtype)[3]
        exact = formula(*pre, g, 7, hp, "dense0.weight", dtype, 9)
        noise = 1.0 + rng.standard_normal(pre[0].size) * 10.0 ** -int(rng.integers(5, 9))
        post = tuple((x * noise).astype(dtype) for x in (exact.p, exact.m, exact.u))
        fused = formula.check(pre, g, 7, hp, "dense0.weight", post, dtype, bounds, 9)
        for key, value, scale, quantity, out in zip(("params", "m", "u"), (exact.p, exact.m, exact.u),
                                                    (exact.scale_p, exact.scale_m, exact.scale_u),
                                                    ("params", "state", "state"), post):
            katol, rtol, ulp = bounds[quantity]
            bound = Bound(atol=katol / eps, rtol=rtol, ulp=None if ulp < 0 else ulp)
            assert fused[key] == diff(out, value, dtype, bound, katol * scale), (trial, key)


def test_check_steps_aside_for_nonfinite_values():
    nan = np.array([np.nan], np.float32)
    one = np.ones(1, np.float32)
    bounds = {"params": (1e-6, 0.0, -1.0), "state": (1e-6, 0.0, -1.0)}
    hp = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "lr": 0.002}
    assert torch_adamax.check((one, one, one), nan, 1, hp, "w", (one, one, one), "float32", bounds) is None


def test_zero_denominators_give_ieee_results_not_exceptions():
    """eps = 0 with a zero gradient and zero state: 0/0 in the step, as NumPy computes it (NaN)."""
    hp = {"betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0, "lr": 0.002}
    zero = np.zeros(2)
    for formula in FORMULAS.values():
        with np.errstate(all="ignore"):
            step = formula(zero, zero, zero, zero, 1, hp, "w")
        assert np.isnan(step.p).all() and (step.u == 0).all()


def test_float32_operands_are_widened_before_arithmetic():
    """g - m of two float32 values rounds in float32; the oracle must see the float64 difference."""
    p, m, u = (np.zeros(1, np.float32) for _ in range(3))
    g = np.array([1.0 + 2.0 ** -23], np.float32)
    hp = {"betas": (0.9, 0.999), "eps": 0.0, "weight_decay": 0.0, "lr": 1.0}
    m32 = torch_adamax(p, np.array([1.0], np.float32), u, g, 1, hp, "w").m
    assert m32[0] == 1.0 + 0.1 * 2.0 ** -23  # exact in float64, not representable in float32
