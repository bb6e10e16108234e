"""Run one Item: step every framework in lock-step, compare every pair at every step, stream the records.

Sides are the frameworks (plus, on a GPU item, a CPU twin of each framework that runs there). Pairs:
- primary  `torch~mindspore`: judged against the case's `expect` and `tolerance` (a case listing more
  frameworks has one primary pair `torch~X` per other framework X, each with its own expectation);
- oracle   `torch~oracle`, `mindspore~oracle`: each framework against a float64 step of its own formula,
  taken from the framework's own pre-step state (must conform unless the case's oracle_expect says
  otherwise: else the framework departs from its formula, an unexplained divergence);
- device   `torch~torch@cpu` on GPU items: same framework, two devices (must conform).
Only the current step's arrays are held; each step's metrics go straight to the JSONL file.

Each step leaves an Observation (stepping.py: values after the step; for oracle steps also the values
before it, the gradients received, step counts and learning rates), checked inline or, on large models,
on a second thread (checker.Checker). The oracle pairs cost a float64 formula evaluation per framework
per step; on large models they run every k-th step (`oracle_stride`, see `oracle_stride()`), always
including the first and the last step. The primary and device pairs are compared at every step.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conformance import backends
from conformance.cases.case import Item, Tolerance
from conformance.engine import feeding, models, resume, stepping, training
from conformance.engine.checker import SMOOTHING, Checker
from conformance.engine.stepping import Observation, Side, observe, read, step_all
from conformance.errors import FrameworkError
from conformance.numerics import attribution, formulas
from conformance.numerics.diff import compare, diff, msprobe, nonfinite
from conformance.numerics.oracle_metrics import formula_metrics
from conformance.results.storage import StepWriter
from conformance.results.verdict import PairTracker, judge
from conformance.traces import porting
from conformance.traces.format import TraceError

ORACLE = "oracle"
# `oracle_stride: auto` checks the oracles on every step up to this many parameters, and above it on
# every k-th step, k = ceil(parameters / AUTO_ORACLE_PARAMS): about this many oracle elements per step.
AUTO_ORACLE_PARAMS = 131_072
# From this many parameters a step's checks run on a second thread while the next step's inputs are
# prepared (pipeline.Checker); below it they are Python-bound, a thread would only trade the GIL back
# and forth.
PIPELINE_PARAMS = 65_536


@dataclass(frozen=True)
class Pair:
    label: str
    left: str
    right: str  # a side label, or ORACLE (the left side's own formula)
    role: str  # primary | oracle | device
    tolerance: Tolerance
    expect: str


def _hparams_given(item: Item) -> dict[str, Any]:
    """Neutral hyper-parameters the case fixes (with `defaults: native`, the frameworks fill the rest)."""
    return item.case.optimizer.neutral()


def _open_sides(item: Item, init: dict[str, np.ndarray], skipped: dict[str, str]) -> dict[str, Side]:
    sides: dict[str, Side] = {}
    devices = [item.device] + (["cpu"] if item.device == "gpu" else [])
    for framework in item.case.frameworks:
        backend = backends.get(framework)
        for device in devices:
            label = framework if device == item.device else f"{framework}@cpu"
            reason = backend.unavailable(device, item.dtype) or backend.unsupported(item) or \
                training.unavailable(item)
            if reason:
                skipped[label] = reason
                continue
            if label.endswith("@cpu") and framework not in sides:
                continue  # a CPU twin only matters beside its GPU run
            spec = backends.base.SessionSpec(item=item, device=device, init=init,
                                             hparams=_hparams_given(item))
            try:
                session = backend.open(spec)
            except Exception as exc:  # the framework refused the configuration: its behaviour, recorded
                raise FrameworkError(framework, 0, exc) from exc
            sides[label] = Side(label, framework, session, session.hparams())
    return sides


def _pairs(item: Item, sides: dict[str, Side]) -> list[Pair]:
    """Primary pairs: the first framework against each other one (torch~mindspore for two; N-1 pairs for
    a case listing N frameworks, each with its own expectation); then oracle and device pairs."""
    case = item.case
    left, *others = case.frameworks
    pairs: list[Pair] = []
    for right in others:
        if left in sides and right in sides:
            pairs.append(Pair(f"{left}~{right}", left, right, "primary", case.tolerance, case.expect_for(right)))
    for label, side in sides.items():
        if "@" not in label:
            expect = case.oracle_expect.get(side.framework, "conform")
            pairs.append(Pair(f"{label}~{ORACLE}", label, ORACLE, "oracle", case.oracle_tolerance, expect))
        elif side.framework in sides:
            pairs.append(Pair(f"{side.framework}~{label}", side.framework, label, "device", case.tolerance, "conform"))
    return pairs


def oracle_stride(item: Item, parameters: int) -> int:
    """Steps between oracle checks: the case's integer, or under `auto` 1 for small models."""
    stride = item.case.oracle_stride
    if stride == "auto":
        return max(1, math.ceil(parameters / AUTO_ORACLE_PARAMS))
    return int(stride)


