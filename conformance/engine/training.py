"""The training figures of an item that trains on a real dataset: its loss curves and its final accuracy.

The per-step losses of the case's declared pair (frameworks[0]~frameworks[1], as attribution) are summed
up while the run goes on (first, last, the mean absolute and relative gap; never the curve itself, which
the JSONL holds), and after the last step each framework's model scores the dataset's held-out split.
results/entry.py's `training_entry` turns these into the entry's `training` block, and judges them by
MindFormers' loss precision standard there.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from conformance.cases.case import Item
from conformance.engine import datasets
from conformance.results.entry import training_entry


class LossGap:
    """Running summary of the declared pair's per-step losses: O(1) memory whatever the number of steps.
    The relative gap is relative to the left side's loss (the benchmark: torch, porting from it)."""

    def __init__(self, item: Item):
        self.item = item
        self.left, self.right = item.case.frameworks[0], item.case.frameworks[1]
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.final: dict[str, float] = {}  # each side's last recorded loss
        self.steps, self.sum_abs, self.sum_rel = 0, 0.0, 0.0

    def update(self, losses: dict[str, float | None]) -> None:
        self.final.update({label: loss for label, loss in losses.items() if loss is not None})
        a, b = losses.get(self.left), losses.get(self.right)
        if a is None or b is None:
            return
        self.first = self.first or (a, b)
        self.last = (a, b)
        gap = abs(a - b)
        self.steps += 1
        self.sum_abs += gap
        with np.errstate(divide="ignore", invalid="ignore"):
            self.sum_rel += float(np.float64(gap) / abs(a)) if gap else 0.0


def unavailable(item: Item) -> str | None:
    """Why the item's dataset cannot be read here (its package is missing), or None."""
    name = item.case.data.dataset
    return datasets.unavailable(name) if name is not None else None


def accuracy(session: Any, item: Item) -> float:
    """The share of the dataset's held-out samples whose largest output is their class."""
    part = datasets.split(item.case.data.dataset, item.case.data.seed)
    outputs = np.asarray(session.predict(np.array(part.x_test)))  # a writable copy: frameworks may wrap it
    return float(np.mean(np.argmax(outputs, axis=1) == part.labels_test))


def summary(item: Item, gap: LossGap | None, sides: dict[str, Any], finished: bool) -> dict[str, Any] | None:
    """The item's `training` block (None when it does not train on a dataset): `sides` are the runner's, each
    with its session (a GPU item's CPU twins, `<framework>@cpu`, are not scored); the accuracy only after a
    run that finished (a framework error leaves a model mid-run)."""
    if gap is None:
        return None
    scores = {label: accuracy(side.session, item) for label, side in sides.items() if "@" not in label} \
        if finished else {}
    mean = (gap.sum_abs / gap.steps, gap.sum_rel / gap.steps) if gap.steps else (None, None)
    return training_entry(item.case.data.dataset, gap.steps, f"{gap.left}~{gap.right}", gap.final, scores,
                          gap.first, gap.last, *mean, datasets.DATASETS[item.case.data.dataset].test_samples)
