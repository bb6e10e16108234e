"""Float64 references of each framework's AdaMax update, built from one element formula and its features.

Every AdaMax implementation the suite knows is the same update written with different choices (where eps
enters, how m is formed, the max with a NaN, the scalars' precision, which parameters decay, the step
count): data, `Features`. An oracle is `Formula(name, Features(...))`; a counterfactual oracle (one
feature taken from another formula, to attribute a divergence) is `formula.replace(feature=value)`.

An oracle takes one parameter's pre-step (p, m, u), the gradient received, the step count, the effective
hyper-parameters and the native name, and returns the post-step values. The element formula (`_adamax`)
runs in a loop numba compiles where installed (conformance/numerics/compiled.py), else through NumPy, with
the same float64 arithmetic. Stepped from the framework's own pre-step state, a mismatch is one step's
departure, never accumulated drift.

What is modelled exactly, and what is bounded. The scalars a framework holds in reduced precision are
modelled exactly (MindSpore's float32 beta1, beta2, eps and learning rate, and its beta1_power, a float32
running product), as is an operand a framework rounds into a format where the rounding changes the
result's character (torch's float16 update is a sequence of float16 tensor ops: |g| + eps is rounded,
and in float16 1e-8 becomes 0, so a zero gradient gives u = 0 and a NaN step; m and u are stored in
float16 before the step reads them, so a tiny m underflows to 0 and the parameter does not move, and m's
lerp is float32 arithmetic with a float32 weight, which decides a float16 tie; MindSpore's kernel keeps
them unrounded; both round their weight decay in float16, wd*p and then g + wd*p, where a decay of a few
subnormal units loses a fraction of one: conformance/numerics/float16.py), and a compute dtype below the
parameter's (MindSpore computes float64 parameters in float32: the oracle starts from the float32-rounded
operands). Everything else the
framework computes in its dtype is evaluated exactly in float64 and bounded: a framework's value must lie
within k x eps(compute dtype) x the magnitude of the terms that formed it (`Step`; k is the case's
`oracle_tolerance`, 8 by default, in conformance/cases/loader.py; applied by
`oracle_metrics.oracle_bounds`).

The formulas as read from the sources (torch 2.13 `torch/optim/adamax.py::_single_tensor_adamax` and
`_multi_tensor_adamax`; MindSpore 2.10 `nn/optim/adamax.py`, `nn/optim/optimizer.py` and the ApplyAdaMax
CPU kernel):

torch:      g <- -g if maximize;  g <- g + wd*p;  m <- lerp(m, g, 1-b1);  u <- max(b2*u, |g| + eps)
            p <- p - lr/(1 - b1**t) * m/u, where t is the parameter's own step count and the bias
            correction 1 - b1**t and lr/(...) are Python floats (float64); in float16 wd*p, g + wd*p,
            |g| + eps, m and u are rounded to float16 before the next op uses them
mindspore:  decay only where the parameter name holds neither 'beta' nor 'gamma' (ungrouped default;
            a parameter group that sets weight_decay decays every parameter in it)
            g <- (g + wd*loss_scale*p) / loss_scale (nn.Optimizer pre-multiplies weight_decay by loss_scale;
            in float16 wd*loss_scale*p, the sum and the product with 1/loss_scale are each rounded)
            m <- b1*m + (1-b1)*g;  u <- max(b2*u, |g|)  (the CPU kernel's std::max drops a NaN |g|)
            p <- p - lr/(1 - beta1_power) * m/(u + eps), beta1_power *= b1 per optimizer step, float32
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from conformance.numerics.compiled import AVAILABLE, jit
from conformance.numerics.diff import (
    BLOCK,
    as_float,
    case_bits,
    dtype_args,
    element,
    element_called,
    finite_maxima,
    metrics,
    worst_start,
)
from conformance.numerics.float16 import decayed, scalar16, signed_float16, to_float16, torch_lerp
from conformance.numerics.formulas import EPS_MODES, FEATURES, Features, decays

if AVAILABLE:
    from conformance.numerics.compiled import float64_bits


@dataclass
class Step:
    """One oracle step: the new values, and for each the magnitude of the terms that formed it.

    A floating-point evaluation of a sum is accurate to a few eps times the sum of its terms' absolute
    values, not of its result: m = b1*m + (1-b1)*g can cancel to ~0 while its rounding stays ~eps*|g|,
    and the parameter step inherits that through m/u. The runner bounds a framework's departure from
    its oracle by k * eps(compute dtype) * scale, element-wise.
    """

    p: np.ndarray
    m: np.ndarray
    u: np.ndarray
    scale_p: np.ndarray
    scale_m: np.ndarray
    scale_u: np.ndarray


@jit(inline=True)
def _maximum(x, y, drop_nan):
    """np.maximum (NaN in either operand gives NaN), or with drop_nan std::max(x, y) as the ApplyAdaMax
    CPU kernel calls it, `x < y ? y : x`: a NaN in y is dropped (x kept), a NaN already in x stays."""
    if drop_nan:
        return y if x < y else x
    return x if (x >= y) | (x != x) else y


@jit(inline=True)
def _adamax(p, m, u, g, s, float16):
    """One element of the AdaMax update under the switches in s, in float64; returns (p, m, u) and the
    magnitude of the terms of each (see Step). s = (clr, beta1, beta2, eps, wd, loss_scale, sign,
    eps_mode, lerp, drop_nan, round16, store16, decoupled, round_denominator, decay16, wd16, unscale16):
    with decoupled, wd is the fraction of p the decay removes; with decay16 the decay is float16 ops
    (float16.decayed; a decoupled p*(1 - wd) is rounded too). Options are selected on loop-invariant
    scalars: the compiled loops stay SIMD. `float16` (a constant per caller) False: no float16 tensor (check),
    the float16 switches become constants and their selects go (a 1M oracle check 14 -> 8 ms, measured)."""
    (clr, beta1, beta2, eps, wd, ls, sign, eps_mode, lerp, drop_nan, round16, store16, decoupled, round_denominator,
     decay16, wd16, unscale16) = s
    if not float16:
        round16, store16, round_denominator, decay16 = 0.0, 0.0, 0.0, 0.0
    l2 = 0.0 if decoupled else wd
    g = sign * g
    g_terms = abs(g) / ls + abs(l2 * p) if l2 else abs(g) / ls
    g = decayed(g, p, wd16, unscale16, l2, ls) if decay16 else (g + l2 * ls * p if l2 else g) / ls
    if lerp:  # in float16 (store16) torch's lerp: float32 arithmetic, float32 weight
        m_new = torch_lerp(m, g, beta1) if store16 else m + (1.0 - beta1) * (g - m)
        scale_m = abs(m) + (1.0 - beta1) * (g_terms + abs(m))
    else:
        m_new = beta1 * m + (1.0 - beta1) * g
        scale_m = beta1 * abs(m) + (1.0 - beta1) * g_terms
    if eps_mode == 0.0:
        grad_term = abs(g) + eps
        u_new = np.float64(_maximum(beta2 * u, to_float16(grad_term) if round16 else grad_term, drop_nan))
        denominator, scale_u = u_new, abs(beta2 * u) + g_terms + eps
    elif eps_mode == 1.0:
        u_new = np.float64(_maximum(beta2 * u, abs(g), drop_nan))
        denominator, scale_u = u_new + eps, abs(beta2 * u) + g_terms
    else:
        u_new = np.float64(_maximum(beta2 * u + eps, abs(g), drop_nan))
        denominator, scale_u = u_new, abs(beta2 * u) + eps + g_terms
    if store16:  # a float16 parameter's m and u are stored in float16 before the step reads them
        m_new = np.float64(signed_float16(m_new))
        u_new = np.float64(to_float16(u_new))
        denominator = u_new + eps if eps_mode == 1.0 else u_new
        if round_denominator:  # u + eps as a float16 tensor op (Keras): eps = 1e-8 rounds to 0 there
            denominator = np.float64(to_float16(denominator))
    step = clr * (m_new / denominator)
    base = p - wd * p if decoupled else p
    base = signed_float16(base) if decoupled and decay16 else base
    return (base - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(denominator), scale_m, scale_u)


@jit
def _adamax_called(p, m, u, g, s):  # pragma: no cover - compiled
    """_adamax compiled on its own (once per process: float64 scalars whatever the dtype) for what needs no
    SIMD: inlined into _check_at it was re-typed per dtype, 3-5 s of compile each (check's: no float16)."""
    return _adamax(p, m, u, g, s, False)


@jit
def _apply_loop(p, m, u, g, out, s):  # pragma: no cover - compiled
    """out[:, i] = the formula at element i; operands widened to float64 one element at a time."""
    for i in range(p.size):
        r = _adamax(np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]), s, True)
        out[0, i], out[1, i], out[2, i], out[3, i], out[4, i], out[5, i] = r


