"""Attribute a divergence between two implementations to known causes, by counterfactual oracles.

At a step where the pair `A~B` leaves its tolerance, B's formula is stepped in float64 from A's own
pre-step state on A's gradients as B would have been fed them (B's prescale factor, B's policy for a
missing gradient; the runner prepares them), and compared with A's post-step values at A's oracle bound
(k x eps of A's compute dtype x the terms' magnitude; the case's oracle_tolerance). Where it does not
reproduce them, the switches are tried: each formula feature in which B's formula differs from A's
(oracles.Features), set to A's value, and each hyper-parameter B received differently from A, set to
A's. The smallest set of switches whose counterfactual reproduces A's values explains the step; each
switch maps to a cause of the registry (cases/causes.yaml). When no set of up to MAX_SWITCHES switches
reproduces A, the step is unexplained. The residual (elements outside the bound, largest abs error, and
where) is recorded before and after the switches, so the verdict carries its numbers.

Stepping from A's state, not B's, isolates one step's mechanism: the states of the two frameworks may
already differ by accumulated drift, but A's step from A's state is a pure function of A's formula.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.cases import causes
from conformance.cases.case import Item
from conformance.numerics.formulas import per_parameter
from conformance.numerics.oracle_metrics import formula_metrics
from conformance.numerics.oracles import Formula

MAX_SWITCHES = 3  # larger sets are not searched: a divergence needing more is reported unexplained
HPARAM_PREFIX = "hparam."


@dataclass(frozen=True)
class Side:
    """What attribution needs of one side at one step (from the runner's observation)."""

    formula: Formula
    hparams: dict[str, Any]  # effective, neutral names, lr as used at this step
    pre: dict[str, list[np.ndarray]]  # params, m, u before the step
    post: dict[str, list[np.ndarray]]  # after it
    grads: list  # received (None: no gradient); for B, A's as B would have been fed them
    counts: list[int]  # steps each parameter has taken, this one included
    names: list[str]  # native parameter names


def _residual(metrics: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Elements outside the bound over all tensors, and the largest abs error with its tensor (and per
    quantity: params, state)."""
    outside, worst, where = 0, 0.0, None
    tops = {"params": 0.0, "state": 0.0}
    for quantity in ("params", "state"):
        for tensor, m in metrics[quantity].items():
            outside += int(m["bad"])
            tops[quantity] = max(tops[quantity], float(m["abs"]))
            if m["abs"] > worst or (where is None and m["bad"]):
                worst, where = float(m["abs"]), tensor
    return {"outside": outside, "max_abs": worst, "tensor": where, **tops}


def _values(x: Any, float32: bool) -> list[float]:
    values = [float(v) for v in (x if isinstance(x, (list, tuple)) else [x or 0.0])]
    return [float(np.float32(v)) for v in values] if float32 else values


def _hparam_differs(a: dict[str, Any], b: dict[str, Any], key: str, float32: bool, count: int) -> bool:
    """Whether two sides received different values of `key` for any of their `count` parameters (their
    parameter groups' values where they have groups); with `float32`, only beyond float32 rounding (a
    formula that holds its scalars in float32 reports float32(0.002) for 0.002: that is the scalars
    feature, not a different hyper-parameter)."""
    each = zip(per_parameter(a, count), per_parameter(b, count))
    return any(_values(x.get(key), float32) != _values(y.get(key), float32) for x, y in each)


def _take(a: dict[str, Any], b: dict[str, Any], keys: set[str], count: int) -> dict[str, Any]:
    """B's hyper-parameters with `keys` taken from A: the top-level values and each of B's groups'."""
    out = {**b, **{k: a.get(k) for k in keys if k in a}}
    if b.get("groups"):
        a_each = per_parameter(a, count)
        out["groups"] = [{**g, **{k: a_each[g["params"][0]].get(k) for k in keys}} if g["params"] else g
                         for g in b["groups"]]
    return out


def candidates(a: Side, b: Side) -> list[str]:
    """The switches that can move B's step toward A's: feature names, then hparam.<name>."""
    features = b.formula.features.differences(a.formula.features)
    float32 = "float32" in (a.formula.features.scalars, b.formula.features.scalars)
    hparams = [f"{HPARAM_PREFIX}{k}" for k in causes.HPARAMS
               if _hparam_differs(a.hparams, b.hparams, k, float32, len(a.names))]
    return features + hparams


def counterfactual(a: Side, b: Side, switches: tuple[str, ...]) -> tuple[Formula, dict[str, Any]]:
    """B's formula and hyper-parameters with `switches` taken from A. Switching `scalars` also takes A's
    values of the hyper-parameters that agree with B's up to float32 rounding (B received them rounded)."""
    features = {s: getattr(a.formula.features, s) for s in switches if not s.startswith(HPARAM_PREFIX)}
    taken = {s[len(HPARAM_PREFIX):] for s in switches if s.startswith(HPARAM_PREFIX)}
    if "scalars" in features:
        taken |= {k for k in causes.HPARAMS if not _hparam_differs(a.hparams, b.hparams, k, True, len(a.names))}
    hparams = _take(a.hparams, b.hparams, taken, len(a.names))
    return (b.formula.replace(**features) if features else b.formula), hparams


def residual(a: Side, b: Side, switches: tuple[str, ...], step: int, item: Item) -> dict[str, Any]:
    """How far B's formula (with `switches` from A), stepped from A's state on A's inputs, lands from A's
    values, at A's oracle bound."""
    formula, hparams = counterfactual(a, b, switches)
    with np.errstate(all="ignore"):
        metrics = formula_metrics(formula, a.pre, a.post, b.grads, a.counts, step, hparams, b.names, item.dtype,
                                  item.case.oracle_tolerance, bounds_dtype=a.formula.compute_dtype(item.dtype))
    return _residual(metrics)


def case_settings(item: Item) -> set[str]:
    """The case settings a configuration cause's `when` refers to."""
    optimizer = item.case.optimizer
    settings = set()
    if optimizer.defaults == "native":
        settings.add("native_defaults")
    if optimizer.schedule is not None:
        settings.add("schedule")
    return settings


def attribute_step(a: Side, b: Side, step: int, item: Item) -> dict[str, Any]:
    """The smallest set of switches explaining B's departure from A at this step, its causes, and the
    residual before and after. `explained`: False when no set of up to MAX_SWITCHES does it."""
    before = residual(a, b, (), step, item)
    out: dict[str, Any] = {"step": step, "residual_before": before, "switches": [], "causes": [],
                           "residual_after": before, "explained": True, "alternatives": []}
    if before["outside"] == 0:
        return out  # B's formula from A's state reproduces A's step: no formula or hparam difference here
    pool = candidates(a, b)
    found: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for size in range(1, min(MAX_SWITCHES, len(pool)) + 1):
        for subset in itertools.combinations(pool, size):
            after = residual(a, b, subset, step, item)
            if after["outside"] == 0:
                found.append((subset, after))
        if found:
            break
    if not found:
        out.update(explained=False, tried=pool)
        return out
    (subset, after), others = found[0], found[1:]
    settings = case_settings(item)
    ids = [causes.for_switch(s, settings) for s in subset]
    out.update(switches=list(subset), residual_after=after, causes=[i for i in ids if i],
               explained=all(ids), alternatives=[list(s) for s, _ in others], effects=_effects(a, b, subset, step,
                                                                                               item, before, ids))
    return out


def _effects(a: Side, b: Side, subset: tuple[str, ...], step: int, item: Item, before: dict[str, Any],
             ids: list[str | None]) -> list[dict[str, Any]]:
    """Each switch's own effect on this step: the residual of the found set without it (largest abs per
    quantity and elements outside the oracle bound), so a cause whose effect stays far below the case's
    tolerance (eps placement in u at small gradients, beside the cause that diverges) can be told apart."""
    out = []
    for switch, cause in zip(subset, ids):
        rest = tuple(s for s in subset if s != switch)
        without = residual(a, b, rest, step, item) if rest else before
        out.append({"switch": switch, "cause": cause, "outside": without["outside"], "params": without["params"],
                    "state": without["state"]})
    return out


class Attributor:
    """Attributes one pair's divergence while the run goes on: at the first step where the pair leaves
    its tolerance and the oracle inputs are at hand, and again each time its largest abs difference has
    doubled since the last attribution (so at most a few dozen times per run); the last of those is the
    `worst` step. Bounded work and memory whatever the number of steps."""

    def __init__(self, pair_label: str, left: str, right: str, item: Item):
        self.pair_label, self.left, self.right, self.item = pair_label, left, right, item
        self.first: dict[str, Any] | None = None
        self.worst: dict[str, Any] | None = None
        self.magnitude = 0.0

    def update(self, step: int, metrics: dict[str, dict[str, dict]],
               sides: Callable[[], dict[str, Side] | None]) -> None:
        """metrics: the pair's per-tensor metrics at this step; sides() gives the left/right inputs, or
        None when this step has no oracle inputs (strided oracles); called only when needed."""
        if not any(m["bad"] for q in ("params", "state", "loss") for m in metrics.get(q, {}).values()):
            return
        magnitude = max((m["abs"] for q in ("params", "state") for m in metrics.get(q, {}).values()), default=0.0)
        if self.first is not None and not magnitude >= 2.0 * self.magnitude:
            return
        inputs = sides()
        if inputs is None:
            return
        result = attribute_step(inputs[self.left], inputs[self.right], step, self.item)
        self.magnitude = magnitude
        if self.first is None:
            self.first = result
        else:
            self.worst = result

    def as_dict(self) -> dict[str, Any] | None:
        if self.first is None:
            return None
        steps = [r for r in (self.first, self.worst) if r is not None]
        found = list(dict.fromkeys(c for r in steps for c in r["causes"]))
        return {"pair": self.pair_label, "causes": found, "explained": all(r["explained"] for r in steps),
                "first": self.first, "worst": self.worst}
