"""Stepping: every side of an item in lock-step, and what each step leaves for the checks.

A side is one framework (or its CPU twin on a GPU item) with its open session. `step_all` steps them all
on one step's inputs (replayed gradients, or each framework's own autograd on the batch); `observe`
captures what the checks need. Values are read as views of the frameworks' own memory where the checks
read them before that side steps again, and copied where they must outlive that (the next step's oracle
starts from them, a threaded oracle check, or a side stepping ahead: `ahead`). The runner wires this to
the checker (checker.py) and the per-step checks.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance import backends
from conformance.cases.case import QUANTITIES, Item
from conformance.engine import feeding
from conformance.errors import FrameworkError
from conformance.numerics import formulas


@dataclass
class Side:
    label: str
    framework: str
    session: Any
    hparams: dict[str, Any]
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)  # params, m, u after the last step
    loss: float | None = None
    nonfinite: dict[str, int | None] = field(default_factory=lambda: {q: None for q in QUANTITIES})
    counts: list[int] = field(default_factory=list)  # optimizer steps each parameter has taken
    seconds: float = 0.0  # wall time of this side's steps so far (which side steps ahead: `ahead`)


def read(side: Side, keep: bool) -> None:
    """This side's values after the last step. Adapters hand out arrays that may share the framework's
    memory (valid until its next step); they are copied only where they must outlive that (`keep`: see
    observe): at 1M parameters a copy per tensor per step is a measurable cost."""
    state = side.session.state()
    values = {"params": side.session.params(), "m": state["m"], "u": state["u"]}
    side.values = {k: [a.copy() for a in v] for k, v in values.items()} if keep else values


def step_all(sides: dict[str, Side], item: Item, step: int, batch: tuple[np.ndarray, np.ndarray],
              replay: list[np.ndarray | None] | None, barrier: Callable[[], None],
              ahead: frozenset[str] = frozenset()) -> dict[str, list[np.ndarray | None]]:
    """One step of every side; returns the gradients each side received (None: no gradient).
    `barrier` returns once the previous step's checks no longer read the frameworks' arrays: the sides
    in `ahead` (whose last values the checks hold as copies) step before it, while those checks run;
    every other side after it.

    Sides fed the same way (same prescale factor, same missing-gradient policy) share one copy of a
    replayed gradient: no framework writes into the gradient it is given, and at 1M parameters each
    copy is a pass over memory."""
    received: dict[str, list[np.ndarray | None]] = {}
    fed: dict[tuple[float, str], list[np.ndarray | None]] = {}  # (prescale, missing-gradient policy)
    source = feeding.replay_source(item)
    if replay is None and source is not None:  # run_item made sure the source side is open
        src = sides[source]
        src.loss, replay = call(src, step, src.session.loss_and_grads, *batch)
    any_missing = replay is not None and any(g is None for g in replay)
    order = sorted(sides.values(), key=lambda side: side.label not in ahead)  # stable: else the case's order
    released = False
    for side in order:
        if not released and side.label not in ahead:
            barrier()
            released = True
        started = time.perf_counter()
        if replay is not None:
            missing = backends.get(side.framework).missing_grad if any_missing else ""
            key = (item.case.gradients.factor(side.framework), missing)
            if key not in fed:
                fed[key] = feeding.feed(side.framework, item, replay, [v.shape for v in side.values["params"]])
            grads = fed[key]
            call(side, step, side.session.step, grads)
        else:
            side.loss, grads = call(side, step, side.session.loss_and_grads, *batch)
            call(side, step, side.session.step, None)
        side.counts = [c + (g is not None) for c, g in zip(side.counts, grads)]
        side.seconds += time.perf_counter() - started
        received[side.label] = grads
    return received


def ahead(sides: dict[str, Side], checks: float | None, inputs: float) -> frozenset[str]:
    """The sides that step before the barrier (their values are copied after each step): none inline
    (`checks` is None: the checker measures only on its thread) or while a step's checks (`checks`,
    running average) take less time than preparing the next step's inputs (`inputs`), which they overlap;
    else the side whose steps took longest so far, which then steps while the checks still read the other
    sides' arrays. At 1M parameters a trace's step is read in ~1 ms and stepping ahead helps (1.63x the
    bare loop never, 1.46x always); drawn gradients take ~13 ms, the checks fit beside them and the copy
    would cost more (1.09x never, 1.18x always): docs/performance.md."""
    if checks is None or checks <= inputs:
        return frozenset()
    return frozenset({max(sides.values(), key=lambda side: side.seconds).label})


def call(side: Side, step: int, fn, *args):
    try:
        return fn(*args)
    except FrameworkError:
        raise
    except Exception as exc:
        raise FrameworkError(side.label, step, exc) from exc


@dataclass
class Observation:
    """What one step left behind, everything the checks need and nothing that changes afterwards (on
    a thread the frameworks go on stepping): per side its values after the step, and where the oracles
    are due, its values before it, the gradients it received, its step counts and learning rate."""

    step: int
    values: dict[str, dict[str, list[np.ndarray]]]
    losses: dict[str, float | None]
    oracle_inputs: dict[str, tuple[dict[str, Any], dict[str, list[np.ndarray]], list, list[int]]]


def observe(sides: dict[str, Side], step: int, received: dict[str, list[np.ndarray | None]], due: bool,
             keep: frozenset[str]) -> Observation:
    """Capture a step; the sides in `keep` have their values copied (a thread checks them while the side
    steps on, or the next step's oracle needs them); the others are read as views."""
    oracle_inputs = {}
    for label, side in sides.items():
        if due and "@" not in label:
            hparams = formulas.with_lr(side.hparams, side.session.lr_used())
            oracle_inputs[label] = (hparams, side.values, received[label], list(side.counts))
        read(side, label in keep)
    return Observation(step, {label: side.values for label, side in sides.items()},
                       {label: side.loss for label, side in sides.items()}, oracle_inputs)