def _numpy_loop(p, m, u, g, out, s) -> None:
    """_apply_loop without numba: the same element function through NumPy's ufunc machinery."""
    formula = getattr(_adamax, "py_func", _adamax)
    ufunc = np.frompyfunc(lambda *xs: formula(*(np.float64(x) for x in xs), s, True), 4, 6)  # x/0: inf/NaN
    with np.errstate(all="ignore"):
        for row, values in zip(out, ufunc(p, m, u, g)):
            row[...] = values


@jit(inline=True)
def _check_element(p, m, u, g, post_p, post_m, post_u, i, s, wide, mask, bound_p, bound_s):  # pragma: no cover
    """Element i of a tensor: the formula stepped from (p, m, u, g), each output compared with the
    framework's post-step value (diff.element), for _check_at. bound_*: (atol x eps, rtol, ulp or
    -1); against an oracle atol counts eps x the element's operand magnitude. (_check_reduce spells the
    same lines out, inlined: through calls and this function's return that loop stayed scalar, 2.1-2.6x
    slower at 1M elements, measured.)"""
    r = _adamax_called(np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]), s)
    cp = element_called(np.float64(post_p[i]), r[0], case_bits(post_p[i], wide), case_bits(r[0], wide), mask,
                        bound_p[0] * r[3], bound_p[1], bound_p[2])
    cm = element_called(np.float64(post_m[i]), r[1], case_bits(post_m[i], wide), case_bits(r[1], wide), mask,
                        bound_s[0] * r[4], bound_s[1], bound_s[2])
    cu = element_called(np.float64(post_u[i]), r[2], case_bits(post_u[i], wide), case_bits(r[2], wide), mask,
                        bound_s[0] * r[5], bound_s[1], bound_s[2])
    return cp, cm, cu


