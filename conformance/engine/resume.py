"""A case's `resume:`: the compared steps start from an optimizer state one framework trained alone.

Why: porting a training run means carrying a checkpoint from torch to MindSpore mid-training (or back).
`resume: {steps: k, from: torch}` trains k steps in torch alone; its parameters and its optimizer state,
in its own layout (Session.native_state), become every compared side's start: each side is built on
those parameters and loads the state converted to its own layout by conformance.convert_state
(Session.load_native_state). The compared steps are then k+1 .. k+steps, on the batches and gradients a
run of k+steps would have drawn there, so the `from` side continues exactly as it would have without the
interruption, and the other side shows what the conversion carries over. The state is the `from`
framework's real one (a torch Adamax.state_dict()), converted as a user would convert it.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance import backends, convert_state
from conformance.backends.base import SessionSpec
from conformance.cases.case import Item
from conformance.engine import feeding
from conformance.errors import FrameworkError


@dataclass
class Warm:
    """What the warm-up leaves: the step it reached, parameters (neutral names, float64), the `from`
    framework's optimizer state in its own layout, and the steps each parameter took."""

    steps: int
    params: dict[str, np.ndarray]
    state: dict[str, Any]
    counts: list[int]


def warm_up(item: Item, init: dict[str, np.ndarray], hparams: dict[str, Any], batches: Iterator,
            replays: Iterator | None) -> Warm:
    """Train the case's resumed steps in its `from` framework alone, drawing from the item's own batch and
    gradient streams (the compared steps go on drawing from them). A framework error is the item's."""
    spec = item.case.resume
    try:
        session = backends.get(spec.source).open(SessionSpec(item=item, device=item.device, init=init,
                                                              hparams=hparams))
    except Exception as exc:
        raise FrameworkError(spec.source, 0, exc) from exc
    shapes = [a.shape for a in init.values()]
    counts = [0] * len(init)
    for step in range(1, spec.steps + 1):
        replay, batch = (next(replays) if replays is not None else None), next(batches)
        try:
            if replay is None:
                _, grads = session.loss_and_grads(*batch)
                session.step(None)
            else:
                grads = feeding.feed(spec.source, item, replay, shapes)
                session.step(grads)
        except Exception as exc:
            raise FrameworkError(spec.source, step, exc) from exc
        counts = [c + (g is not None) for c, g in zip(counts, grads)]
    params = {name: np.array(p, dtype=np.float64) for name, p in zip(init, session.params())}
    return Warm(spec.steps, params, session.native_state(), counts)


def load(side: Any, warm: Warm) -> None:
    """Give one compared side the warm-up's optimizer state, converted to its framework's layout with
    the side's own parameter names and beta1 (MindSpore's beta1_power is the powers of its beta1)."""
    layout = backends.get(side.framework).state_layout
    try:
        state = convert_state(warm.state, to=layout, names=side.session.native_names,
                              beta1=float(side.hparams["betas"][0]))
        side.session.load_native_state(state)
    except Exception as exc:  # a state the framework cannot take: its behaviour, before the first step
        raise FrameworkError(side.label, warm.steps, exc) from exc
