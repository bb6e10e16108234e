"""Element-wise divergence between two arrays: max abs, rel and ULP, the worst element, the bound.

Computed once per tensor per step; every consumer (verdict, JSONL, pytest message, report) reads the
resulting dict and never recomputes. NaN/Inf rules, stated once:
- NaN vs NaN at the same element, and the same infinity on both sides, agree (difference 0);
- NaN vs a number, or Inf vs anything else, is an infinite difference (abs = rel = ulp = inf).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .case import Bound
from .compiled import AVAILABLE, jit

_INT = {"float16": np.int16, "float32": np.int32, "float64": np.int64}
_SIGN_MASK = {"float16": 0x7FFF, "float32": 0x7FFFFFFF, "float64": 0x7FFFFFFFFFFFFFFF}
_NO_ULP_BOUND = -1.0
_NO_ARRAY = np.empty(0)  # "no element-wise atol" for the compiled pass


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """Number of representable `dtype` values between a and b (both rounded to dtype), as float64.

    Bit patterns are sign-magnitude: mapped to ordered integers (+0 and -0 both 0), equal signs differ
    by exactly the distance; across zero the two magnitudes add (in float64: may exceed int64).
    """
    with np.errstate(over="ignore"):  # a float64 value beyond the dtype's range rounds to inf, as intended
        ia = np.asarray(a, dtype=dtype).view(_INT[dtype]).astype(np.int64)
        ib = np.asarray(b, dtype=dtype).view(_INT[dtype]).astype(np.int64)
    mask = _SIGN_MASK[dtype]
    oa = np.where(ia < 0, -(ia & mask), ia)
    ob = np.where(ib < 0, -(ib & mask), ib)
    same_sign = (oa >= 0) == (ob >= 0)
    with np.errstate(over="ignore"):
        exact = np.abs(oa - ob).astype(np.float64)  # exact where the signs agree
    across = np.abs(oa).astype(np.float64) + np.abs(ob).astype(np.float64)
    return np.where(same_sign, exact, across)


START = (-1.0, 0, 0.0, 0.0, 0, -1.0, 0)  # (max abs, its index, max rel, max ulp, bad, worst bad abs, its index)


@jit
def bits_of(value, fbuf, ibuf):  # pragma: no cover - compiled
    """`value` rounded to the case dtype (fbuf: a 1-element array of it; ibuf: the same memory viewed as
    integers), as its integer bit pattern, widened to int64."""
    fbuf[0] = value
    return np.int64(ibuf[0])


@jit
def take(acc, i, x, y, bx, by, mask, limit, ulp_bound):  # pragma: no cover - compiled
    """Fold element i into the accumulator START describes: x, y the two values in float64, bx, by their
    bit patterns in the case dtype, `limit` the element's atol + rtol*max(|x|,|y|) without the rtol
    term (added here). Returns (finite, acc); not finite as soon as an operand or the difference is
    NaN/Inf (diff_general takes over). Element by element this is diff_general's float64 arithmetic."""
    top, top_at, rel, ulp, bad, worst, worst_at = acc
    d = abs(x - y)
    if not d <= 1.7976931348623157e308:  # NaN or inf: an operand is not finite (or x - y overflowed)
        return False, acc
    s = max(abs(x), abs(y))
    if s > 0.0:
        rel = max(rel, d / s)
    # sign-magnitude -> ordered integers (+0 and -0 both 0), branch-free: weights' signs are random,
    # and a mispredicted branch per element cost more than the rest of this function (measured)
    sa, sb = bx >> 63, by >> 63  # -1 where negative, else 0
    oa, ob = (bx ^ (sa & mask)) - sa, (by ^ (sb & mask)) - sb
    if (oa >= 0) == (ob >= 0):
        e = np.float64(abs(oa - ob))
    else:
        e = np.float64(abs(oa)) + np.float64(abs(ob))
    ulp = max(ulp, e)
    if d > top:
        top, top_at = d, i
    if not (d <= limit[0] + limit[1] * s or (ulp_bound >= 0.0 and e <= ulp_bound)):
        bad += 1
        if d > worst:
            worst, worst_at = d, i
    return True, (top, top_at, rel, ulp, bad, worst, worst_at)


@jit
def _diff_kernel(a, b, fbuf, ibuf, mask, atol_arr, atol, rtol, ulp_bound):  # pragma: no cover - compiled
    """One pass of `diff` over flat arrays; returns (finite, accumulator)."""
    acc = START
    per_element = atol_arr.size > 0
    for i in range(a.size):
        limit = (atol_arr[i] if per_element else atol, rtol)
        ok, acc = take(acc, i, np.float64(a[i]), np.float64(b[i]), bits_of(a[i], fbuf, ibuf),
                       bits_of(b[i], fbuf, ibuf), mask, limit, ulp_bound)
        if not ok:
            return False, acc
    return True, acc


def buffers(dtype: str) -> tuple[np.ndarray, np.ndarray, int]:
    """What the compiled passes need to read bit patterns in `dtype`: (fbuf, ibuf, sign mask)."""
    fbuf = np.empty(1, dtype=dtype)
    return fbuf, fbuf.view(_INT[dtype]), _SIGN_MASK[dtype]


