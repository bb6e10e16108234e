"""Element-wise divergence between two arrays: max abs, rel and ULP, the worst element, the bound.

Computed once per tensor per step; every consumer (verdict, JSONL, pytest message, report) reads the
resulting dict and never recomputes. NaN/Inf rules, stated once:
- NaN vs NaN at the same element, and the same infinity on both sides, agree (difference 0);
- NaN vs a number, or Inf vs anything else, is an infinite difference (abs = rel = ulp = inf).
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from conformance.cases.case import Bound
from conformance.numerics.compiled import AVAILABLE, jit

if AVAILABLE:
    from conformance.numerics.compiled import float32_bits, float64_bits

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


_NONFINITE_BITS = 0x7FF0000000000000  # float64 +inf; any NaN or inf maximum has a pattern >= it


@jit(inline=True)
def case_bits(value, wide):  # pragma: no cover - compiled
    """`value` rounded to the case dtype (float64 if `wide`, else float32; overflow gives inf, as in
    NumPy), as its bit pattern widened to int64 (sign-extended)."""
    if wide:
        return float64_bits(np.float64(value))
    return np.int64(float32_bits(np.float32(value)))


@jit(inline=True)
def element(x, y, bx, by, mask, limit, rtol, ulp_bound):  # pragma: no cover - compiled
    """One element's abs, rel and ULP difference, and whether it is outside the bound (abs <= limit +
    rtol * max(|x|,|y|), or ULP <= ulp_bound when that is >= 0). x, y in float64; bx, by their bit
    patterns in the case dtype. Element by element this is diff_general's float64 arithmetic; written
    without branches on the data, so the loops that call it compile to SIMD."""
    d = abs(x - y)
    s = max(abs(x), abs(y))
    r = d / s if s > 0.0 else 0.0
    sa, sb = bx >> 63, by >> 63  # sign-magnitude -> ordered integers (+0 and -0 both 0)
    oa, ob = (bx ^ (sa & mask)) - sa, (by ^ (sb & mask)) - sb
    e = np.float64(abs(oa - ob)) if (oa >= 0) == (ob >= 0) else np.float64(abs(oa)) + np.float64(abs(ob))
    inside = (d <= limit + rtol * s) | ((ulp_bound >= 0.0) & (e <= ulp_bound))
    return d, r, e, not inside


@jit
def element_called(x, y, bx, by, mask, limit, rtol, ulp_bound):  # pragma: no cover - compiled
    """`element` compiled as a function of its own, for loops that need no SIMD (an early-exit scan of
    one block): a call there compiles once, where inlining it into every such loop re-typed its body."""
    return element(x, y, bx, by, mask, limit, rtol, ulp_bound)


BLOCK = 4096  # elements per block of the SIMD pass: the worst element is then looked for in one block


@jit
def _diff_reduce(a, b, wide, mask, atol_arr, atol, rtol, ulp_bound, block_top, block_worst):  # pragma: no cover
    """Maxima of abs, rel, ULP (as float64 bit patterns) and the count outside the bound, in one SIMD
    pass; per block of BLOCK elements it also records the largest abs difference, overall and among
    the elements outside the bound (-1: none), so that the worst element is then found in one block."""
    top, rel, ulp, bad = 0, 0, 0, 0
    per_element = atol_arr.size > 0
    for k in range(block_top.size):
        block, worst = 0, -1
        lo = k * BLOCK  # the block as slices: indexed from 0, numba knows i >= 0 and drops its per-element
        ka, kb = a[lo:lo + BLOCK], b[lo:lo + BLOCK]  # negative-index check (range(lo, hi): 2.4 vs 1.3 ms at 1M)
        ke = atol_arr[lo:lo + BLOCK] if per_element else atol_arr
        for i in range(ka.size):
            d, r, e, out = element(np.float64(ka[i]), np.float64(kb[i]), case_bits(ka[i], wide),
                                   case_bits(kb[i], wide), mask, ke[i] if per_element else atol, rtol, ulp_bound)
            bits = float64_bits(d)
            block, rel, ulp = max(block, bits), max(rel, float64_bits(r)), max(ulp, float64_bits(e))
            worst = max(worst, bits if out else -1)
            bad += out
        block_top[k], block_worst[k] = block, worst
        top = max(top, block)
    return top, rel, ulp, bad


@jit
def _diff_at(a, b, wide, mask, atol_arr, atol, rtol, ulp_bound, lo, target, outside):  # pragma: no cover
    """The first element from `lo` whose abs difference has the bit pattern `target` (and, if `outside`,
    that is outside the bound): the element a message names."""
    per_element = atol_arr.size > 0
    for i in range(lo, a.size):
        d, r, e, out = element(np.float64(a[i]), np.float64(b[i]), case_bits(a[i], wide), case_bits(b[i], wide),
                               mask, atol_arr[i] if per_element else atol, rtol, ulp_bound)
        if float64_bits(d) == target and (out or not outside):
            return i
    return -1


def worst_start(block_top: np.ndarray, block_worst: np.ndarray, bad: int) -> tuple[int, int]:
    """(first element of the block holding the worst element, that element's abs bit pattern): the worst
    among those outside the bound if any, else the largest overall; the first such block on ties."""
    blocks = block_worst if bad else block_top
    k = int(np.argmax(blocks))
    return k * BLOCK, int(blocks[k])


_INT64, _FLOAT64 = struct.Struct("<q"), struct.Struct("<d")


def as_float(bits: int) -> float:
    """A float64 from its bit pattern (the compiled passes return maxima as patterns); struct, not a
    NumPy view: called ~10 times per compared tensor and step, a tenth of the cost."""
    return _FLOAT64.unpack(_INT64.pack(int(bits)))[0]


def finite_maxima(top: int) -> bool:
    """Whether a pass saw only finite values: a NaN or Inf anywhere makes the abs maximum one."""
    return top < _NONFINITE_BITS


def dtype_args(dtype: str) -> tuple[bool, int]:
    """What the compiled passes need of the case dtype: (float64?, sign mask)."""
    return dtype == "float64", _SIGN_MASK[dtype]


def ulp_limit(bound: Bound) -> float:
    return _NO_ULP_BOUND if bound.ulp is None else float(bound.ulp)


def metrics(maxima: tuple[float, float, float, int], flat: int, shape: tuple[int, ...], a: float,
            b: float) -> dict[str, Any]:
    """diff's dict from a compiled pass's maxima (abs, rel, ulp), bad count and worst element."""
    top, rel, ulp, bad = maxima
    index = [flat] if len(shape) <= 1 else [int(i) for i in np.unravel_index(flat, shape)]
    return {"abs": float(top), "rel": float(rel), "ulp": float(ulp), "at": index, "a": float(a), "b": float(b),
            "bad": int(bad)}


def diff(a: np.ndarray, b: np.ndarray, dtype: str, bound: Bound, atol: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of a vs b (compare's, without its finiteness)."""
    return compare(a, b, dtype, bound, atol)[0]


def compare(a: np.ndarray, b: np.ndarray, dtype: str, bound: Bound,
            atol: np.ndarray | None = None) -> tuple[dict[str, Any], bool]:
    """Metrics of a vs b, and whether every element of both operands is finite. `bad` counts elements
    outside the bound; `at`, `a`, `b` name the worst one (the largest abs difference among the elements
    outside the bound, else overall; first on ties).

    The finiteness comes free with the compiled pass (|a - b| is NaN or Inf wherever a or b is, so a finite
    maximum proves both finite) and spares the caller its own NaN/Inf scan of each operand (twelve 1M
    scans a step at 1M parameters); False means "not proven" (the element-wise path), not "non-finite".

    `atol`, when given, replaces bound.atol element-wise (oracle checks scale it by operand magnitude).
    Finite float32/float64 operands (nearly always) take two compiled passes, one SIMD pass for the
    maxima and count and one (early-exit) for the worst element; the rest, and every case without
    numba, the element-wise `diff_general`. Both give the same result (tests/numerics/test_compare.py).
    """
    b = np.atleast_1d(np.asarray(b))
    a = np.asarray(a).reshape(b.shape)
    if not AVAILABLE or dtype == "float16" or a.size == 0 or a.dtype == np.float16 or b.dtype == np.float16:
        return diff_general(a, b, dtype, bound, atol), False
    fa, fb = a.reshape(-1), b.reshape(-1)  # views of contiguous arrays, as np.ravel, without its wrapper
    per_element = _NO_ARRAY if atol is None else np.ravel(np.broadcast_to(atol, b.shape)).astype(np.float64, copy=False)
    args = (*dtype_args(dtype), per_element, float(bound.atol), float(bound.rtol), ulp_limit(bound))
    blocks = -(-fa.size // BLOCK)
    block_top, block_worst = np.empty(blocks, np.int64), np.empty(blocks, np.int64)
    maxima = _diff_reduce(fa, fb, *args, block_top, block_worst)
    if not finite_maxima(maxima[0]):
        return diff_general(a, b, dtype, bound, atol), False
    lo, target = worst_start(block_top, block_worst, maxima[3])
    flat = _diff_at(fa, fb, *args, lo, target, maxima[3] > 0)
    top, rel, ulp, bad = maxima
    return metrics((as_float(top), as_float(rel), as_float(ulp), bad), flat, b.shape, fa[flat], fb[flat]), True


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
        return bool(_nonfinite_sum(arr.reshape(-1)) != 0)
    return not bool(np.isfinite(arr).all())


def worst(entries: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The tensor that decides a quantity: the first outside its bound, else the largest abs difference."""
    if not entries:
        return None
    return max(entries.items(), key=lambda kv: (kv[1]["bad"] > 0, kv[1]["abs"]))




# msprobe's comparison metrics (Ascend mstt, debug/accuracy_tools/msprobe: core/compare/npy_compare.py for
# the definitions, its 10.accuracy_compare_PyTorch.md section 3 for the criteria), so a MindSpore user
# reads a result in the terms msprobe's compare reports. Its bench is PyTorch (the reference its
# cross-framework compare measures MindSpore against): relative errors divide by the bench's value.
MSPROBE_EPSILON = float(np.finfo(np.float64).eps)  # msprobe's Const.FLOAT_EPSILON: added where the bench is 0
MSPROBE_COSINE = 0.99  # its published acceptable values: cosine above this ...
MSPROBE_MAX_ABS = 0.001  # ... and max abs error below this
MSPROBE_RATIOS = {"one_thousandth": 0.001, "five_thousandths": 0.005}  # share of elements with rel below


def _msprobe_cosine(bench: np.ndarray, tested: np.ndarray) -> tuple[float | None, str | None]:
    """msprobe's cosine similarity of two flat float64 arrays, or None and why it has none."""
    if bench.size == 1:
        return None, "one element: msprobe computes no cosine"
    nb, nt = float(np.linalg.norm(bench)), float(np.linalg.norm(tested))
    if nb <= MSPROBE_EPSILON and nt <= MSPROBE_EPSILON:
        return 1.0, None
    if nb <= MSPROBE_EPSILON or nt <= MSPROBE_EPSILON:
        return None, "all zero on one side: msprobe computes no cosine"
    return float(np.dot(bench, tested) / (nb * nt)), None


def msprobe(bench: np.ndarray, tested: np.ndarray) -> dict[str, Any]:
    """msprobe's metrics of `tested` against `bench` (cosine, max_abs, max_rel, one_thousandth,
    five_thousandths), `passes` (cosine > MSPROBE_COSINE and max_abs < MSPROBE_MAX_ABS, None where msprobe
    has no cosine) and `accuracy_reached`, its "Accuracy Reached or Not" column: "No" when cosine < 0.99
    and max abs > 0.001, or cosine < 0.9, or max abs > 1, or NaN/Inf at different positions; else "Yes"
    (None without a cosine). NaN/Inf at the same positions on both sides count as 0 there, as msprobe does."""
    b = np.array(bench, dtype=np.float64).ravel()
    t = np.array(tested, dtype=np.float64).reshape(-1)
    special_b, special_t = (np.isnan(b), np.isinf(b)), (np.isnan(t), np.isinf(t))
    if any(x.any() for x in (*special_b, *special_t)):
        if not all(np.array_equal(x, y) for x, y in zip(special_b, special_t)):
            return {"cosine": None, "max_abs": None, "max_rel": None, "one_thousandth": None,
                    "five_thousandths": None, "passes": False, "accuracy_reached": "No",
                    "note": "NaN or Inf at different positions: msprobe reports N/A"}
        b[special_b[0] | special_b[1]] = 0.0
        t[special_t[0] | special_t[1]] = 0.0
    zero = b == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs((np.where(zero, t + MSPROBE_EPSILON, t) - np.where(zero, MSPROBE_EPSILON, b))
                     / np.where(zero, MSPROBE_EPSILON, b))
    cosine, note = _msprobe_cosine(b, t)
    max_abs = float(np.max(np.abs(t - b))) if b.size else 0.0
    out: dict[str, Any] = {"cosine": cosine, "max_abs": max_abs, "max_rel": float(rel.max()) if b.size else 0.0,
                           **{k: float(np.mean(rel < v)) if b.size else 1.0 for k, v in MSPROBE_RATIOS.items()}}
    if cosine is None:
        out.update(passes=None, accuracy_reached=None, note=note)
    else:
        out["passes"] = cosine > MSPROBE_COSINE and max_abs < MSPROBE_MAX_ABS
        failed = (cosine < MSPROBE_COSINE and max_abs > MSPROBE_MAX_ABS) or cosine < 0.9 or max_abs > 1.0
        out["accuracy_reached"] = "No" if failed else "Yes"
    return out


def msprobe_summary(tensors: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One quantity's msprobe figures over its tensors: the lowest cosine and ratios, the largest errors;
    it passes when every tensor msprobe can judge passes, and reaches accuracy unless one does not."""
    def pick(key: str, best: Any) -> float | None:
        values = [m[key] for m in tensors.values() if m[key] is not None]
        return best(values) if values else None

    judged = [m["passes"] for m in tensors.values() if m["passes"] is not None]
    reached = [m["accuracy_reached"] for m in tensors.values() if m["accuracy_reached"] is not None]
    return {"cosine": pick("cosine", min), "max_abs": pick("max_abs", max), "max_rel": pick("max_rel", max),
            "one_thousandth": pick("one_thousandth", min), "five_thousandths": pick("five_thousandths", min),
            "passes": all(judged) if judged else None,
            "accuracy_reached": ("No" if "No" in reached else "Yes") if reached else None, "tensors": tensors}
