"""What each framework is fed of a replayed gradient sequence: its prescale factor, rounded to the item's
dtype once, and a missing gradient kept missing or given as zeros by the framework's policy
(Backend.missing_grad); and, for attribution, one side's gradients as another side would have been fed."""
from __future__ import annotations

import numpy as np

from conformance import backends
from conformance.cases.case import Item


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
