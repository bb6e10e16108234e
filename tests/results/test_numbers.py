"""NaN and Inf: defined comparisons, first non-finite step per side, and verdicts that say "NaN" rather
than report an infinite distance. Real frameworks where a real overflow is needed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conformance.cases.case import Bound, Item, Tolerance
from conformance.numerics.diff import diff
from conformance.results.verdict import PairTracker, judge
from tests.conftest import load_case, needs_frameworks


@pytest.mark.parametrize("a, b, agree", [
    (np.nan, np.nan, True), (np.inf, np.inf, True), (-np.inf, -np.inf, True),
    (np.nan, 1.0, False), (1.0, np.nan, False), (np.nan, np.inf, False), (np.inf, -np.inf, False),
    (np.inf, 3.0e38, False), (np.nan, 0.0, False),
])
def test_nonfinite_rules_hold_under_any_bound(a, b, agree):
    """The documented rules (compare.py) with the loosest bounds: a mismatch stays outside them."""
    loose = Bound(atol=1e300, rtol=1e300, ulp=1e300)
    metrics = diff(np.array([a]), np.array([b]), "float32", loose)
    assert metrics["bad"] == (0 if agree else 1)
    assert metrics["abs"] == (0.0 if agree else np.inf)


def _tracker() -> PairTracker:
    bound = Bound(atol=1e-6)
    return PairTracker("torch~mindspore", "primary", "diverge", Tolerance(bound, bound, bound))


@pytest.mark.parametrize("a, b, side", [(0.5, np.nan, "mindspore"), (np.inf, 0.5, "torch"), (0.5, 0.7, None)])
def test_tracker_names_the_side_that_went_nonfinite(a, b, side):
    tracker = _tracker()
    tracker.update(1, {"params": {"w": diff(np.array([0.5]), np.array([0.5]), "float32", Bound())}})
    tracker.update(2, {"params": {"w": diff(np.array([a]), np.array([b]), "float32", Bound(atol=1e-6))}})
    assert tracker.first["step"] == 2 and tracker.first["nonfinite"] == side
    assert tracker.observed == ("nonfinite" if side else "diverge")


@needs_frameworks
def test_expected_divergence_that_turns_into_nan_is_reported_as_nan(tmp_path):
    """MindSpore divides gradients by loss_scale; 1e-37 overflows float32 to inf, and inf/inf is NaN.
    torch ignores loss_scale and stays finite. The case claims a divergence: what happened is a NaN."""
    case = load_case(tmp_path, """
  - id: overflow
    model: {kind: linear, in: 2, out: 3}
    gradients: {mode: replay, seed: 4, scale: 100.0}
    optimizer: {lr: 0.002, mindspore: {loss_scale: 1.0e-37}}
    steps: 3
    devices: [cpu]
    expect: diverge
    cause: loss_scale_division
    reason: MindSpore divides gradients by loss_scale
""")
    entry = run_item_cpu(case, tmp_path)
    assert entry["observed"] == "nonfinite" and entry["outcome"] == "failed"
    assert entry["first_divergence"]["nonfinite"] == "mindspore" and entry["first_divergent_step"] == 1
    assert entry["nonfinite"]["mindspore"]["params"] == 1 and entry["nonfinite"]["torch"]["params"] is None
    # float64 oracle does not overflow: the control pair fails first, and says why
    assert "mindspore went NaN/Inf where its own formula in float64 stays finite" in entry["message"]
    assert "mindspore became nan here while oracle stayed finite" in entry["message"]
    assert "abs=inf" not in entry["message"]


def run_item_cpu(case, tmp_path: Path) -> dict:
    from conformance.engine.runner import (
        run_item,  # imports the adapters, not the frameworks
    )

    return run_item(Item(case, "cpu", case.dtypes[0]), tmp_path / "steps")


@needs_frameworks
def test_nonfinite_is_recorded_per_side_with_its_first_step(tmp_path):
    """Weights initialised beyond float32's range: inf from the start, loss and state follow."""
    case = load_case(tmp_path, """
  - id: inf_init
    model: {kind: linear, in: 2, out: 3, init_scale: 1.0e39}
    steps: 2
    devices: [cpu]
""")
    entry = run_item_cpu(case, tmp_path)
    for side in ("torch", "mindspore"):
        assert entry["nonfinite"][side]["params"] == 1, entry["nonfinite"]
        assert entry["nonfinite"][side]["loss"] == 1, entry["nonfinite"]


def test_judge_says_nonfinite_not_a_distance(tmp_path):
    case = load_case(tmp_path, """
  - id: claimed
    model: {kind: linear}
    steps: 2
    expect: diverge
    cause: eps_placement
    reason: eps placement
""")
    tracker = _tracker()
    tracker.update(1, {"params": {"w": diff(np.array([0.5, 1.0]), np.array([0.5, np.nan]), "float32", Bound())}})
    entry = judge(Item(case, "cpu", "float32"), {tracker.label: tracker}, {}, {}, None, tmp_path / "x.jsonl", 0.0)
    assert (entry["observed"], entry["outcome"]) == ("nonfinite", "failed")
    assert entry["message"].splitlines()[:3] == [
        "cases/c.yaml:3: case 'claimed' [cpu-float32]: expected diverge (eps placement), observed nonfinite "
        "(torch~mindspore)",
        "  first divergent step 1: params tensor w element [1]: torch=1 mindspore=nan",
        "  mindspore became nan here while torch stayed finite (an overflow or 0/0 on one side, not a finite "
        "difference)"]
