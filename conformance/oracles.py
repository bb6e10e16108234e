"""Float64 NumPy references of each framework's AdaMax formula, as pure functions.

Each oracle takes one parameter's pre-step values (p, m, u), the gradient the framework received,
the 1-based step t, the effective hyper-parameters and the parameter's native name, and returns the
post-step (p, m, u). The runner steps them from the framework's own pre-step state every step, so an
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


def torch_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                 hp: dict[str, Any], name: str) -> Step:
    """torch.optim.Adamax: eps inside the max, bias correction in float64."""
    beta1, beta2 = hp["betas"]
    if hp.get("maximize"):
        g = -g
    g_terms = np.abs(g)
    if hp["weight_decay"]:
        g_terms = g_terms + np.abs(hp["weight_decay"] * p)
        g = g + hp["weight_decay"] * p
    m_new = m + (1.0 - beta1) * (g - m)
    u_new = np.maximum(beta2 * u, np.abs(g) + hp["eps"])
    clr = hp["lr"] / (1.0 - beta1 ** t)
    step = clr * (m_new / u_new)
    scale_m = np.abs(m) + (1.0 - beta1) * (g_terms + np.abs(m))
    return Step(p - step, m_new, u_new, np.abs(p) + np.abs(step) + clr * scale_m / np.abs(u_new),
                scale_m, np.abs(beta2 * u) + g_terms + hp["eps"])


def mindspore_decays(name: str, hp: dict[str, Any]) -> bool:
    """MindSpore's decay filter: ungrouped, parameters whose name holds 'beta' or 'gamma' are skipped;
    a parameter group that sets weight_decay decays all of its parameters."""
    return bool(hp.get("param_groups")) or ("beta" not in name and "gamma" not in name)


def kernel_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """std::max(a, b) as the ApplyAdaMax CPU kernel calls it: `a < b ? b : a`, so a NaN in b is dropped
    (b*v kept) while a NaN already in a stays."""
    return np.where(a < b, b, a)


def mindspore_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                     hp: dict[str, Any], name: str) -> Step:
    """mindspore.nn.AdaMax (ApplyAdaMax): eps added to u outside the max, name-filtered decay."""
    beta1, beta2 = hp["betas"]
    scale = hp.get("loss_scale", 1.0)
    g_terms = np.abs(g) / scale
    if hp["weight_decay"] and mindspore_decays(name, hp):
        g_terms = g_terms + np.abs(hp["weight_decay"] * p)
        g = g + hp["weight_decay"] * scale * p  # nn.Optimizer stores weight_decay * loss_scale
    g = g / scale
    m_new = beta1 * m + (1.0 - beta1) * g
    u_new = kernel_max(beta2 * u, np.abs(g))
    clr = hp["lr"] / (1.0 - beta1 ** t)
    step = clr * (m_new / (u_new + hp["eps"]))
    scale_m = beta1 * np.abs(m) + (1.0 - beta1) * g_terms
    return Step(p - step, m_new, u_new, np.abs(p) + np.abs(step) + clr * scale_m / np.abs(u_new + hp["eps"]),
                scale_m, np.abs(beta2 * u) + g_terms)