def _oracle_due(step: int, stride: int, last: int) -> bool:
    return (step - 1) % stride == 0 or step == last


def _oracle_metrics(side: Side, obs: Observation, names: list[str], dtype: str,
                    tolerance: Tolerance) -> dict[str, dict[str, dict]]:
    """Per quantity, per tensor metrics of `side` against its own formula at this step (as _compare's)."""
    hparams, pre, grads, counts = obs.oracle_inputs[side.label]
    formula = backends.get(side.framework).formula
    return formula_metrics(formula, pre, obs.values[side.label], grads, counts, obs.step, hparams, names, dtype,
                           tolerance)


def _compare(pair: Pair, values: dict[str, dict[str, list[np.ndarray]]], losses: dict[str, float | None],
             names: dict[str, list[str]], dtype: str, finite: set[tuple[str, str, int]]) -> dict[str, dict[str, dict]]:
    """Per quantity, per tensor metrics of one pair at one step; adds to `finite` the (side, key, index)
    of every array the comparison proved free of NaN and Inf."""
    a, b = values[pair.left], values[pair.right]
    out: dict[str, dict[str, dict]] = {"params": {}, "state": {}, "loss": {}}
    for key, quantity in (("params", "params"), ("m", "state"), ("u", "state")):
        bound = pair.tolerance.for_quantity(quantity)
        for i, name in enumerate(names[pair.left]):
            tensor = name if key == "params" else f"{key}:{name}"
            out[quantity][tensor], proven = compare(a[key][i], b[key][i], dtype, bound)
            if proven:
                finite.update(((pair.left, key, i), (pair.right, key, i)))
    if losses.get(pair.left) is not None and losses.get(pair.right) is not None:
        out["loss"]["loss"] = diff(np.array(losses[pair.left]), np.array(losses[pair.right]), dtype,
                                   pair.tolerance.loss)
    return out


def _msprobe(pair: Pair, values: dict[str, dict[str, list[np.ndarray]]],
             names: dict[str, list[str]]) -> dict[str, dict[str, dict]]:
    """msprobe's metrics (diff.msprobe) of every params and state tensor of a pair at one step, the left
    side (torch) as msprobe's bench."""
    a, b = values[pair.left], values[pair.right]
    out: dict[str, dict[str, dict]] = {"params": {}, "state": {}}
    for key, quantity in (("params", "params"), ("m", "state"), ("u", "state")):
        for i, name in enumerate(names[pair.left]):
            out[quantity][name if key == "params" else f"{key}:{name}"] = msprobe(a[key][i], b[key][i])
    return out


def _track_nonfinite(side: Side, step: int, values: dict[str, list[np.ndarray]], loss: float | None,
                     finite: set[tuple[str, str, int]]) -> None:
    """The first step at which each quantity of `side` held a NaN or Inf; arrays in `finite` (proven so by
    this step's comparisons) are not scanned again."""
    keys = {"params": ("params",), "state": ("m", "u")}
    for quantity, quantity_keys in keys.items():
        if side.nonfinite[quantity] is None and any(
                nonfinite(a) for key in quantity_keys for i, a in enumerate(values[key])
                if (side.label, key, i) not in finite):
            side.nonfinite[quantity] = step
    if side.nonfinite["loss"] is None and loss is not None and not np.isfinite(loss):
        side.nonfinite["loss"] = step


