"""One summary.json entry: the vocabularies of its fields and the one place that builds one.

Every item of a run, whatever produced it (a numerical item's verdict, an interface probe, a case file
that could not be loaded, an item whose process died), is an entry with the keys of `BLANK`; readers
(the report, the docs page, release compares, merge) rely on them. Keep the names stable. An item that
trains on a real dataset also has a `training` block (`training_entry`), which the docs page reads.
"""
from __future__ import annotations

import math
import shlex
from typing import Any

from conformance.cases.case import Item

OUTCOMES = ("passed", "failed", "skipped", "error", "crashed")
RAN = ("passed", "failed")  # outcomes of items that produced figures
NOT_RUN = ("skipped", "error", "crashed")  # outcomes of items that produced none
METRICS = ("abs", "rel", "ulp")  # the element-wise distances recorded per quantity

BLANK: dict[str, Any] = {
    "nodeid": None, "case": None, "file": None, "line": None, "device": None, "dtype": None, "expect": None,
    "observed": None, "outcome": None, "reason": None, "steps": 0, "first_divergent_step": None,
    "first_divergence": None, "final": None, "max": None, "pairs": {},
    # msprobe's comparison metrics of the first primary pair at its last and worst step (verdict.PairTracker)
    "msprobe": None,
}


def rerun_command(item: Item) -> str:
    """The command that reruns exactly this item (a generated case file's own command, e.g. a replay's,
    with -k selecting the case)."""
    rerun = getattr(item.case, "rerun", None)  # interface cases (probes, API checks) have none
    if rerun:
        return f"{rerun} -k {shlex.quote(item.case.id)}"
    return f"pytest '{item.nodeid}'"


def entry(**fields: Any) -> dict[str, Any]:
    """An entry with every key of BLANK, `fields` overriding the blanks."""
    return {**BLANK, "pairs": {}, **fields}


def item_entry(item: Item, **fields: Any) -> dict[str, Any]:
    """The entry of an item that ran (or tried to): what its case says, then `fields`."""
    resume = getattr(item.case, "resume", None)  # interface cases have none
    return entry(nodeid=item.nodeid, case=item.case.id, file=item.case.file, line=item.case.line,
                 device=item.device, dtype=item.dtype, expect=item.case.expect,
                 description=item.case.description, rerun=rerun_command(item),
                 **({"resume": {"from": resume.source, "steps": resume.steps}} if resume else {}), **fields)


# MindSpore Transformers' (MindFormers') loss precision standard for a model migrated to MindSpore, from its
# "Large Model Precision Optimization Guide" (MINDFORMERS_SOURCE, section "Precision Standard Indicator"):
# at least 1,000 steps from the same weights and hyper-parameters, then (1) the first loss within 0.005
# absolute or 0.5% relative, (2) the mean absolute error within 0.01 or the mean relative error within 1%.
MINDFORMERS_STANDARD = ("MindSpore Transformers' loss precision standard: first loss abs error < 0.005 or rel "
                        "error < 0.5%; mean abs error < 0.01 or mean rel error < 1%")
MINDFORMERS_SOURCE = "https://www.mindspore.cn/mindformers/docs/en/master/advanced_development/precision_optimization.html"
MINDFORMERS = {"first_abs": 0.005, "first_rel": 0.005, "mean_abs": 0.01, "mean_rel": 0.01}


def _within(abs_error: float | None, rel_error: float | None, kind: str) -> bool | None:
    if abs_error is None or rel_error is None:
        return None
    return bool(abs_error < MINDFORMERS[f"{kind}_abs"] or rel_error < MINDFORMERS[f"{kind}_rel"])


def training_entry(dataset: str, steps: int, pair: str, final_loss: dict[str, float],
                   final_accuracy: dict[str, float], first: tuple[float, float] | None,
                   last: tuple[float, float] | None, mean_abs: float | None, mean_rel: float | None,
                   test_samples: int) -> dict[str, Any]:
    """An item's `training` block: each framework's final loss and held-out accuracy, the loss gap of `pair`
    (first, mean and final; relative to its left side, the benchmark) over the `steps` where both had a
    loss, the accuracy gap (absolute), and MindFormers' standard applied to the loss gap."""
    left, right = pair.split("~")
    first_abs = abs(first[0] - first[1]) if first else None
    first_rel = (first_abs / abs(first[0]) if first[0] else (0.0 if first_abs == 0 else math.inf)) if first else None
    scores = [final_accuracy.get(left), final_accuracy.get(right)]
    return {
        "dataset": dataset, "pair": pair, "steps": steps, "test_samples": test_samples,
        "final_loss": dict(final_loss), "final_accuracy": dict(final_accuracy),
        "loss_gap": {"first_abs": first_abs, "first_rel": first_rel, "mean_abs": mean_abs, "mean_rel": mean_rel,
                     "final_abs": abs(last[0] - last[1]) if last else None},
        "accuracy_gap": abs(scores[0] - scores[1]) if None not in scores else None,
        "mindformers": {"standard": MINDFORMERS_STANDARD, "source": MINDFORMERS_SOURCE,
                        "first_loss_ok": _within(first_abs, first_rel, "first"),
                        "mean_loss_ok": _within(mean_abs, mean_rel, "mean")},
    }