def ulp_limit(bound: Bound) -> float:
    return _NO_ULP_BOUND if bound.ulp is None else float(bound.ulp)


def metrics(acc: tuple, shape: tuple[int, ...], left: Any, right: Any) -> dict[str, Any]:
    """A compiled pass's accumulator as `diff`'s dict; left(i), right(i) give the two values at flat i."""
    top, top_at, rel, ulp, bad, _, worst_at = acc
    flat = worst_at if bad else top_at
    index = [flat] if len(shape) <= 1 else [int(i) for i in np.unravel_index(flat, shape)]
    return {"abs": top, "rel": rel, "ulp": ulp, "at": index, "a": float(left(flat)), "b": float(right(flat)),
            "bad": bad}


def diff(a: np.ndarray, b: np.ndarray, dtype: str, bound: Bound, atol: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of a vs b. `bad` counts elements outside the bound; `at`, `a`, `b` name the worst one
    (the largest abs difference among the elements outside the bound, else overall; first on ties).

    `atol`, when given, replaces bound.atol element-wise (oracle checks scale it by operand magnitude).
    Finite float32/float64 operands (nearly always) go through one compiled pass (`_diff_kernel`); the
    rest, and every case without numba, through the element-wise `diff_general`. Both give the same
    result (tests/test_compare.py checks them on the same inputs).
    """
    b = np.atleast_1d(np.asarray(b))
    a = np.asarray(a).reshape(b.shape)
    if not AVAILABLE or dtype == "float16" or a.size == 0 or a.dtype == np.float16 or b.dtype == np.float16:
        return diff_general(a, b, dtype, bound, atol)
    fa, fb = np.ravel(a), np.ravel(b)
    per_element = _NO_ARRAY if atol is None else np.ravel(np.broadcast_to(atol, b.shape)).astype(np.float64, copy=False)
    fbuf, ibuf, mask = buffers(dtype)
    finite, acc = _diff_kernel(fa, fb, fbuf, ibuf, mask, per_element, float(bound.atol), float(bound.rtol),
                               ulp_limit(bound))
    if not finite:
        return diff_general(a, b, dtype, bound, atol)
    return metrics(acc, b.shape, fa.__getitem__, fb.__getitem__)


def diff_general(a: np.ndarray, b: np.ndarray, dtype: str, bound: Bound,
                 atol: np.ndarray | None = None) -> dict[str, Any]:
    """`diff` for any operands, non-finite ones included: every metric element-wise in float64."""
    b64 = np.atleast_1d(np.asarray(b, dtype=np.float64))
    a64 = np.asarray(a, dtype=np.float64).reshape(b64.shape)
    nan_a, nan_b = np.isnan(a64), np.isnan(b64)
    agree = (nan_a & nan_b) | (np.isinf(a64) & (a64 == b64))
    mismatch_nonfinite = ~agree & ~(np.isfinite(a64) & np.isfinite(b64))
    with np.errstate(invalid="ignore", over="ignore"):
        absd = np.abs(a64 - b64)
        scale = np.maximum(np.abs(a64), np.abs(b64))
        rel = np.divide(absd, scale, out=np.zeros_like(absd), where=scale > 0)
    ulp = ulp_distance(a64, b64, dtype)
    for arr in (absd, rel, ulp):
        arr[agree] = 0.0
        arr[mismatch_nonfinite] = np.inf
    within = absd <= (bound.atol if atol is None else atol) + bound.rtol * np.nan_to_num(scale, posinf=0.0)
    if bound.ulp is not None:
        within |= ulp <= bound.ulp
    within &= ~mismatch_nonfinite
    bad = int(absd.size - np.count_nonzero(within))
    if absd.size == 0:
        return {"abs": 0.0, "rel": 0.0, "ulp": 0.0, "at": [], "a": None, "b": None, "bad": 0}
    ranking = np.where(within, -1.0, absd) if bad else absd
    flat = int(np.argmax(ranking))
    index = [int(i) for i in np.unravel_index(flat, absd.shape)]
    return {"abs": float(absd.max()), "rel": float(rel.max()), "ulp": float(ulp.max()), "at": index,
            "a": float(a64.flat[flat]), "b": float(b64.flat[flat]), "bad": bad}


@jit(reassociate=True)
def _nonfinite_sum(x):  # pragma: no cover - compiled
    """Sum of x[i] * 0: 0 when every element is finite, NaN as soon as one is not (inf * 0 and NaN * 0
    are NaN, and NaN stays NaN in any order: the sum may be reordered into SIMD lanes)."""
    acc = x[0] * 0
    for i in range(x.size):
        acc += x[i] * 0
    return acc


def nonfinite(arr: np.ndarray) -> bool:
    """Whether any element is NaN or Inf (compiled: one vectorised pass)."""
    if AVAILABLE and arr.size and arr.dtype != np.float16:
        return bool(_nonfinite_sum(np.ravel(arr)) != 0)
    return not bool(np.isfinite(arr).all())


def worst(entries: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The tensor that decides a quantity: the first outside its bound, else the largest abs difference."""
    if not entries:
        return None
    return max(entries.items(), key=lambda kv: (kv[1]["bad"] > 0, kv[1]["abs"]))


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    return f"{x:.9g}"