def _attribution_sides(item: Item, sides: dict[str, Side], obs: Observation, names: dict[str, list[str]],
                       labels: tuple[str, str]) -> dict[str, attribution.Side] | None:
    """Both sides of a pair as attribution needs them, or None on a step without oracle inputs. The right
    side is stepped from the left side's state on the left side's inputs (see attribution), so it is
    given the left side's gradients as it would have been fed them."""
    if not all(label in obs.oracle_inputs for label in labels):
        return None
    out = {}
    for label in labels:
        hparams, pre, grads, counts = obs.oracle_inputs[label]
        out[label] = attribution.Side(backends.get(sides[label].framework).formula, hparams, pre, obs.values[label],
                                      grads, counts, names[label])
    left, right = labels
    fed = feeding.as_fed_to(item, out[left].grads, sides[left].framework, sides[right].framework,
                            [p.shape for p in out[left].pre["params"]])
    out[right] = dataclasses.replace(out[right], grads=fed)
    return out


def _checks(item: Item, sides: dict[str, Side], pairs: list[Pair], names: dict[str, list[str]],
            trackers: dict[str, PairTracker], writer: StepWriter, attributor: attribution.Attributor | None,
            gap: training.LossGap | None) -> Callable[[Observation], None]:
    """The per-step checks: oracles (when due), non-finite tracking, every pair compared, the primary
    pair's divergence attributed where it leaves its tolerance, msprobe's metrics of a primary pair at the last
    and the worst step (PairTracker.msprobe_snapshots), a real-data run's loss gap, one JSONL line."""
    last = item.case.last_step

    def check(obs: Observation) -> None:
        record: dict[str, Any] = {"step": obs.step, "pairs": {}}
        finite: set[tuple[str, str, int]] = set()
        for pair in pairs:
            if pair.right != ORACLE:
                metrics = _compare(pair, obs.values, obs.losses, names, item.dtype, finite)
            elif obs.oracle_inputs:
                metrics = _oracle_metrics(sides[pair.left], obs, names[pair.left], item.dtype, pair.tolerance)
            else:
                continue
            trackers[pair.label].update(obs.step, metrics)
            if pair.role == "primary" and (due := trackers[pair.label].msprobe_snapshots(obs.step, metrics, last)):
                trackers[pair.label].record_msprobe(due, obs.step, _msprobe(pair, obs.values, names))
            if attributor is not None and pair.label == attributor.pair_label:
                attributor.update(obs.step, metrics,
                                  lambda: _attribution_sides(item, sides, obs, names, (pair.left, pair.right)))
            record["pairs"][pair.label] = metrics
        for label, side in sides.items():
            _track_nonfinite(side, obs.step, obs.values[label], obs.losses[label], finite)
        if any(v is not None for v in obs.losses.values()):
            record["loss"] = obs.losses
            if gap is not None:
                gap.update(obs.losses)
        writer.write(record)
    return check


