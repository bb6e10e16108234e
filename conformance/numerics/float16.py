"""What a float16 tensor stores, computed in float64: the roundings the oracles model where an
implementation rounds an intermediate value to float16 (Features.float16_ops, Features.float16_decay in
conformance/numerics/formulas.py).

The oracles evaluate every formula in float64 and bound what a framework computes in its dtype by a few
eps of the terms (numerics/oracles.py, Step). A rounding is modelled here instead where it changes the
result's character rather than its last bits: in float16, eps = 1e-8 added to |g| vanishes, and below
2^-14 float16 is subnormal, with one absolute unit of 2^-24 (6e-8), so a decayed gradient of 7.35 units
stored as 7 moves u by one seventh, far beyond any eps-relative bound.

Each helper is selects only, no branches or calls, so the compiled loops that inline them stay SIMD
(tests/numerics/test_oracles.py compares them with NumPy's cast).
"""
from __future__ import annotations

import numpy as np

from conformance.numerics.compiled import jit


@jit(inline=True)
def to_float16(x):
    """x >= 0 (or NaN) rounded to the nearest float16 value, ties to even, computed in float64: what a
    float16 tensor holds after `|g| + eps` (torch rounds the sum into the parameter's dtype)."""
    subnormal = (x + 268435456.0) - 268435456.0  # 2^28 = 2^-24 * 2^52: to a multiple of 2^-24
    split = x * 4398046511105.0  # Veltkamp split by 2^42 + 1: the top 53 - 42 = 11 significant bits
    normal = split - (split - x)
    rounded = subnormal if x < 2.0 ** -14 else normal
    return np.inf if x >= 65520.0 else rounded  # from 65520 up the nearest float16 is inf; NaN stays


@jit(inline=True)
def signed_float16(x):
    """Any x rounded to float16 (to_float16 of |x|, the sign put back; -0 becomes +0, which no later
    step of the formula can tell apart)."""
    return to_float16(abs(x)) * (-1.0 if x < 0.0 else 1.0)


@jit(inline=True)
def decayed(g, p, wd16, unscale16, l2, ls):
    """The decayed gradient as float16 tensor ops store it (Features.float16_decay): fl16(wd16*p), then the
    sum with g, then (MindSpore's scale_grad) the product with fl16(1/loss_scale), each rounded. wd16 =
    scalar16(wd*loss_scale), unscale16 = scalar16(1/loss_scale); l2 = 0: no decay op, ls = 1: no unscaling."""
    g = signed_float16(g + signed_float16(wd16 * p)) if l2 else g
    return signed_float16(g * unscale16) if ls != 1.0 else g


@jit(inline=True)
def torch_lerp(m, g, beta1):
    """torch's float16 m.lerp_(g, 1 - b1): computed in float32 with the weight w = float32(1 - b1), as one
    fma, in the form the kernel picks (m + w*(g - m) for w < 0.5, else g - (g - m)*(1 - w)), the result
    rounded to float32 here and to float16 by the caller's store. At a float16 tie the float32 weight
    decides: 0.1*175 subnormal units is 17.5000003 units (stored as 18), not 17.4999999 (17)."""
    w, d = np.float64(np.float32(1.0 - beta1)), np.float64(np.float32(g - m))
    return np.float64(np.float32(m + w * d if w < 0.5 else g - d * (1.0 - w)))


def scalar16(x: float) -> float:
    """A scalar as a float16 tensor op multiplies by it: rounded to float32, then to float16 (MindSpore
    casts its float32 scalar tensors to the parameter's dtype; c10::Half is built from a float). Beyond
    float16's range: inf, as the cast gives, without NumPy's overflow warning."""
    with np.errstate(over="ignore"):
        return float(np.float16(np.float32(x)))
