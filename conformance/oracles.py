"""Float64 NumPy references of each framework's AdaMax formula, as pure functions.

Each oracle takes one parameter's pre-step values (p, m, u), the gradient the framework received,
the 1-based step t, the effective hyper-parameters and the parameter's native name, and returns the
post-step (p, m, u). The formula is written once, per element (`_torch_element`, `_mindspore_element`,
as the frameworks' kernels are), and run over the tensor by a loop that numba compiles where installed
(conformance/compiled.py), else element by element through NumPy; same float64 arithmetic either way. The runner steps them from the framework's own pre-step state every step, so an
oracle mismatch measures one step's departure from the formula, never accumulated drift.

Formulas as read from the sources (torch 2.13 `torch/optim/adamax.py::_single_tensor_adamax`;
MindSpore 2.10 `nn/optim/adamax.py`, `nn/optim/optimizer.py` and the ApplyAdaMax CPU kernel):

torch:      g <- -g if maximize;  g <- g + wd*p;  m <- lerp(m, g, 1-b1);  u <- max(b2*u, |g| + eps)
            p <- p - lr/(1 - b1**t) * m/u           (bias correction in Python float64)
mindspore:  decay only where the parameter name holds neither 'beta' nor 'gamma' (ungrouped default)
            (a parameter group that sets weight_decay decays every parameter in it)
            g <- (g + wd*loss_scale*p) / loss_scale (nn.Optimizer pre-multiplies weight_decay by loss_scale)
            m <- b1*m + (1-b1)*g;  u <- max(b2*u, |g|)  (the CPU kernel's std::max drops a NaN |g|)
            p <- p - lr/(1 - beta1_power) * m/(u + eps),  beta1_power = b1**t
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .compare import BLOCK, as_float, case_bits, dtype_args, element, finite_maxima, metrics, worst_start
from .compiled import AVAILABLE, jit

if AVAILABLE:
    from .compiled import float64_bits


@dataclass
class Step:
    """One oracle step: the new values, and for each the magnitude of the terms that formed it.

    A floating-point evaluation of a sum is accurate to a few eps times the sum of its terms' absolute
    values, not of its result: m = b1*m + (1-b1)*g can cancel to ~0 while its rounding stays ~eps*|g|,
    and the parameter step inherits that through m/u. The runner bounds a framework's departure from
    its oracle by k * eps(dtype) * scale, element-wise.
    """

    p: np.ndarray
    m: np.ndarray
    u: np.ndarray
    scale_p: np.ndarray
    scale_m: np.ndarray
    scale_u: np.ndarray




def _np_maximum(x: float, y: float) -> float:
    """np.maximum on one element: NaN in either operand gives NaN (torch's max propagates NaN)."""
    return x if (x >= y) | (x != x) else y


def kernel_max(x: float, y: float) -> float:
    """std::max(x, y) as the ApplyAdaMax CPU kernel calls it: `x < y ? y : x`, so a NaN in y is dropped
    (x kept) while a NaN already in x stays."""
    return y if x < y else x


_np_maximum, kernel_max = jit(_np_maximum, inline=True), jit(kernel_max, inline=True)


def _torch_element(p, m, u, g, clr, beta1, beta2, eps, wd, maximize):
    """torch.optim.Adamax on one element: eps inside the max; clr = lr / (1 - beta1**t) in float64.
    (Options are selected, not branched on: the compiled loops stay SIMD; the value is the same.)"""
    g = -g if maximize else g
    g_terms = abs(g) + abs(wd * p) if wd else abs(g)
    g = g + wd * p if wd else g
    m_new = m + (1.0 - beta1) * (g - m)
    u_new = _np_maximum(beta2 * u, abs(g) + eps)
    step = clr * (m_new / u_new)
    scale_m = abs(m) + (1.0 - beta1) * (g_terms + abs(m))
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new),
            scale_m, abs(beta2 * u) + g_terms + eps)


def _mindspore_element(p, m, u, g, clr, beta1, beta2, eps, wd, loss_scale):
    """mindspore.nn.AdaMax on one element (wd = 0 where the name filter skips the parameter): eps added
    to u outside the max; nn.Optimizer stores weight_decay * loss_scale and divides the sum by it."""
    g_terms = abs(g) / loss_scale + abs(wd * p) if wd else abs(g) / loss_scale
    g = (g + wd * loss_scale * p if wd else g) / loss_scale
    m_new = beta1 * m + (1.0 - beta1) * g
    u_new = kernel_max(beta2 * u, abs(g))
    step = clr * (m_new / (u_new + eps))
    scale_m = beta1 * abs(m) + (1.0 - beta1) * g_terms
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new + eps),
            scale_m, abs(beta2 * u) + g_terms)


