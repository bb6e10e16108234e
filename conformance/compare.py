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


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """Number of representable `dtype` values between a and b (both rounded to dtype), as float64."""
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
    """
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
