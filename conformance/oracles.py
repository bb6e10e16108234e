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

from .compare import START, bits_of, buffers, metrics, take
from .compiled import AVAILABLE, jit


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
    return x if (x >= y or x != x) else y


def kernel_max(x: float, y: float) -> float:
    """std::max(x, y) as the ApplyAdaMax CPU kernel calls it: `x < y ? y : x`, so a NaN in y is dropped
    (x kept) while a NaN already in x stays."""
    return y if x < y else x


_np_maximum, kernel_max = jit(_np_maximum), jit(kernel_max)


def _torch_element(p, m, u, g, clr, beta1, beta2, eps, wd, maximize):
    """torch.optim.Adamax on one element: eps inside the max; clr = lr / (1 - beta1**t) in float64."""
    if maximize:
        g = -g
    g_terms = abs(g)
    if wd:
        g_terms = g_terms + abs(wd * p)
        g = g + wd * p
    m_new = m + (1.0 - beta1) * (g - m)
    u_new = _np_maximum(beta2 * u, abs(g) + eps)
    step = clr * (m_new / u_new)
    scale_m = abs(m) + (1.0 - beta1) * (g_terms + abs(m))
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new),
            scale_m, abs(beta2 * u) + g_terms + eps)


def _mindspore_element(p, m, u, g, clr, beta1, beta2, eps, wd, loss_scale):
    """mindspore.nn.AdaMax on one element (wd = 0 where the name filter skips the parameter): eps added
    to u outside the max; nn.Optimizer stores weight_decay * loss_scale and divides the sum by it."""
    g_terms = abs(g) / loss_scale
    if wd:
        g_terms = g_terms + abs(wd * p)
        g = g + wd * loss_scale * p
    g = g / loss_scale
    m_new = beta1 * m + (1.0 - beta1) * g
    u_new = kernel_max(beta2 * u, abs(g))
    step = clr * (m_new / (u_new + eps))
    scale_m = beta1 * abs(m) + (1.0 - beta1) * g_terms
    return (p - step, m_new, u_new, abs(p) + abs(step) + clr * scale_m / abs(u_new + eps),
            scale_m, abs(beta2 * u) + g_terms)


_torch_element, _mindspore_element = jit(_torch_element), jit(_mindspore_element)
_KINDS = {"torch": 0, "mindspore": 1}


@jit
def _element(kind, p, m, u, g, clr, beta1, beta2, eps, wd, flag):  # pragma: no cover - compiled
    if kind == 0:
        return _torch_element(p, m, u, g, clr, beta1, beta2, eps, wd, flag)
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
    ufunc = np.frompyfunc(lambda *xs: element(kind, *(float(x) for x in xs), *args), 4, 6)
    with np.errstate(all="ignore"):
        for row, values in zip(out, ufunc(p, m, u, g)):
            row[...] = values


@jit
def _check_loop(kind, p, m, u, g, post_p, post_m, post_u, clr, beta1, beta2, eps, wd, flag,
                fbuf, ibuf, mask, bound_p, bound_s):  # pragma: no cover - compiled
    """The formula at every element, compared at once with the framework's post-step values (the
    oracle's six arrays are never written: at 1M parameters that is most of an oracle check's cost).
    bound_*: (atol in eps x operand magnitude, already times eps; rtol; ulp or -1). Returns
    (finite, params, m, u accumulators) as compare.take folds them."""
    acc_p, acc_m, acc_u = START, START, START
    for i in range(p.size):
        r = _element(kind, np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]),
                     clr, beta1, beta2, eps, wd, flag)
        ok, acc_p = take(acc_p, i, np.float64(post_p[i]), r[0], bits_of(post_p[i], fbuf, ibuf),
                         bits_of(r[0], fbuf, ibuf), mask, (bound_p[0] * r[3], bound_p[1]), bound_p[2])
        if ok:
            ok, acc_m = take(acc_m, i, np.float64(post_m[i]), r[1], bits_of(post_m[i], fbuf, ibuf),
                             bits_of(r[1], fbuf, ibuf), mask, (bound_s[0] * r[4], bound_s[1]), bound_s[2])
        if ok:
            ok, acc_u = take(acc_u, i, np.float64(post_u[i]), r[2], bits_of(post_u[i], fbuf, ibuf),
                             bits_of(r[2], fbuf, ibuf), mask, (bound_s[0] * r[5], bound_s[1]), bound_s[2])
        if not ok:
            return False, acc_p, acc_m, acc_u
    return True, acc_p, acc_m, acc_u


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
        args = self._args(t, hp, name)
        fbuf, ibuf, mask = buffers(dtype)
        finite, *accs = _check_loop(_KINDS[self.kind], *flat, *args, fbuf, ibuf, mask, bounds["params"],
                                    bounds["state"])
        if not finite:
            return None

        def oracle(j: int) -> Callable[[int], float]:
            return lambda i: _element(_KINDS[self.kind], *(float(x[i]) for x in flat[:4]), *args)[j]
        shape = np.shape(arrays[4])
        return {key: metrics(acc, shape, flat[4 + j].__getitem__, oracle(j))
                for j, (key, acc) in enumerate(zip(("params", "m", "u"), accs))}


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