def _keras_element(p, m, u, g, clr, beta1, beta2, eps, wd, lr):
    """keras.optimizers.Adamax (Keras 3, torch backend's foreach version) on one element: decoupled
    decay p*(1 - wd*lr) before the step; eps added to u outside the max (as MindSpore)."""
    p_decayed = p * (1.0 - wd * lr) if wd else p
    m_new = beta1 * m + (1.0 - beta1) * g
    u_new = _np_maximum(beta2 * u, abs(g))
    step = clr * (m_new / (u_new + eps))
    scale_m = beta1 * abs(m) + (1.0 - beta1) * abs(g)
    return (p_decayed - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new + eps),
            scale_m, abs(beta2 * u) + abs(g))


def _optax_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag):
    """optax.adamax (scale_by_adamax, after add_decayed_weights where the case decays) on one element:
    L2 decay into the gradient; eps inside the max (as torch); m as (1-b1)*g + b1*m."""
    g_terms = abs(g) + abs(wd * p) if wd else abs(g)
    g = g + wd * p if wd else g
    m_new = (1.0 - beta1) * g + beta1 * m
    u_new = _np_maximum(abs(g) + eps, beta2 * u)
    step = clr * (m_new / u_new)
    scale_m = beta1 * abs(m) + (1.0 - beta1) * g_terms
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new),
            scale_m, abs(beta2 * u) + g_terms + eps)


def _paddle_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag):
    """paddle.optimizer.Adamax on one element: L2Decay into the gradient; eps added to b2*u inside the
    max (max(b2*u + eps, |g|)); no eps in the denominator."""
    g_terms = abs(g) + abs(wd * p) if wd else abs(g)
    g = g + wd * p if wd else g
    m_new = beta1 * m + (1.0 - beta1) * g
    u_new = _np_maximum(beta2 * u + eps, abs(g))
    step = clr * (m_new / u_new)
    scale_m = beta1 * abs(m) + (1.0 - beta1) * g_terms
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new),
            scale_m, abs(beta2 * u) + eps + g_terms)


_torch_element, _mindspore_element = jit(_torch_element, inline=True), jit(_mindspore_element, inline=True)
_keras_element, _optax_element = jit(_keras_element, inline=True), jit(_optax_element, inline=True)
_paddle_element = jit(_paddle_element, inline=True)
_KINDS = {"torch": 0, "mindspore": 1, "keras": 2, "optax": 3, "paddle": 4}


@jit(inline=True)
def _element(kind, p, m, u, g, clr, beta1, beta2, eps, wd, flag):  # pragma: no cover - compiled
    if kind == 0:
        return _torch_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)
    if kind == 2:
        return _keras_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)
    if kind == 3:
        return _optax_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)
    if kind == 4:
        return _paddle_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)
    return _mindspore_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)


@jit
def _apply_loop(kind, p, m, u, g, out, clr, beta1, beta2, eps, wd, flag):  # pragma: no cover - compiled
    """out[:, i] = the formula at element i; operands widened to float64 one element at a time."""
    for i in range(p.size):
        r = _element(kind, np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]),
                     clr, beta1, beta2, eps, wd, flag)
        out[0, i], out[1, i], out[2, i], out[3, i], out[4, i], out[5, i] = r


def _numpy_loop(kind, p, m, u, g, out, *args) -> None:
    """_apply_loop without numba: the same element function through NumPy's ufunc machinery."""
    element = getattr(_element, "py_func", _element)
    ufunc = np.frompyfunc(lambda *xs: element(kind, *(np.float64(x) for x in xs), *args), 4, 6)  # x/0: inf/NaN
    with np.errstate(all="ignore"):
        for row, values in zip(out, ufunc(p, m, u, g)):
            row[...] = values


@jit(inline=True)
def _check_element(kind, p, m, u, g, post_p, post_m, post_u, i, clr, beta1, beta2, eps, wd, flag, wide, mask,
                   bound_p, bound_s):  # pragma: no cover - compiled
    """Element i of a tensor: the formula stepped from (p, m, u, g), each output compared with the
    framework's post-step value (compare.element), for _check_at. bound_*: (atol x eps, rtol, ulp or
    -1); against an oracle atol counts eps(dtype) x the element's operand magnitude. (_check_reduce
    spells the same lines out: through this function's return the compiler kept that loop scalar,
    2.6x slower, measured.)"""
    r = _element(kind, np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]),
                 clr, beta1, beta2, eps, wd, flag)
    cp = element(np.float64(post_p[i]), r[0], case_bits(post_p[i], wide), case_bits(r[0], wide), mask,
                 bound_p[0] * r[3], bound_p[1], bound_p[2])
    cm = element(np.float64(post_m[i]), r[1], case_bits(post_m[i], wide), case_bits(r[1], wide), mask,
                 bound_s[0] * r[4], bound_s[1], bound_s[2])
    cu = element(np.float64(post_u[i]), r[2], case_bits(post_u[i], wide), case_bits(r[2], wide), mask,
                 bound_s[0] * r[5], bound_s[1], bound_s[2])
    return cp, cm, cu