@jit
def _check_reduce(p, m, u, g, post_p, post_m, post_u, s, wide, mask, bound_p, bound_s, tops,
                  worsts):  # pragma: no cover - compiled
    """diff._diff_reduce for params, m and u against the formula, in one SIMD pass: the oracle's six
    arrays are never written (at 1M parameters, writing and re-reading them was most of an oracle
    check). tops, worsts: (3, blocks) per-block maxima. Returns (3, 4): abs, rel, ulp maxima (bit
    patterns) and the count outside the bound, per output."""
    out = np.zeros((3, 4), dtype=np.int64)
    rp, up, bp, rm, um, bm, ru, uu, bu = 0, 0, 0, 0, 0, 0, 0, 0, 0
    for k in range(tops.shape[1]):
        tp, tm, tu, wp, wm, wu = 0, 0, 0, -1, -1, -1
        lo, hi = k * BLOCK, (k + 1) * BLOCK  # slices indexed from 0: see diff._diff_reduce
        kp, km, ku, kg, qp, qm, qu = p[lo:hi], m[lo:hi], u[lo:hi], g[lo:hi], post_p[lo:hi], post_m[lo:hi], \
            post_u[lo:hi]
        for i in range(kp.size):
            r = _adamax(np.float64(kp[i]), np.float64(km[i]), np.float64(ku[i]), np.float64(kg[i]), s, False)
            cp = element(np.float64(qp[i]), r[0], case_bits(qp[i], wide), case_bits(r[0], wide), mask,
                         bound_p[0] * r[3], bound_p[1], bound_p[2])
            cm = element(np.float64(qm[i]), r[1], case_bits(qm[i], wide), case_bits(r[1], wide), mask,
                         bound_s[0] * r[4], bound_s[1], bound_s[2])
            cu = element(np.float64(qu[i]), r[2], case_bits(qu[i], wide), case_bits(r[2], wide), mask,
                         bound_s[0] * r[5], bound_s[1], bound_s[2])
            dp, dm, du = float64_bits(cp[0]), float64_bits(cm[0]), float64_bits(cu[0])
            tp, rp, up, bp = max(tp, dp), max(rp, float64_bits(cp[1])), max(up, float64_bits(cp[2])), bp + cp[3]
            tm, rm, um, bm = max(tm, dm), max(rm, float64_bits(cm[1])), max(um, float64_bits(cm[2])), bm + cm[3]
            tu, ru, uu, bu = max(tu, du), max(ru, float64_bits(cu[1])), max(uu, float64_bits(cu[2])), bu + cu[3]
            wp, wm, wu = max(wp, dp if cp[3] else -1), max(wm, dm if cm[3] else -1), max(wu, du if cu[3] else -1)
        tops[0, k], tops[1, k], tops[2, k], worsts[0, k], worsts[1, k], worsts[2, k] = tp, tm, tu, wp, wm, wu
    out[0, 1], out[0, 2], out[0, 3] = rp, up, bp
    out[1, 1], out[1, 2], out[1, 3] = rm, um, bm
    out[2, 1], out[2, 2], out[2, 3] = ru, uu, bu
    for j in range(3):
        out[j, 0] = tops[j].max()
    return out


