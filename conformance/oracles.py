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


Formula = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any], str], Step]


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


def _loop(element: Callable[..., tuple], compiled: bool = AVAILABLE) -> Callable[..., None]:
    """out[:, i] = element(p[i], m[i], u[i], g[i], *args) for every i, compiled where numba is."""
    def loop(p, m, u, g, out, clr, beta1, beta2, eps, wd, flag):  # pragma: no cover - compiled
        for i in range(p.size):  # operands widened to float64 one element at a time
            r = element(np.float64(p[i]), np.float64(m[i]), np.float64(u[i]), np.float64(g[i]),
                        clr, beta1, beta2, eps, wd, flag)
            out[0, i], out[1, i], out[2, i], out[3, i], out[4, i], out[5, i] = r

    if compiled:
        return jit(loop)

    python_element = getattr(element, "py_func", element)  # numba keeps the Python original

    def numpy_loop(p, m, u, g, out, *args):  # the same element function through NumPy's ufunc machinery
        ufunc = np.frompyfunc(lambda *xs: python_element(*(float(x) for x in xs), *args), 4, 6)
        with np.errstate(all="ignore"):
            for row, values in zip(out, ufunc(p, m, u, g)):
                row[...] = values
    return numpy_loop


_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
_LOOPS = {"torch": _loop(_torch_element), "mindspore": _loop(_mindspore_element)}


def _apply(kind: str, p, m, u, g, lr: float, t: int, beta1: float, beta2: float, eps: float, wd: float,
           flag: Any) -> Step:
    """One formula over one tensor: the six float64 outputs of Step, shaped like p."""
    # float32/float64 go in as they are (the loop widens each element); others (float16) widened here
    flat = [np.ravel(x) if np.asarray(x).dtype in _NATIVE else np.ravel(x).astype(np.float64) for x in (p, m, u, g)]
    out = np.empty((6, flat[0].size))
    clr = lr / (1.0 - beta1 ** t)  # in Python float64, once per tensor, as both frameworks do it
    _LOOPS[kind](*flat, out, float(clr), float(beta1), float(beta2), float(eps), float(wd), flag)
    return Step(*(row.reshape(np.shape(p)) for row in out))


def torch_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                 hp: dict[str, Any], name: str) -> Step:
    """torch.optim.Adamax: eps inside the max, bias correction in float64."""
    beta1, beta2 = hp["betas"]
    return _apply("torch", p, m, u, g, hp["lr"], t, beta1, beta2, hp["eps"], hp["weight_decay"] or 0.0,
                  bool(hp.get("maximize")))


def mindspore_decays(name: str, hp: dict[str, Any]) -> bool:
    """MindSpore's decay filter: ungrouped, parameters whose name holds 'beta' or 'gamma' are skipped;
    a parameter group that sets weight_decay decays all of its parameters."""
    return bool(hp.get("param_groups")) or ("beta" not in name and "gamma" not in name)


def mindspore_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                     hp: dict[str, Any], name: str) -> Step:
    """mindspore.nn.AdaMax (ApplyAdaMax): eps added to u outside the max, name-filtered decay."""
    beta1, beta2 = hp["betas"]
    wd = hp["weight_decay"] if hp["weight_decay"] and mindspore_decays(name, hp) else 0.0
    return _apply("mindspore", p, m, u, g, hp["lr"], t, beta1, beta2, hp["eps"], wd,
                  float(hp.get("loss_scale", 1.0)))