@jit
def _check_reduce(kind, p, m, u, g, post_p, post_m, post_u, clr, beta1, beta2, eps, wd, flag, wide, mask,
                  bound_p, bound_s, tops, worsts):  # pragma: no cover - compiled
    """compare._diff_reduce for params, m and u against the formula, in one SIMD pass: the oracle's six
    arrays are never written (at 1M parameters, writing and re-reading them was most of an oracle
    check). tops, worsts: (3, blocks) per-block maxima. Returns (3, 4): abs, rel, ulp maxima (bit
    patterns) and the count outside the bound, per output."""
    out = np.zeros((3, 4), dtype=np.int64)
    rp, up, bp, rm, um, bm, ru, uu, bu = 0, 0, 0, 0, 0, 0, 0, 0, 0
    for k in range(tops.shape[1]):
        tp, tm, tu, wp, wm, wu = 0, 0, 0, -1, -1, -1
        for i in range(k * BLOCK, min(p.size, (k + 1) * BLOCK)):
            r = _element(kind, np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]),
                         clr, beta1, beta2, eps, wd, flag)
            cp = element(np.float64(post_p[i]), r[0], case_bits(post_p[i], wide), case_bits(r[0], wide), mask,
                         bound_p[0] * r[3], bound_p[1], bound_p[2])
            cm = element(np.float64(post_m[i]), r[1], case_bits(post_m[i], wide), case_bits(r[1], wide), mask,
                         bound_s[0] * r[4], bound_s[1], bound_s[2])
            cu = element(np.float64(post_u[i]), r[2], case_bits(post_u[i], wide), case_bits(r[2], wide), mask,
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
def _check_at(kind, p, m, u, g, post_p, post_m, post_u, clr, beta1, beta2, eps, wd, flag, wide, mask,
              bound_p, bound_s, which, lo, target, outside):  # pragma: no cover - compiled
    """compare._diff_at for output `which` (0 params, 1 m, 2 u)."""
    for i in range(lo, p.size):
        c = _check_element(kind, p, m, u, g, post_p, post_m, post_u, i, clr, beta1, beta2, eps, wd, flag,
                           wide, mask, bound_p, bound_s)
        if float64_bits(c[which][0]) == target and (c[which][3] or not outside):
            return i
    return -1


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def _flat(x: np.ndarray) -> np.ndarray:
    """float32/float64 as they are (the loops widen each element); others (float16) widened here."""
    x = np.asarray(x)
    return np.ravel(x) if x.dtype in _NATIVE else np.ravel(x).astype(np.float64)


class Formula:
    """One framework's AdaMax update as an oracle. Called like a function, it returns the Step of one
    tensor; `check` steps and compares with the framework's post-step values in one compiled pass."""

    def __init__(self, kind: str, scalars: Callable[[dict[str, Any], str], tuple]):
        self.kind, self.scalars = kind, scalars  # scalars(hp, name) -> (lr, beta1, beta2, eps, wd, flag)

    def _args(self, t: int, hp: dict[str, Any], name: str) -> tuple:
        lr, beta1, beta2, eps, wd, flag = self.scalars(hp, name)
        clr = lr / (1.0 - beta1 ** t)  # in Python float64, once per tensor, as both frameworks do it
        return tuple(float(v) for v in (clr, beta1, beta2, eps, wd, flag))

    def __call__(self, p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                 hp: dict[str, Any], name: str) -> Step:
        """The six float64 outputs of Step for one tensor, shaped like p."""
        flat = [_flat(x) for x in (p, m, u, g)]
        out = np.empty((6, flat[0].size))
        (_apply_loop if AVAILABLE else _numpy_loop)(_KINDS[self.kind], *flat, out, *self._args(t, hp, name))
        return Step(*(row.reshape(np.shape(p)) for row in out))

    def check(self, pre: tuple[np.ndarray, np.ndarray, np.ndarray], g: np.ndarray, t: int, hp: dict[str, Any],
              name: str, post: tuple[np.ndarray, np.ndarray, np.ndarray], dtype: str,
              bounds: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, Any]] | None:
        """compare.diff of each post-step value (params, m, u) against this formula stepped from `pre`,
        with atol = bounds[...][0] x the element's operand magnitude; None where the compiled pass does
        not apply (no numba, float16, non-finite values): then step with __call__ and use compare.diff."""
        arrays = [np.asarray(x) for x in (*pre, g, *post)]
        if not AVAILABLE or dtype == "float16" or any(x.dtype not in _NATIVE for x in arrays) or not arrays[0].size:
            return None
        flat = [np.ravel(x) for x in arrays]
        scalars = self._args(t, hp, name)
        common = (_KINDS[self.kind], *flat, *scalars, *dtype_args(dtype), bounds["params"], bounds["state"])
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
            oracle = _element(_KINDS[self.kind], *(float(x[at]) for x in flat[:4]), *scalars)
            out[key] = metrics((as_float(top), as_float(rel), as_float(ulp), bad), at, np.shape(arrays[4]),
                               flat[4 + which][at], oracle[which])
        return out


