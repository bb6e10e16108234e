"""From per-step metrics to a verdict: running maxima, first divergent step, outcome and message.

A PairTracker keeps O(1) state per pair (never the trajectory). `judge` turns the trackers of one item
into its summary.json entry, whose field names other tools read: keep them stable.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from conformance.cases.case import QUANTITIES, Item, Tolerance
from conformance.cases.causes import UNKNOWN
from conformance.errors import FrameworkError, first_line
from conformance.numbers import fmt
from conformance.numerics.attribution import MAX_SWITCHES
from conformance.numerics.diff import msprobe_summary, ulp_distance, worst
from conformance.results.entry import METRICS, item_entry, rerun_command


def _zero() -> dict[str, float]:
    return {m: 0.0 for m in METRICS}


class PairTracker:
    """Running summary of one pair: final and max metrics per quantity, and the first divergence."""

    def __init__(self, label: str, role: str, expect: str, tolerance: Tolerance):
        self.label, self.role, self.expect, self.tolerance = label, role, expect, tolerance
        self.final: dict[str, dict[str, float] | None] = {q: None for q in QUANTITIES}
        self.max: dict[str, dict[str, float] | None] = {q: None for q in QUANTITIES}
        self.first: dict[str, Any] | None = None
        self.steps = 0
        # msprobe's figures (diff.msprobe) at the last step and the worst step; the worst is taken as in
        # attribution.Attributor: each time the largest abs difference of params and state has more than
        # doubled since the previous one (the first step always), so within a factor 2 of the run's
        # largest, and computed a few dozen times at most however long the run
        self.msprobe: dict[str, dict[str, Any] | None] = {"last": None, "worst": None}
        self._worst_magnitude: float | None = None
        self._magnitude = 0.0

    def update(self, step: int, metrics: dict[str, dict[str, dict]]) -> None:
        self.steps = step
        for quantity, tensors in metrics.items():
            if not tensors:
                continue
            step_max = {m: max(t[m] for t in tensors.values()) for m in METRICS}
            self.final[quantity] = step_max
            running = self.max[quantity] or _zero()
            self.max[quantity] = {m: max(running[m], step_max[m]) for m in METRICS}
            name, top = worst(tensors)
            if self.first is None and top["bad"] > 0:
                self.first = {"step": step, "quantity": quantity, "tensor": name, **top,
                              "tolerance": self.tolerance.for_quantity(quantity).as_dict(),
                              "nonfinite": self._nonfinite_side(top)}

    def msprobe_snapshots(self, step: int, metrics: dict[str, dict[str, dict]], last: int) -> tuple[str, ...]:
        """Which of msprobe's snapshots this step is ("last", "worst", both or none), from the metrics the
        comparator already computed: the per-step cost is one max over the tensors."""
        self._magnitude = max((m["abs"] for q in ("params", "state") for m in metrics.get(q, {}).values()),
                              default=0.0)
        due = ("last",) if step == last else ()
        if self._worst_magnitude is None or self._magnitude > 2.0 * self._worst_magnitude:
            self._worst_magnitude = self._magnitude
            due += ("worst",)
        return due

    def record_msprobe(self, kinds: tuple[str, ...], step: int, tensors: dict[str, dict[str, dict]]) -> None:
        """Keep msprobe's figures of this step (per quantity, per tensor: diff.msprobe) as the given
        snapshots, with the step's largest abs difference in params and state."""
        snapshot = {"step": step, "max_abs_difference": self._magnitude,
                    **{q: msprobe_summary(t) for q, t in tensors.items()}}
        for kind in kinds:
            self.msprobe[kind] = snapshot

    def _nonfinite_side(self, top: dict[str, Any]) -> str | None:
        """The side whose value is NaN/Inf at the worst element while the other's is finite, else None."""
        a_ok, b_ok = (top[k] is not None and math.isfinite(top[k]) for k in ("a", "b"))
        if a_ok == b_ok:
            return None
        left, right = self.label.split("~")
        return right if a_ok else left

    @property
    def observed(self) -> str:
        """conform | diverge | nonfinite (the first divergence is one side turning NaN/Inf)."""
        if self.first is None:
            return "conform"
        return "nonfinite" if self.first.get("nonfinite") else "diverge"

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "expect": self.expect, "observed": self.observed, "steps": self.steps,
                "first_divergent_step": self.first["step"] if self.first else None,
                "first_divergence": self.first, "final": self.final, "max": self.max,
                "tolerance": self.tolerance.as_dict(), "msprobe": self.msprobe_entry(tensors=False)}

    def msprobe_entry(self, tensors: bool = True) -> dict[str, Any] | None:
        """The recorded snapshots and whether both pass msprobe's criteria in params and state, or None
        where none was recorded (control pairs, a run that stopped before its last step). Without
        `tensors`, each quantity's figures only (the entry's top-level copy keeps them per tensor)."""
        if self.msprobe["last"] is None:
            return None
        snapshots = [s for s in self.msprobe.values() if s]
        verdicts = [s[q]["passes"] for s in snapshots for q in ("params", "state") if q in s]
        shown = {kind: s if tensors or s is None else
                 {k: ({**v, "tensors": None} if isinstance(v, dict) else v) for k, v in s.items()}
                 for kind, s in self.msprobe.items()}
        return {**shown, "passes": None if None in verdicts else all(verdicts)}


