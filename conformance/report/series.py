"""Per-step curves for the plots, read from an item's JSONL one line at a time.

Each curve is the per-step maximum over all tensors of one (pair, quantity, metric). A run longer than
`MAX_POINTS` steps is reduced to `MAX_POINTS` windows, each keeping its largest value and the step where
it occurred, so spikes survive and memory stays flat however long the run. This is for drawing only:
the recorded maxima in summary.json come from the verdict, never from here.

For an item that trains on a real dataset (`loss_pair` given) the loss curves themselves are read too:
each framework's loss, as the mean of each window (a minibatch loss is noisy; a window's mean is what a
training log shows), and the pair's relative loss gap per step, as its window maximum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conformance.results import storage
from conformance.results.entry import METRICS

MAX_POINTS = 2000


class WindowMax:
    """Largest value per window of `width` consecutive steps, with the step that reached it."""

    def __init__(self, total_steps: int, max_points: int = MAX_POINTS):
        total_steps = max(total_steps, 1)
        self.width = max(1, math.ceil(total_steps / max_points))
        count = math.ceil(total_steps / self.width)
        self.steps = np.zeros(count, dtype=np.int64)
        self.values = np.full(count, np.nan)

    def add(self, step: int, value: float) -> None:
        index = min((step - 1) // self.width, len(self.values) - 1)
        if not value <= self.values[index]:  # also true while the slot is still NaN (empty)
            self.values[index] = value
            self.steps[index] = step

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of the filled windows, in step order."""
        filled = ~np.isnan(self.values)
        return self.steps[filled], self.values[filled]


class WindowMean:
    """Mean value per window of `width` consecutive steps, drawn at the window's middle step."""

    def __init__(self, total_steps: int, max_points: int = MAX_POINTS):
        total_steps = max(total_steps, 1)
        self.width = max(1, math.ceil(total_steps / max_points))
        count = math.ceil(total_steps / self.width)
        self.sums = np.zeros(count)
        self.counts = np.zeros(count, dtype=np.int64)

    def add(self, step: int, value: float) -> None:
        index = min((step - 1) // self.width, len(self.sums) - 1)
        self.sums[index] += value
        self.counts[index] += 1

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        filled = self.counts > 0
        middle = np.arange(len(self.sums)) * self.width + (self.width + 1) / 2
        return middle[filled], self.sums[filled] / self.counts[filled]


@dataclass
class Curves:
    """What one item's JSONL holds for plotting: curves[pair][quantity][metric], and where metrics were infinite."""

    total: int
    max_points: int = MAX_POINTS
    steps_read: int = 0
    curves: dict[str, dict[str, dict[str, WindowMax]]] = field(default_factory=dict)
    first_infinite: dict[str, dict[str, int]] = field(default_factory=dict)
    losses: dict[str, WindowMean] = field(default_factory=dict)  # framework -> its loss curve (training items)
    loss_gap: WindowMax | None = None  # the training pair's relative loss gap |a - b| / |a|

    def add_losses(self, step: int, losses: dict[str, float | None], pair: tuple[str, str]) -> None:
        for label, value in losses.items():
            if value is not None:
                self.losses.setdefault(label, WindowMean(self.total, self.max_points)).add(step, float(value))
        a, b = losses.get(pair[0]), losses.get(pair[1])
        if a is not None and b is not None and a != 0:
            self.loss_gap = self.loss_gap or WindowMax(self.total, self.max_points)
            self.loss_gap.add(step, abs(a - b) / abs(a))

    def add(self, step: int, label: str, quantity: str, tensors: dict[str, dict]) -> None:
        by_metric = self.curves.setdefault(label, {}).setdefault(quantity, {})
        for metric in METRICS:
            value = max(float(t[metric]) for t in tensors.values())
            curve = by_metric.get(metric)
            if curve is None:
                curve = by_metric[metric] = WindowMax(self.total, self.max_points)
            curve.add(step, value)
            if math.isinf(value):
                self.first_infinite.setdefault(label, {}).setdefault(quantity, step)

    @property
    def window(self) -> int:
        """Steps per plotted point (1: every step is drawn)."""
        return max(1, math.ceil(self.total / self.max_points))


def read_curves(path: Path, total_steps: int, max_points: int = MAX_POINTS,
                loss_pair: tuple[str, str] | None = None) -> Curves:
    """Stream `path` (never loaded whole) into per-window maxima; `total_steps` sizes the windows; with
    `loss_pair` (a training item's pair) also the loss curves and that pair's relative loss gap."""
    curves = Curves(total=max(total_steps, 1), max_points=max_points)
    for record in storage.read_steps(path):
        step = int(record["step"])
        curves.steps_read = max(curves.steps_read, step)
        if loss_pair is not None and record.get("loss"):
            curves.add_losses(step, record["loss"], loss_pair)
        for label, quantities in record.get("pairs", {}).items():
            for quantity, tensors in quantities.items():
                if tensors:
                    curves.add(step, label, quantity, tensors)
    return curves