def _torch_scalars(hp: dict[str, Any], name: str) -> tuple:
    """torch.optim.Adamax: eps inside the max, bias correction in float64."""
    beta1, beta2 = hp["betas"]
    return hp["lr"], beta1, beta2, hp["eps"], hp["weight_decay"] or 0.0, bool(hp.get("maximize"))


def mindspore_decays(name: str, hp: dict[str, Any]) -> bool:
    """MindSpore's decay filter: ungrouped, parameters whose name holds 'beta' or 'gamma' are skipped;
    a parameter group that sets weight_decay decays all of its parameters."""
    return bool(hp.get("param_groups")) or ("beta" not in name and "gamma" not in name)


def _mindspore_scalars(hp: dict[str, Any], name: str) -> tuple:
    """mindspore.nn.AdaMax (ApplyAdaMax): eps added to u outside the max, name-filtered decay."""
    beta1, beta2 = hp["betas"]
    wd = hp["weight_decay"] if hp["weight_decay"] and mindspore_decays(name, hp) else 0.0
    return hp["lr"], beta1, beta2, hp["eps"], wd, float(hp.get("loss_scale", 1.0))


torch_adamax = Formula("torch", _torch_scalars)
mindspore_adamax = Formula("mindspore", _mindspore_scalars)


def _keras_scalars(hp: dict[str, Any], name: str) -> tuple:
    """keras.optimizers.Adamax: decoupled decay on every variable (flag: the lr the decay multiplies)."""
    beta1, beta2 = hp["betas"]
    return hp["lr"], beta1, beta2, hp["eps"], hp["weight_decay"] or 0.0, hp["lr"]


def _l2_scalars(hp: dict[str, Any], name: str) -> tuple:
    """optax.adamax / paddle.optimizer.Adamax: L2 decay added to the gradient of every parameter."""
    beta1, beta2 = hp["betas"]
    return hp["lr"], beta1, beta2, hp["eps"], hp["weight_decay"] or 0.0, 0.0


keras_adamax = Formula("keras", _keras_scalars)
optax_adamax = Formula("optax", _l2_scalars)
paddle_adamax = Formula("paddle", _l2_scalars)


# What each formula does with eps and weight decay, in words, for reports (the run records it per
# framework under run.api[<framework>].formula, so a table of implementations reads no code).
DESCRIPTIONS = {
    "torch": {"camp": "torch-like", "eps": "inside the max: u = max(b2*u, |g| + eps)", "weight_decay": "L2 into the gradient, every parameter"},
    "mindspore": {"camp": "MindSpore-like", "eps": "denominator: m/(u + eps), u = max(b2*u, |g|)",
                  "weight_decay": "L2 into the gradient, skipped for names holding beta/gamma"},
    "keras": {"camp": "MindSpore-like", "eps": "denominator: m/(u + eps), u = max(b2*u, |g|)",
              "weight_decay": "decoupled: p*(1 - wd*lr) before the step, every variable"},
    "optax": {"camp": "torch-like", "eps": "inside the max: u = max(|g| + eps, b2*u)",
              "weight_decay": "none in adamax; L2 by add_decayed_weights before it (as the suite chains it)"},
    "paddle": {"camp": "Paddle (its own)", "eps": "inside the max, on the decayed norm: u = max(b2*u + eps, |g|)",
               "weight_decay": "L2Decay into the gradient, every parameter"},
}


def describe(formula: Formula) -> dict[str, str]:
    """{"kind", "eps", "weight_decay"} of a formula, for run.api."""
    return {"kind": formula.kind, **DESCRIPTIONS.get(formula.kind, {})}
