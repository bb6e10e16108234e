"""One item's divergence curves drawn by matplotlib as an SVG string, to be inlined in its page.

Grid: one row per quantity (params, state, loss), one column per metric (max abs, max rel, max ULP),
one line per pair, log scale. Tolerances are dashed lines in their pair's colour; the first divergent
step of each pair is a vertical line; a framework's first NaN/Inf step is a black dash-dot line; steps
where a metric was infinite are marked at the top edge (a log axis cannot draw them).

An item that trains on a real dataset gets a second figure (`loss_svg`): both frameworks' loss curves on
one axis, and beside it the pair's relative loss gap per step against MindFormers' mean-relative bound.
"""
from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

from conformance.cases.case import QUANTITIES
from conformance.report.series import Curves
from conformance.results.entry import METRICS, MINDFORMERS

METRIC_TITLES = {"abs": "max abs difference", "rel": "max rel difference", "ulp": "max ULP distance"}
COLORS = {"torch~mindspore": "#1f77b4", "torch~oracle": "#ff7f0e", "mindspore~oracle": "#2ca02c",
          "torch~torch@cpu": "#9467bd"}
OTHER_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")
# Speed (profiled: these two were over half of a page's render time): tick labels as plain "1e-07"
# instead of mathtext, and titles at a fixed height instead of placed around every tick label's box.
_RC = {"svg.fonttype": "none", "font.size": 8, "axes.titley": 1.0, "axes.titlepad": 4.0}


def _color(label: str, order: list[str]) -> str:
    return COLORS.get(label) or OTHER_COLORS[order.index(label) % len(OTHER_COLORS)]


def tolerance_line(pair: dict[str, Any], quantity: str, metric: str) -> float | None:
    """The bound to draw for one panel, or None where it is not a single number.

    Against an oracle, atol is a multiple of eps x operand magnitude, element by element: no one line.
    """
    bound = (pair.get("tolerance") or {}).get(quantity) or {}
    if metric == "abs":
        value = None if pair.get("role") == "oracle" else bound.get("atol")
    elif metric == "rel":
        value = bound.get("rtol")
    else:
        value = bound.get("ulp")
    return float(value) if value else None


