"""Where each step's gradients come from and how each framework is fed them.

Shared by the runner (the compared steps) and the resume warm-up (engine/resume.py: the steps one
framework trains alone before them), so both draw the same sequence and feed it the same way.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from conformance import backends
from conformance.cases.case import Item
from conformance.engine import models
from conformance.errors import FrameworkError
from conformance.traces.format import TraceError


def gradient_stream(item: Item, init: dict[str, np.ndarray]) -> Iterator[list[np.ndarray | None]] | None:
    """The replayed sequence (generated, or a trace's recorded gradients; one per parameter per step), or
    None: the frameworks' autograd (or one framework's, replayed to the others) gives the gradients."""
    return models.gradient_stream(item.case, init)


def replay_source(item: Item) -> str | None:
    """The framework whose autograd gradients are replayed to every side, or None."""
    spec = item.case.gradients
    return spec.source if spec.mode == "replay" and spec.source not in ("generated", "trace") else None


def feed(framework: str, item: Item, replay: list[np.ndarray | None],
          shapes: list[tuple[int, ...]]) -> list[np.ndarray | None]:
    """A framework's copy of a replayed gradient: prescaled, rounded to the dtype once, and a missing
    gradient either kept missing (a framework that skips such parameters) or given as zeros."""
    factor = item.case.gradients.factor(framework)
    zeros = backends.get(framework).missing_grad == "zeros"
    grads: list[np.ndarray | None] = []
    for g, shape in zip(replay, shapes):
        if g is None:
            grads.append(np.zeros(shape, dtype=item.dtype) if zeros else None)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                grads.append(np.asarray(g if factor == 1.0 else g * factor, dtype=item.dtype))
    return grads


def as_fed_to(item: Item, grads: list, source: str, framework: str, shapes: list[tuple[int, ...]]) -> list:
    """The gradients `source` received, as `framework` would have been fed them: its prescale factor
    instead of the source's, and a missing gradient kept missing or given as zeros by its policy."""
    factor = item.case.gradients.factor(framework) / item.case.gradients.factor(source)
    zeros = backends.get(framework).missing_grad == "zeros"
    out = []
    for g, shape in zip(grads, shapes):
        if g is None:
            out.append(np.zeros(shape, dtype=item.dtype) if zeros else None)
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                out.append(g if factor == 1.0 else np.asarray(g * factor, dtype=g.dtype))
    return out


def next_replay(stream: Iterator[list[np.ndarray | None]] | None, step: int) -> list[np.ndarray | None] | None:
    """The next replayed gradients; a trace file that went bad after the case was loaded ends the item
    as an error naming the file and step."""
    try:
        return next(stream) if stream is not None else None
    except TraceError as exc:
        raise FrameworkError("trace", step, exc) from exc
