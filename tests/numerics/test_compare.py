"""The comparator's arithmetic: ULP distance, NaN/Inf rules, the bound, the worst element."""
from __future__ import annotations

import numpy as np
import pytest

from conformance.cases.case import Bound
from conformance.numerics.diff import BLOCK, compare, diff, diff_general, ulp_distance

pytestmark = pytest.mark.torch_only


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_ulp_distance_counts_representable_steps(dtype):
    x = np.array([1.0, -2.5, 1e-3], dtype=dtype)
    y = x
    for _ in range(3):
        y = np.nextafter(y, np.array(np.inf, dtype=dtype))
    assert ulp_distance(x, y, dtype).tolist() == [3.0, 3.0, 3.0]


def test_ulp_distance_across_zero_and_signed_zero():
    tiny = np.nextafter(np.float32(0), np.float32(1))
    assert ulp_distance(np.float32(-tiny), np.float32(tiny), "float32") == 2.0
    assert ulp_distance(np.float32(-0.0), np.float32(0.0), "float32") == 0.0


def test_ulp_distance_float64_is_exact_for_large_values():
    x = np.array([1e300])
    assert ulp_distance(x, np.nextafter(x, np.inf), "float64").tolist() == [1.0]


def test_diff_names_worst_element_and_counts_outside():
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    b = a.copy()
    b[1, 0] = 3.5
    m = diff(a, b, "float32", Bound(atol=1e-3))
    assert m["at"] == [1, 0] and m["a"] == 3.0 and m["b"] == 3.5
    assert m["bad"] == 1 and m["abs"] == pytest.approx(0.5) and m["rel"] == pytest.approx(0.5 / 3.5)


def test_diff_either_abs_or_ulp_bound_accepts():
    a = np.array([1e-30, 1.0], dtype=np.float32)
    b = np.array([2e-30, np.nextafter(np.float32(1.0), np.float32(2.0))], dtype=np.float32)
    assert diff(a, b, "float32", Bound(atol=1e-20))["bad"] == 1  # the 1-ULP pair exceeds atol
    assert diff(a, b, "float32", Bound(atol=1e-20, ulp=1))["bad"] == 0


def test_nan_rules():
    a = np.array([np.nan, np.nan, np.inf, 1.0])
    b = np.array([np.nan, 1.0, np.inf, -np.inf])
    m = diff(a, b, "float64", Bound(atol=1.0))
    assert m["bad"] == 2  # NaN vs number, number vs -inf
    assert m["abs"] == np.inf and m["ulp"] == np.inf
    same = diff(np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), "float64", Bound())
    assert same["bad"] == 0 and same["abs"] == 0.0


def test_elementwise_atol_overrides_scalar():
    a, b = np.array([1.0, 100.0]), np.array([1.1, 100.1])
    assert diff(a, b, "float64", Bound(atol=0.0), atol=np.array([0.2, 0.0]))["bad"] == 1


_BOUNDS = [Bound(atol=2.5e-7), Bound(ulp=4), Bound(atol=1e-6, rtol=1e-3), Bound(atol=8.0, ulp=8), Bound()]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("bound", _BOUNDS, ids=str)
def test_fast_diff_equals_general_diff(dtype, bound):
    """The finite-operand path must report exactly what the element-wise float64 path reports."""
    rng = np.random.default_rng(7)
    for trial in range(20):
        size = int(rng.integers(1, 300)) + (3 * BLOCK if trial % 5 == 4 else 0)  # some across blocks
        a = (rng.standard_normal(size) * 10.0 ** rng.integers(-8, 3)).astype(dtype)
        noise = rng.standard_normal(size) * 10.0 ** rng.integers(-9, 0)
        b = (a + noise).astype(dtype) if trial % 2 else a.astype(np.float64) + noise  # framework or oracle
        a[rng.integers(0, size, 3)] = 0.0  # zeros and sign flips: ULP distance across zero
        if trial % 3 == 0:
            b = -b
        atol = None if trial % 4 else np.abs(b) * 1e-6
        assert diff(a, b, dtype, bound, atol) == diff_general(a, b, dtype, bound, atol)


def test_fast_diff_falls_back_for_nonfinite():
    a, b = np.array([1.0, np.nan], dtype=np.float32), np.array([1.0, 2.0], dtype=np.float32)
    fast = diff(a, b, "float32", Bound())
    assert repr(fast) == repr(diff_general(a, b, "float32", Bound()))  # repr: nan == nan
    assert fast["ulp"] == np.inf and fast["bad"] == 1


def test_worst_element_is_found_in_a_later_and_a_partial_block():
    a = np.zeros(2 * BLOCK + 5, dtype=np.float32)
    for at in (BLOCK + 7, 2 * BLOCK + 4):
        b = a.copy()
        b[[3, at]] = [1e-4, 2e-4]
        m = diff(a, b, "float32", Bound(atol=1e-3))
        assert m["at"] == [at] and m["bad"] == 0
        m = diff(a, b, "float32", Bound(atol=1.5e-4))
        assert m["at"] == [at] and m["bad"] == 1 and m["b"] == np.float32(2e-4)


def test_compare_proves_finiteness_only_where_it_can():
    """The runner skips its own NaN/Inf scan of an array a comparison proved finite: True must mean both
    operands are finite; anything unproven is False."""
    a = np.linspace(-1.0, 1.0, BLOCK + 3).astype(np.float32)
    assert compare(a, a * 1.5, "float32", Bound())[1] is True
    for bad in (np.nan, np.inf):
        for left in (True, False):
            b = a.copy()
            b[BLOCK + 1] = bad
            metrics, finite = compare(b, a, "float32", Bound()) if left else compare(a, b, "float32", Bound())
            assert finite is False and metrics["bad"] == 1
    both = a.copy()
    both[5] = np.nan
    assert compare(both, both.copy(), "float32", Bound()) == (diff_general(both, both, "float32", Bound()), False)
    assert compare(a.astype(np.float16), a.astype(np.float16), "float16", Bound())[1] is False


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diff_ulp_across_signs_zeros_and_extremes_equals_reference(dtype):
    """The compiled pass's ULP arithmetic on the awkward bit patterns: signed zeros, sign flips,
    subnormals and the largest magnitudes (whose distance across zero exceeds int64 for float64)."""
    rng = np.random.default_rng(3)
    info = np.finfo(dtype)
    a = (rng.standard_normal(2000) * 10.0 ** rng.integers(-6, 3, 2000)).astype(dtype)
    b = np.where(rng.random(2000) < 0.3, -a, np.nextafter(a, np.array(np.inf, dtype=dtype))).astype(dtype)
    a[:6] = [0.0, -0.0, 0.0, -1e-3, info.max, info.smallest_subnormal]
    b[:6] = [-0.0, 0.0, 1e-3, 1e-3, -info.max / 2, -info.smallest_subnormal]
    for bound in (Bound(ulp=3), Bound(atol=1e-3)):
        fast = diff(a, b, dtype, bound)
        assert fast == diff_general(a, b, dtype, bound)
        assert fast["ulp"] == ulp_distance(a, b, dtype).max()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_nonfinite_finds_one_bad_element_anywhere(dtype):
    from conformance.numerics.diff import nonfinite

    a = np.linspace(-1e4, 1e4, 1001).astype(dtype)
    assert not nonfinite(a) and not nonfinite(a[:0])
    for bad in (np.nan, np.inf, -np.inf):
        for at in (0, 500, 1000):
            b = a.copy()
            b[at] = bad
            assert nonfinite(b)