def _decay_skipped(sides: dict[str, Side], names: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per side, the parameters its decay filter leaves undecayed although weight decay is set (MindSpore's
    names holding beta or gamma); sides without any are left out."""
    out = {}
    for label, side in sides.items():
        features = backends.get(side.framework).formula.features
        if skipped := formulas.decay_skipped(features, names[label], side.hparams):
            out[label] = skipped
    return out


def run_item(item: Item, steps_dir: Path) -> dict[str, Any]:
    """Run an item to the end (or to a framework error) and return its summary entry."""
    started = time.perf_counter()
    skipped: dict[str, str] = {}
    path = steps_dir / f"{item.slug}.jsonl"

    def nothing_ran(error: FrameworkError | None) -> dict[str, Any]:
        with StepWriter(path):  # an empty step file: the item has one, like every other
            pass
        return judge(item, {}, {}, skipped, error, path, time.perf_counter() - started)

    try:
        init = models.initial(item.case)
    except TraceError as exc:  # a trace's file went bad after the case was loaded
        return nothing_ran(FrameworkError("trace", 0, exc))
    replay_stream = feeding.gradient_stream(item, init)
    batch_stream = models.batches(item.case.data, item.case.model)
    resumed = item.case.resume
    if resumed and (why := backends.get(resumed.source).unavailable(item.device, item.dtype)):
        skipped[resumed.source] = f"{why} (it trains the steps this case resumes from)"
        return nothing_ran(None)
    try:  # after a resume: every side starts from what resumed.source trained (engine/resume.py)
        warm = resume.warm_up(item, init, _hparams_given(item), batch_stream, replay_stream) if resumed else None
        sides = _open_sides(item, warm.params if warm else init, skipped)
        for side in sides.values() if warm else ():
            resume.load(side, warm)
    except FrameworkError as exc:  # a framework refused the configuration (or the state) before step 1
        return nothing_ran(exc)
    except TraceError as exc:  # a trace's file went bad after the case was loaded
        return nothing_ran(FrameworkError("trace", 0, exc))
    source = feeding.replay_source(item)
    if source is not None and source not in sides:
        skipped.setdefault(source, "the replay source cannot run here")
        return nothing_ran(None)
    if not sides:
        return nothing_ran(None)
    pairs = _pairs(item, sides)
    names = {label: side.session.native_names for label, side in sides.items()}
    trackers = {pair.label: PairTracker(pair.label, pair.role, pair.expect, pair.tolerance) for pair in pairs}
    parameters = sum(a.size for a in init.values())
    stride = oracle_stride(item, parameters)
    for side in sides.values():
        read(side, keep=True)
        side.counts = list(warm.counts) if warm else [0] * len(init)
    checked = 0
    error: FrameworkError | None = None
    everyone, ahead, inputs = frozenset(sides), frozenset(), 0.0  # inputs: running average, seconds
    threaded = parameters >= PIPELINE_PARAMS
    last = item.case.last_step
    # the declared pair (frameworks[0]~frameworks[1]) alone is attributed: a case's `cause:` is about it,
    # and where its right side cannot run here (an N-way case without MindSpore) nothing is attributed
    declared = f"{item.case.frameworks[0]}~{item.case.frameworks[1]}"
    primary = next((pair for pair in pairs if pair.role == "primary" and pair.label == declared), None)
    attributor = attribution.Attributor(primary.label, primary.left, primary.right, item) if primary else None
    gap = training.LossGap(item) if item.case.data.dataset is not None else None
    with StepWriter(path) as writer:
        checker = Checker(_checks(item, sides, pairs, names, trackers, writer, attributor, gap), threaded)
        try:
            for step in range(item.case.first_step, last + 1):
                fetched = time.perf_counter()
                batch = next(batch_stream)
                try:
                    replay = feeding.next_replay(replay_stream, step)
                    inputs += SMOOTHING * (time.perf_counter() - fetched - inputs)
                    received = step_all(sides, item, step, batch, replay, checker.wait, ahead)
                except FrameworkError as exc:
                    error = exc
                    break
                due = _oracle_due(step, stride, last)
                checked += due
                # copied: values the next step's oracle starts from, and (threaded) a step whose oracle
                # checks should not hold the frameworks back, and the side that steps ahead (stepping.ahead:
                # none inline, where no check time is measured); otherwise views, checked before their side
                # steps again
                everything = _oracle_due(step + 1, stride, last) or (threaded and due)
                ahead = everyone if everything else stepping.ahead(sides, checker.view_seconds, inputs)
                checker.submit(observe(sides, step, received, due, ahead), holds_views=ahead != everyone)
        finally:
            checker.close()
    facts = {"decay_skipped": _decay_skipped(sides, names),
             **({"trace": porting.facts(item.case, names)} if item.case.model.kind == "trace" else {})}
    entry = judge(item, trackers, sides, skipped, error, path, time.perf_counter() - started,
                  attributor.as_dict() if attributor else None, facts,
                  training.summary(item, gap, sides, error is None))
    entry["oracle"] = {"stride": stride, "setting": item.case.oracle_stride, "steps_checked": checked}
    return entry