def _element_metrics(a: float, b: float, dtype: str) -> str:
    """abs/rel/ULP of the one element a message names (the tensor's maxima may sit elsewhere)."""
    absd = abs(a - b)
    scale = max(abs(a), abs(b))
    rel = absd / scale if scale else 0.0
    ulp = float(ulp_distance(np.array([a]), np.array([b]), dtype)[0])
    return f"abs={fmt(absd)} rel={fmt(rel)} ulp={fmt(ulp)}"


def _divergence_lines(tracker: PairTracker, dtype: str) -> list[str]:
    first = tracker.first
    left, right = tracker.label.split("~")
    bound = first["tolerance"]
    unit = " (x eps x operand magnitude)" if right == "oracle" else ""
    where = (f"  first divergent step {first['step']}: {first['quantity']} tensor {first['tensor']} "
             f"element {first['at']}: {left}={fmt(first['a'])} {right}={fmt(first['b'])}")
    side = first.get("nonfinite")
    if side:
        # not a distance: a finite number against NaN/Inf has none worth printing
        other = right if side == left else left
        return [where, f"  {side} became {fmt(first['a'] if side == left else first['b'])} here while {other} "
                       f"stayed finite (an overflow or 0/0 on one side, not a finite difference)"]
    return [
        where,
        f"  element {_element_metrics(first['a'], first['b'], dtype)}; tensor max abs={fmt(first['abs'])} "
        f"rel={fmt(first['rel'])} ulp={fmt(first['ulp'])}",
        f"  tolerance atol={fmt(bound['atol'])}{unit} rtol={fmt(bound['rtol'])} ulp={fmt(bound['ulp'])} "
        f"({first['bad']} element(s) outside)",
    ]


def _max_line(tracker: PairTracker) -> str:
    parts = []
    for quantity in QUANTITIES:
        got = tracker.max[quantity]
        if got:
            parts.append(f"{quantity} abs={fmt(got['abs'])} rel={fmt(got['rel'])} ulp={fmt(got['ulp'])}")
    return f"  max over {tracker.steps} steps: " + "; ".join(parts)


def _header(item: Item) -> str:
    return f"{item.case.file}:{item.case.line}: case '{item.case.id}' [{item.param_id}]"


def _failure_message(item: Item, tracker: PairTracker, unexplained: bool) -> str:
    if unexplained and not tracker.first:
        lines = [f"{_header(item)}: {tracker.label}: expected {tracker.expect}, observed conform",
                 _max_line(tracker)]
    elif unexplained:
        framework = tracker.label.split("~")[0]
        what = (f"{tracker.label}: the same framework differs across devices" if tracker.role != "oracle"
                else f"{framework} went NaN/Inf where its own formula in float64 stays finite (overflow in "
                     f"{item.dtype}?)" if tracker.observed == "nonfinite"
                else f"{framework} departs from its own formula's float64 oracle")
        lines = [f"{_header(item)}: unexplained divergence: {what}", *_divergence_lines(tracker, item.dtype)]
    elif tracker.observed == "nonfinite":
        expected = f"{tracker.expect} ({item.case.reason})" if item.case.reason else tracker.expect
        lines = [f"{_header(item)}: expected {expected}, observed nonfinite ({tracker.label})",
                 *_divergence_lines(tracker, item.dtype),
                 "  NaN/Inf on one side is neither agreement nor a finite divergence; a case that means it "
                 "says expect: nonfinite"]
    elif tracker.first:
        lines = [f"{_header(item)}: expected conform, observed diverge ({tracker.label})",
                 *_divergence_lines(tracker, item.dtype)]
    else:
        lines = [f"{_header(item)}: expected diverge ({item.case.reason}), observed conform ({tracker.label})",
                 _max_line(tracker),
                 "  the case's expectation may be stale: a release may have changed, or the tolerance is too loose"]
    lines.append(f"  rerun: {rerun_command(item)}")
    return "\n".join(lines)