@jit
def _check_at(p, m, u, g, post_p, post_m, post_u, s, wide, mask, bound_p, bound_s, which, lo, target,
              outside):  # pragma: no cover - compiled
    """diff._diff_at for output `which` (0 params, 1 m, 2 u)."""
    for i in range(lo, p.size):
        c = _check_element(p, m, u, g, post_p, post_m, post_u, i, s, wide, mask, bound_p, bound_s)
        if float64_bits(c[which][0]) == target and (c[which][3] or not outside):
            return i
    return -1


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT32_POWERS: dict[float, np.ndarray] = {}  # float32 beta1 -> its running products, index t


def float32_power(beta1: float, t: int) -> float:
    """beta1_power after t optimizer steps as MindSpore keeps it: 1 multiplied by float32(beta1) t times,
    each product rounded to float32 (not float32(beta1)**t: the roundings accumulate)."""
    powers = _FLOAT32_POWERS.get(beta1)
    if powers is None or powers.size <= t:
        size = max(t + 1, 2 * (0 if powers is None else powers.size), 1024)
        factors = np.full(size, np.float32(beta1), dtype=np.float32)
        factors[0] = 1.0
        powers = _FLOAT32_POWERS[beta1] = np.multiply.accumulate(factors, dtype=np.float32)  # in float32
    return float(powers[t])


def _flat(x: np.ndarray, compute: str) -> np.ndarray:
    """An operand as the formula reads it: rounded to the compute dtype where that is narrower than the
    case's (MindSpore's float64 parameters); float32/float64 otherwise kept (the loops widen each
    element), others (float16) widened here."""
    x = np.ravel(np.asarray(x))
    if x.dtype == np.float64 and compute == "float32":
        return x.astype(np.float32)
    return x if x.dtype in _NATIVE else x.astype(np.float64)


