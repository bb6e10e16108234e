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

_INT = {"float16": np.int16, "float32": np.int32, "float64": np.int64}
_SIGN_MASK = {"float16": 0x7FFF, "float32": 0x7FFFFFFF, "float64": 0x7FFFFFFFFFFFFFFF}


def _ordered(x: np.ndarray, dtype: str) -> np.ndarray:
    """x rounded to dtype, as integers ordered like the values (+0 and -0 both 0); branch-free."""
    ix = np.asarray(x, dtype=dtype).view(_INT[dtype])
    flat = ix.reshape(-1)  # 1-d, so the in-place steps below also work for 0-d input
    sign = flat >> (flat.itemsize * 8 - 1)  # -1 where negative, else 0
    out = np.bitwise_and(sign, _INT[dtype](_SIGN_MASK[dtype]))
    np.bitwise_xor(out, flat, out=out)  # negative: -magnitude - 1
    np.subtract(out, sign, out=out)
    return out.reshape(ix.shape)


def _signed_ulp(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """int64 whose magnitude is the ULP distance (float16/float32: at most 2**32, exact).

    Where the signs agree, the raw bit patterns differ by exactly the ULP distance (sign-magnitude),
    so only the (few) elements whose signs differ need the ordered mapping.
    """
    shape = np.shape(a)
    fa, fb = (np.asarray(x, dtype=dtype).reshape(-1) for x in (a, b))
    ia, ib = fa.view(_INT[dtype]), fb.view(_INT[dtype])
    out = np.subtract(ia, ib, dtype=np.int64)
    cross = np.flatnonzero(np.bitwise_xor(ia, ib) < 0)
    if cross.size:
        out[cross] = np.subtract(_ordered(fa[cross], dtype), _ordered(fb[cross], dtype), dtype=np.int64)
    return out.reshape(shape)


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """Number of representable `dtype` values between a and b (both rounded to dtype), as float64.

    The element-wise reference (diff_general uses it); `diff`'s fast path uses `_signed_ulp`.
    """
    with np.errstate(over="ignore"):  # a float64 value beyond the dtype's range rounds to inf, as intended
        ia = np.asarray(a, dtype=dtype).view(_INT[dtype]).astype(np.int64)
        ib = np.asarray(b, dtype=dtype).view(_INT[dtype]).astype(np.int64)
    mask = _SIGN_MASK[dtype]
    oa = np.where(ia < 0, -(ia & mask), ia)  # sign-magnitude -> ordered integers; +0 and -0 both 0
    ob = np.where(ib < 0, -(ib & mask), ib)
    same_sign = (oa >= 0) == (ob >= 0)
    with np.errstate(over="ignore"):
        exact = np.abs(oa - ob).astype(np.float64)  # exact where the signs agree
    across = np.abs(oa).astype(np.float64) + np.abs(ob).astype(np.float64)  # may exceed int64
    return np.where(same_sign, exact, across)


def diff(a: np.ndarray, b: np.ndarray, dtype: str, bound: Bound, atol: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of a vs b. `bad` counts elements outside the bound; `at`, `a`, `b` name the worst one.

    `atol`, when given, replaces bound.atol element-wise (oracle checks scale it by operand magnitude).
    Finite operands (nearly always) take a path that reads each array a few times and builds no
    element-wise ULP array unless the maxima cannot settle the bound; the result is identical to
    `diff_general`'s (tests/test_compare.py checks both on the same inputs).
    """
    b = np.atleast_1d(np.asarray(b))
    a = np.asarray(a).reshape(b.shape)
    if a.size == 0:
        return diff_general(a, b, dtype, bound, atol)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite operands go to diff_general below
        absd = np.subtract(a, b, dtype=np.float64)  # casts chunk by chunk: no float64 copies of a and b
    np.abs(absd, out=absd)
    top = float(absd.max())  # NaN or inf anywhere (in a, b or the difference) shows here
    if not math.isfinite(top):
        return diff_general(a, b, dtype, bound, atol)
    scale = np.maximum(np.abs(a), np.abs(b))  # exact in the operands' own dtype
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = float(np.fmax.reduce(np.divide(absd, scale, dtype=np.float64), axis=None))  # fmax skips 0/0
    rel = 0.0 if math.isnan(rel) else rel
    signed = _signed_ulp(a, b, dtype) if dtype != "float64" else None
    ulp = (float(max(signed.max(), -signed.min())) if signed is not None
           else float(ulp_distance(a, b, dtype).max()))
    if (bound.ulp is not None and ulp <= bound.ulp) or (atol is None and top <= bound.atol):
        bad, within = 0, None  # every element is inside by its ULP, or by abs <= atol <= atol + rtol*scale
    else:
        limit = bound.atol if atol is None else atol
        if bound.rtol:  # with rtol 0 the term is exactly 0 (scale is finite here): skip the pass
            limit = limit + bound.rtol * scale.astype(np.float64)
        within = absd <= limit
        if bound.ulp is not None:
            within |= (np.abs(signed) if signed is not None else ulp_distance(a, b, dtype)) <= bound.ulp
        bad = int(absd.size - np.count_nonzero(within))
    flat = int(np.argmax(np.where(within, -1.0, absd) if bad else absd))
    index = [int(i) for i in np.unravel_index(flat, absd.shape)]
    return {"abs": top, "rel": rel, "ulp": ulp, "at": index,
            "a": float(a.flat[flat]), "b": float(b.flat[flat]), "bad": bad}


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


def nonfinite(arr: np.ndarray) -> bool:
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