def _cause_message(item: Item, tracker: PairTracker, problem: str) -> str:
    """An item that diverged as expected but for another cause than the one it declares."""
    return "\n".join([f"{_header(item)}: {tracker.label} diverges as expected, but {problem}",
                      *_divergence_lines(tracker, item.dtype), f"  rerun: {rerun_command(item)}"])


def _judge_error(item: Item, error: FrameworkError | None) -> dict[str, Any]:
    """An item whose framework raised, or that expected it to: the framework's behaviour, not a crash."""
    rerun = f"\n  rerun: {rerun_command(item)}"
    if error is None:
        return {"observed": "conform", "outcome": "failed",
                "message": f"{_header(item)}: expected a framework to raise ({item.case.reason}), but all "
                           f"{item.case.steps} steps ran{rerun}"}
    detail = {"framework": error.framework, "step": error.step, "type": type(error.exc).__name__,
              "message": first_line(str(error.exc))}
    if item.case.expect != "error":
        return {"observed": "error", "outcome": "error", "reason": str(error), "error": detail,
                "message": f"{_header(item)}: {error}{rerun}"}
    wanted = item.case.error_contains
    if wanted and wanted not in str(error.exc):
        return {"observed": "error", "outcome": "failed", "error": detail,
                "message": f"{_header(item)}: the framework raised, but not with '{wanted}': {error}{rerun}"}
    return {"observed": "error", "outcome": "passed", "error": detail,
            "reason": f"{item.case.reason} (observed: {error})"}


def _blank(pair: dict | None, key: str) -> dict[str, dict | None]:
    return pair[key] if pair else {q: None for q in QUANTITIES}


def _fmt_residual(r: dict[str, Any]) -> str:
    where = f", largest abs {fmt(r['max_abs'])} in {r['tensor']}" if r.get("tensor") else ""
    return f"{r['outside']} elements outside the oracle bound{where}"


def cause_problem(item: Item, attribution: dict[str, Any] | None) -> str | None:
    """Why the attributed causes contradict the case's declared `cause:`, in the case's language; None when
    they agree (or nothing was attributed: no step with both sides' oracle inputs)."""
    if attribution is None or item.case.expect not in ("diverge", "nonfinite"):
        return None
    declared, found = set(item.case.causes), set(attribution["causes"])
    # the step to quote: an unexplained one (the worst first), else the first divergent step
    step = next((r for r in (attribution["worst"], attribution["first"]) if r and not r["explained"]),
                attribution["first"])
    left, right = attribution["pair"].split("~")
    at = (f"at step {step['step']} ({right}'s formula stepped from {left}'s state: "
          f"{_fmt_residual(step['residual_before'])}; with {', '.join(step['switches']) or 'no switch'} from "
          f"{left}: {_fmt_residual(step['residual_after'])})")
    if not attribution["explained"]:
        if declared == {UNKNOWN}:
            return None
        return (f"the divergence is unexplained: no set of up to {MAX_SWITCHES} known switches "
                f"({', '.join(step.get('tried', [])) or 'none differ'}) reproduces {left}'s step {at}; if this is "
                "a new difference, declare `cause: unknown` with its reason, or add it to cases/causes.yaml")
    if declared == {UNKNOWN}:
        return f"the case declares cause unknown, while the divergence is attributed to {', '.join(sorted(found))} {at}"
    if found != declared:
        return (f"the case declares cause {', '.join(sorted(declared))}, while the divergence is attributed to "
                f"{', '.join(sorted(found)) or 'no cause'} {at}")
    return None


