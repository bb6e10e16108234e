"""diff.msprobe: msprobe's compare metrics and criteria, each against a value worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conformance.numerics.diff import MSPROBE_EPSILON, msprobe, msprobe_summary

pytestmark = pytest.mark.torch_only  # NumPy only


def test_identical_tensors_pass_with_cosine_one_and_no_error():
    a = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    got = msprobe(a, a.copy())
    assert got == {"cosine": pytest.approx(1.0), "max_abs": 0.0, "max_rel": 0.0, "one_thousandth": 1.0,
                   "five_thousandths": 1.0, "passes": True, "accuracy_reached": "Yes"}


def test_metrics_divide_by_the_bench_and_count_elements_under_each_relative_error():
    bench = np.array([1.0, 2.0, 4.0, 10.0])
    tested = np.array([1.0005, 2.0, 4.01, 10.0])  # rel 5e-4, 0, 2.5e-3, 0
    got = msprobe(bench, tested)
    assert got["max_abs"] == pytest.approx(0.01) and got["max_rel"] == pytest.approx(0.0025)
    assert got["one_thousandth"] == 0.75 and got["five_thousandths"] == 1.0
    cosine = float(bench @ tested / (np.linalg.norm(bench) * np.linalg.norm(tested)))
    assert got["cosine"] == pytest.approx(cosine)
    assert got["passes"] is False  # max abs 0.01 is not below 0.001 ...
    assert got["accuracy_reached"] == "Yes"  # ... but msprobe's column says No only with cosine < 0.99 as well


def test_a_zero_bench_element_gets_msprobe_epsilon_on_both_sides():
    got = msprobe(np.array([0.0, 1.0]), np.array([1e-10, 1.0]))
    assert got["max_rel"] == pytest.approx(1e-10 / MSPROBE_EPSILON)


def test_criteria_thresholds():
    bench = np.array([1.0, 0.0])
    rotated = np.array([math.cos(0.2), math.sin(0.2)])  # cosine 0.980 < 0.99, max abs 0.199
    assert msprobe(bench, rotated)["passes"] is False and msprobe(bench, rotated)["accuracy_reached"] == "No"
    far = np.array([0.0, 1.0])  # cosine 0 < 0.9
    assert msprobe(bench, far)["accuracy_reached"] == "No"
    big = np.array([1000.0, 1000.0])
    assert msprobe(big, big + 2.0)["accuracy_reached"] == "No"  # max abs 2 > 1 with cosine 1


def test_what_msprobe_cannot_compute():
    one = msprobe(np.array([1.0]), np.array([1.5]))
    assert one["cosine"] is None and one["passes"] is None and "one element" in one["note"]
    assert one["max_abs"] == 0.5
    zero = msprobe(np.zeros(3), np.array([0.0, 1.0, 0.0]))
    assert zero["cosine"] is None and "all zero on one side" in zero["note"]
    assert msprobe(np.zeros(3), np.zeros(3))["cosine"] == 1.0


def test_nan_and_inf_at_the_same_positions_count_as_zero_elsewhere_not():
    same = msprobe(np.array([np.nan, 1.0, np.inf]), np.array([np.nan, 1.0, np.inf]))
    assert same["passes"] is True and same["max_abs"] == 0.0
    moved = msprobe(np.array([np.nan, 1.0]), np.array([1.0, np.nan]))
    assert moved["cosine"] is None and moved["passes"] is False and moved["accuracy_reached"] == "No"


def test_summary_takes_the_worst_tensor_and_passes_only_when_all_judged_tensors_do():
    good = msprobe(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    bad = msprobe(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    single = msprobe(np.array([1.0]), np.array([1.0]))
    got = msprobe_summary({"w": good, "b": bad, "s": single})
    assert got["cosine"] == pytest.approx(0.0) and got["max_abs"] == 1.0 and got["passes"] is False
    assert got["accuracy_reached"] == "No" and set(got["tensors"]) == {"w", "b", "s"}
    assert msprobe_summary({"w": good, "s": single})["passes"] is True
    assert msprobe_summary({"s": single})["passes"] is None