class Formula:
    """One implementation's AdaMax update as an oracle. Called like a function, it returns the Step of one
    tensor; `check` steps and compares with the framework's post-step values in one compiled pass."""

    def __init__(self, name: str, features: Features):
        self.name, self.features = name, features

    def __repr__(self) -> str:
        return f"Formula({self.name!r}, {self.features})"

    def replace(self, **changes: Any) -> Formula:
        """The same formula with some features changed (a counterfactual oracle)."""
        label = ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
        return Formula(f"{self.name}[{label}]", replace(self.features, **changes))

    def compute_dtype(self, dtype: str) -> str:
        """The dtype this implementation computes a `dtype` parameter's update in."""
        return self.features.float64_compute if dtype == "float64" else dtype

    def scalars(self, hp: dict[str, Any], name: str, t: int, step: int | None, dtype: str) -> tuple:
        """The element formula's scalar switches for one tensor at one step (see _adamax): t is the
        parameter's own step count, `step` the optimizer's (None: the same)."""
        f = self.features
        beta1, beta2 = (float(b) for b in hp["betas"])
        lr, eps = float(hp["lr"]), float(hp["eps"])
        count = t if f.step_count == "parameter" or step is None else step
        if f.scalars in ("float32", "float32_pow"):
            beta1, beta2, lr, eps = (float(np.float32(x)) for x in (beta1, beta2, lr, eps))
            power = (float32_power(beta1, count) if f.scalars == "float32"
                     else float(np.float32(beta1) ** np.float32(count)))  # one float32 pow
        else:
            power = beta1 ** count  # Python floats, as torch computes its bias correction
        wd = float(hp.get("weight_decay") or 0.0)
        if f.decay_filter and not decays(name, hp):
            wd = 0.0
        if f.decay == "decoupled" and f.decay_factor == "float32":  # Keras: 1 - wd*lr a float32 tensor
            wd = 1.0 - float(np.float32(1.0 - np.float32(np.float32(wd) * np.float32(lr))))
        elif f.decay == "decoupled":  # p *= 1 - wd*lr in the formula's own precision (optax.adamaxw)
            wd *= lr
        loss_scale = float(hp.get("loss_scale", 1.0)) if f.loss_scale else 1.0
        float16 = dtype == "float16"
        return (lr / (1.0 - power), beta1, beta2, eps, wd, loss_scale, -1.0 if hp.get("maximize") else 1.0,
                EPS_MODES[f.eps], float(f.moment == "lerp"), float(f.nan_in_max == "drop"),
                float(f.float16_ops and float16), float(f.float16_ops and float16),
                float(f.decay == "decoupled"), float(f.float16_denominator and float16),
                float(f.float16_decay and float16), scalar16(wd * loss_scale) if float16 else 0.0,  # read by
                scalar16(1.0 / loss_scale) if float16 else 0.0)  # decay16 only: 15 us a tensor and step saved

    def __call__(self, p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                 hp: dict[str, Any], name: str, dtype: str | None = None, step: int | None = None) -> Step:
        """The six float64 outputs of Step for one tensor, shaped like p (dtype: the case's, by default p's)."""
        dtype = dtype or np.asarray(p).dtype.name
        compute = self.compute_dtype(dtype)
        flat = [_flat(x, compute) for x in (p, m, u, g)]
        out = np.empty((6, flat[0].size))
        s = self.scalars(hp, name, t, step, dtype)
        (_apply_loop if AVAILABLE else _numpy_loop)(*flat, out, s)
        return Step(*(row.reshape(np.shape(p)) for row in out))

    def check(self, pre: tuple[np.ndarray, np.ndarray, np.ndarray], g: np.ndarray, t: int, hp: dict[str, Any],
              name: str, post: tuple[np.ndarray, np.ndarray, np.ndarray], dtype: str,
              bounds: dict[str, tuple[float, float, float]],
              step: int | None = None) -> dict[str, dict[str, Any]] | None:
        """diff.diff of each post-step value (params, m, u) against this formula stepped from `pre`,
        with atol = bounds[...][0] x the element's operand magnitude; None where the compiled pass does
        not apply (no numba, float16, non-finite values): then step with __call__ and use diff.diff."""
        arrays = [np.asarray(x) for x in (*pre, g, *post)]
        if not AVAILABLE or dtype == "float16" or any(x.dtype not in _NATIVE for x in arrays) or not arrays[0].size:
            return None
        compute = self.compute_dtype(dtype)
        flat = [_flat(x, compute) for x in arrays[:4]] + [np.ravel(x) for x in arrays[4:]]
        s = self.scalars(hp, name, t, step, dtype)
        common = (*flat, s, *dtype_args(dtype), bounds["params"], bounds["state"])
        blocks = -(-flat[0].size // BLOCK)
        tops, worsts = np.empty((3, blocks), np.int64), np.empty((3, blocks), np.int64)
        maxima = _check_reduce(*common, tops, worsts)
        if not all(finite_maxima(row[0]) for row in maxima):
            return None
        out = {}
        for which, key in enumerate(("params", "m", "u")):
            top, rel, ulp, bad = (int(v) for v in maxima[which])
            lo, target = worst_start(tops[which], worsts[which], bad)
            at = _check_at(*common, which, lo, target, bad > 0)
            oracle = _adamax_called(*(np.float64(x[at]) for x in flat[:4]), s)
            out[key] = metrics((as_float(top), as_float(rel), as_float(ulp), bad), at, np.shape(arrays[4]),
                               flat[4 + which][at], oracle[which])
        return out


@functools.cache
def oracle(name: str) -> Formula:
    """The float64 oracle of an implementation's formula (FEATURES[name] of numerics/formulas.py)."""
    try:
        return Formula(name, FEATURES[name])
    except KeyError:
        raise KeyError(f"no formula named {name!r}: add its Features to FEATURES in "
                       "conformance/numerics/formulas.py") from None