def training_problem(item: Item, training: dict[str, Any] | None) -> str | None:
    """Why an item that expects agreement fails MindFormers' loss standard (its loss curves, recorded in
    `training`), in the case's language; None when it holds, or the item trains on no dataset."""
    if not training or item.case.expect != "conform":
        return None
    verdict, gap = training["mindformers"], training["loss_gap"]
    if verdict["first_loss_ok"] is not False and verdict["mean_loss_ok"] is not False:
        return None
    return "\n".join([
        f"{_header(item)}: expected conform, but the loss curves of {training['pair']} fail MindFormers' standard",
        f"  first loss abs={fmt(gap['first_abs'])} rel={fmt(gap['first_rel'])}; mean over {training['steps']} "
        f"steps abs={fmt(gap['mean_abs'])} rel={fmt(gap['mean_rel'])}",
        f"  {verdict['standard']} ({verdict['source']})", f"  rerun: {rerun_command(item)}"])


def judge(item: Item, trackers: dict[str, PairTracker], sides: dict, skipped: dict[str, str],
          error: FrameworkError | None, jsonl: Path, seconds: float,
          attribution: dict[str, Any] | None = None, facts: dict[str, Any] | None = None,
          training: dict[str, Any] | None = None) -> dict[str, Any]:
    """The item's summary.json entry, with `outcome` and, when it did not pass, a `message`; `facts`: what
    the run found beside the figures (decay_skipped, trace), entered as they are. An item that trains on a
    real dataset carries its `training` block, and one that expects agreement must also meet MindFormers'
    loss standard there."""
    primaries = [t for t in trackers.values() if t.role == "primary"]  # one per framework after the first
    primary = primaries[0] if primaries else None  # its figures are the entry's top-level ones
    controls = [t for t in trackers.values() if t.role != "primary"]
    pairs = {label: t.as_dict() for label, t in trackers.items()}
    entry = item_entry(
        item, frameworks=list(item.case.frameworks),
        reason=item.case.reason if {item.case.expect, *item.case.expect_pairs.values()} != {"conform"} else None,
        cause=list(item.case.causes), attribution=attribution, source=item.case.source_text,
        steps=max((t.steps for t in trackers.values()), default=0), requested_steps=item.case.last_step,
        first_divergent_step=primary.first["step"] if primary and primary.first else None,
        first_divergence=primary.first if primary else None,
        msprobe=primary.msprobe_entry() if primary else None,
        final=_blank(pairs.get(primary.label) if primary else None, "final"),
        max=_blank(pairs.get(primary.label) if primary else None, "max"),
        pairs=pairs, skipped_sides=skipped,
        hparams={label: {k: list(v) if isinstance(v, tuple) else v for k, v in side.hparams.items()}
                 for label, side in sides.items()},
        nonfinite={label: side.nonfinite for label, side in sides.items()},
        jsonl=f"steps/{jsonl.name}", seconds=round(seconds, 3), **(facts or {}),
        **({"training": training} if training else {}))
    bad_controls = [t for t in controls if t.observed != t.expect]
    if error is None and not sides and not trackers:
        entry.update(observed="skipped", outcome="skipped",
                     reason="; ".join(f"{label}: {why}" for label, why in skipped.items()) or "nothing could run")
    elif error is None and item.case.expect == "error" and skipped:
        # the framework meant to raise may be the one that could not run: nothing to judge
        why = "; ".join(f"{label}: {reason}" for label, reason in skipped.items())
        entry.update(observed="skipped", outcome="skipped",
                     reason=f"{why} (the sides that ran raised nothing; the expected error needs every side)")
    elif error is not None or item.case.expect == "error":
        entry.update(_judge_error(item, error))
    elif bad_controls:
        entry.update(observed=primary.observed if primary else "skipped", outcome="failed",
                     message=_failure_message(item, bad_controls[0], unexplained=True))
    elif primary is None:
        why = "; ".join(f"{label}: {reason}" for label, reason in skipped.items()) or "no comparable pair"
        held = f" (control checks that ran and held: {', '.join(t.label for t in controls)})" if controls else ""
        entry.update(observed="skipped", outcome="skipped", reason=why + held)
    elif all(t.observed == t.expect for t in primaries) and (problem := cause_problem(item, attribution)):
        entry.update(observed=primary.observed, outcome="failed",
                     message=_cause_message(item, primary, problem))
    elif all(t.observed == t.expect for t in primaries) and (problem := training_problem(item, training)):
        entry.update(observed=primary.observed, outcome="failed", message=problem)
    elif all(t.observed == t.expect for t in primaries):
        entry.update(observed=primary.observed, outcome="passed")
    else:
        wrong = next(t for t in primaries if t.observed != t.expect)
        entry.update(observed=primary.observed, outcome="failed",
                     message=_failure_message(item, wrong, unexplained=False))
    return entry