def _panel(ax: Any, curves: Curves, entry: dict[str, Any], quantity: str, metric: str, order: list[str]) -> None:
    drawn = False
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for label in order:
        curve = curves.curves.get(label, {}).get(quantity, {}).get(metric)
        if curve is None:
            continue
        color = _color(label, order)
        steps, values = curve.points()
        finite = np.where(np.isfinite(values) & (values > 0), values, np.nan)  # zero: exact agreement
        if np.isfinite(finite).any():
            ax.plot(steps, finite, color=color, lw=1.0, label=label)
            drawn = True
        infinite = np.isinf(values)
        if infinite.any():
            ax.plot(steps[infinite], np.full(infinite.sum(), 0.97), transform=top, ls="none", marker="^",
                    ms=4, color=color, label=f"{label}: infinite (NaN/Inf on one side)")
        pair = entry.get("pairs", {}).get(label, {})
        bound = tolerance_line(pair, quantity, metric)
        if bound is not None:
            ax.axhline(bound, color=color, ls="--", lw=0.9, label=f"{label} tolerance")
        first = pair.get("first_divergence")
        if first and first.get("quantity") == quantity:
            ax.axvline(first["step"], color="#d62728", ls=":", lw=1.2,
                       label=f"{label}: first divergent step")
    for side, quantities in (entry.get("nonfinite") or {}).items():
        step = (quantities or {}).get(quantity)
        if step is not None:
            ax.axvline(step, color="black", ls="-.", lw=1.0, label=f"{side} {quantity}: first NaN/Inf step")
    if drawn:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
        ax.yaxis.set_minor_locator(NullLocator())  # decades only: minor ticks cost a Tick object each
    else:
        ax.text(0.5, 0.5, "zero at every step\n(exact agreement)", ha="center", va="center",
                transform=ax.transAxes, color="#555", fontsize=9)
        ax.set_yticks([])
    ax.set_title(f"{quantity}: {METRIC_TITLES[metric]}", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", lw=0.3, alpha=0.6)


def item_svg(curves: Curves, entry: dict[str, Any], salt: str) -> str | None:
    """The item's plot grid as an inline-ready <svg> element, or None when no step was recorded.

    `salt` makes matplotlib's internal element ids unique and stable, so several SVGs can share a page.
    """
    order = [label for label in entry.get("pairs", {}) if label in curves.curves]
    order += [label for label in curves.curves if label not in order]
    rows = [q for q in QUANTITIES if any(q in curves.curves[label] for label in order)]
    if not rows:
        return None
    with matplotlib.rc_context({**_RC, "svg.hashsalt": salt}):
        height = 2.3 * len(rows) + 0.9
        fig = Figure(figsize=(11, height))  # fixed margins: constrained layout doubled the render time
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.45 / height, top=1 - 0.85 / height,
                            hspace=0.45, wspace=0.22)
        axes = fig.subplots(len(rows), len(METRICS), sharex=True, squeeze=False)
        for r, quantity in enumerate(rows):
            for c, metric in enumerate(METRICS):
                _panel(axes[r][c], curves, entry, quantity, metric, order)
        for ax in axes[-1]:
            ax.set_xlabel("step", fontsize=8)
        handles: dict[str, Any] = {}
        for ax in axes.flat:
            for handle, text in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(text, handle)
        fig.legend(list(handles.values()), list(handles), loc="upper center",
                   ncol=min(4, len(handles)), fontsize=8, frameon=False)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]



def loss_svg(curves: Curves, entry: dict[str, Any], salt: str) -> str | None:
    """A training item's loss figure as an inline-ready <svg>, or None without loss curves: left, each
    framework's loss (window means, log scale); right, the training pair's relative loss gap |a - b| / |a|
    per step (window maxima), with MindFormers' 1% mean-relative bound dashed and the run's mean dotted."""
    training = entry.get("training") or {}
    if not curves.losses or not training:
        return None
    order = list(curves.losses)
    with matplotlib.rc_context({**_RC, "svg.hashsalt": f"{salt}-loss"}):
        fig = Figure(figsize=(11, 3.4))
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.16, top=0.88, wspace=0.18)
        losses, gaps = fig.subplots(1, 2)
        for i, label in enumerate(order):
            steps, values = curves.losses[label].points()
            losses.plot(steps, values, color=(COLORS["torch~mindspore"], "#ff7f0e", *OTHER_COLORS)[i % 6],
                        lw=1.0, label=label)
        losses.set_yscale("log")
        losses.set_title(f"training loss on {training.get('dataset')} (each framework its own autograd)", fontsize=9)
        if curves.loss_gap is not None:
            steps, values = curves.loss_gap.points()
            shown = values > 0  # zero: the same loss, not drawable on a log axis
            gaps.plot(steps[shown], values[shown], color="#555", lw=1.0, label=f"{training.get('pair')}: |a - b| / |a|")
            gaps.set_yscale("log")
        gaps.axhline(MINDFORMERS["mean_rel"], color="#d62728", ls="--", lw=0.9,
                     label="MindFormers: mean rel < 1%")
        mean = (training.get("loss_gap") or {}).get("mean_rel")
        if mean:
            gaps.axhline(mean, color="#555", ls=":", lw=1.0, label="mean over the run")
        gaps.set_title("relative loss gap per step", fontsize=9)
        for ax in (losses, gaps):
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.grid(True, which="major", lw=0.3, alpha=0.6)
            ax.legend(fontsize=8, frameon=False)
            if ax.get_yscale() == "log":
                ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=True))
                ax.yaxis.set_minor_locator(NullLocator())
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]
