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

from typing import Any, Callable

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]
Formula = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any], str], Arrays]


def torch_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                 hp: dict[str, Any], name: str) -> Arrays:
    """torch.optim.Adamax: eps inside the max, bias correction in float64."""
    beta1, beta2 = hp["betas"]
    if hp.get("maximize"):
        g = -g
    if hp["weight_decay"]:
        g = g + hp["weight_decay"] * p
    m = m + (1.0 - beta1) * (g - m)
    u = np.maximum(beta2 * u, np.abs(g) + hp["eps"])
    p = p - (hp["lr"] / (1.0 - beta1 ** t)) * (m / u)
    return p, m, u


def mindspore_decays(name: str, hp: dict[str, Any]) -> bool:
    """MindSpore's decay filter: ungrouped, parameters whose name holds 'beta' or 'gamma' are skipped;
    a parameter group that sets weight_decay decays all of its parameters."""
    return bool(hp.get("param_groups")) or ("beta" not in name and "gamma" not in name)


def kernel_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """std::max(a, b) as the ApplyAdaMax CPU kernel calls it: `a < b ? b : a`, so a NaN in b is dropped
    (b*v kept) while a NaN already in a stays."""
    return np.where(a < b, b, a)


def mindspore_adamax(p: np.ndarray, m: np.ndarray, u: np.ndarray, g: np.ndarray, t: int,
                     hp: dict[str, Any], name: str) -> Arrays:
    """mindspore.nn.AdaMax (ApplyAdaMax): eps added to u outside the max, name-filtered decay."""
    beta1, beta2 = hp["betas"]
    scale = hp.get("loss_scale", 1.0)
    if hp["weight_decay"] and mindspore_decays(name, hp):
        g = g + hp["weight_decay"] * scale * p  # nn.Optimizer stores weight_decay * loss_scale
    g = g / scale
    m = beta1 * m + (1.0 - beta1) * g
    u = kernel_max(beta2 * u, np.abs(g))
    p = p - (hp["lr"] / (1.0 - beta1 ** t)) * (m / (u + hp["eps"]))
    return p, m, u
