"""The `training` block of an entry: its gaps, and MindFormers' loss standard applied at its boundaries."""
from __future__ import annotations

import math

import pytest

from conformance.engine.training import LossGap
from conformance.results.entry import MINDFORMERS, MINDFORMERS_STANDARD, training_entry
from conformance.results.verdict import training_problem
from tests.conftest import load_case

pytestmark = pytest.mark.torch_only

CASE = """
  - id: real
    model: {kind: mlp, sizes: [64, 8, 10]}
    loss: cross_entropy
    data: {dataset: digits}
    steps: 3
"""


def _block(first=(2.0, 2.0), last=(0.5, 0.6), mean_abs=0.02, mean_rel=0.02, accuracy=(0.9, 0.85)):
    return training_entry("digits", 1000, "torch~mindspore", {"torch": last[0], "mindspore": last[1]},
                          {"torch": accuracy[0], "mindspore": accuracy[1]}, first, last, mean_abs, mean_rel, 359)


def test_gaps_are_absolute_and_relative_to_the_left_side():
    block = _block(first=(2.0, 2.004), last=(0.5, 0.6), accuracy=(0.9, 0.85))
    gap = block["loss_gap"]
    assert gap["first_abs"] == pytest.approx(0.004) and gap["first_rel"] == pytest.approx(0.002)
    assert gap["final_abs"] == pytest.approx(0.1) and block["accuracy_gap"] == pytest.approx(0.05)
    assert (block["dataset"], block["steps"], block["pair"], block["test_samples"]) == (
        "digits", 1000, "torch~mindspore", 359)
    assert block["mindformers"]["standard"] == MINDFORMERS_STANDARD
    assert block["mindformers"]["source"].startswith("https://www.mindspore.cn/mindformers/")


@pytest.mark.parametrize("first, mean_abs, mean_rel, first_ok, mean_ok", [
    ((2.0, 2.0049), 0.0099, 0.5, True, True),       # abs just inside both
    ((2.0, 2.0051), 0.0101, 0.0099, True, True),    # abs outside (0.0051, 0.0101), rel inside (0.26%, 0.99%)
    ((0.5, 0.5051), 0.0101, 0.0101, False, False),  # outside both ways
    ((10.0, 10.04), 0.05, 0.009, True, True),       # large losses: the relative bounds hold
])
def test_mindformers_standard_takes_either_bound(first, mean_abs, mean_rel, first_ok, mean_ok):
    block = _block(first=first, mean_abs=mean_abs, mean_rel=mean_rel)
    assert block["mindformers"]["first_loss_ok"] is first_ok
    assert block["mindformers"]["mean_loss_ok"] is mean_ok
    assert MINDFORMERS == {"first_abs": 0.005, "first_rel": 0.005, "mean_abs": 0.01, "mean_rel": 0.01}


def test_without_both_losses_nothing_is_judged():
    block = training_entry("digits", 0, "torch~mindspore", {"torch": 0.3}, {}, None, None, None, None, 359)
    assert block["loss_gap"] == dict.fromkeys(("first_abs", "first_rel", "mean_abs", "mean_rel", "final_abs"))
    assert block["accuracy_gap"] is None
    assert block["mindformers"]["first_loss_ok"] is None and block["mindformers"]["mean_loss_ok"] is None


def test_the_running_gap_is_the_mean_over_the_steps_both_sides_recorded(tmp_path):
    gap = LossGap(_item(tmp_path))
    for a, b in ((2.0, 2.5), (1.0, None), (1.0, 0.5)):
        gap.update({"torch": a, "mindspore": b})
    assert gap.steps == 2 and gap.first == (2.0, 2.5) and gap.last == (1.0, 0.5)
    assert gap.sum_abs / gap.steps == pytest.approx(0.5) and gap.sum_rel / gap.steps == pytest.approx((0.25 + 0.5) / 2)
    assert gap.final == {"torch": 1.0, "mindspore": 0.5}
    gap.update({"torch": 0.0, "mindspore": 0.0})  # equal zero losses: no gap, no 0/0
    assert not math.isnan(gap.sum_rel)


def _item(tmp_path, expect: str = "conform"):
    from conformance.cases.case import Item

    body = CASE + (f"    expect: {expect}\n    cause: default_lr\n    reason: r\n" if expect != "conform" else "")
    return Item(load_case(tmp_path, body), "cpu", "float32")


def test_a_conforming_item_must_meet_the_standard_and_the_message_names_its_numbers(tmp_path):
    item = _item(tmp_path)
    assert training_problem(item, _block(mean_abs=0.001, mean_rel=0.001)) is None
    message = training_problem(item, _block(mean_abs=0.02, mean_rel=0.04))
    assert "expected conform, but the loss curves of torch~mindspore fail MindFormers' standard" in message
    assert "mean over 1000 steps abs=0.02 rel=0.04" in message and MINDFORMERS_STANDARD in message
    assert "rerun: pytest 'cases/c.yaml::real[cpu-float32]'" in message
    # a declared difference is measured, not judged by it
    assert training_problem(_item(tmp_path, "diverge"), _block(mean_abs=0.02, mean_rel=0.04)) is None
