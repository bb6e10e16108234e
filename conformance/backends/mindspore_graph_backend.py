"""mindspore.nn.AdaMax run as a compiled graph (GRAPH_MODE), as most MindSpore training runs.

The same optimizer as the PyNative adapter, another execution mode: its Cell (weight decay with the
name filter, learning-rate lookup, the ApplyAdaMax kernel) is compiled once into a MindSpore graph at
the first step and launched as that graph every step; PyNative dispatches the same ops one by one.
The model's forward and backward pass stay in PyNative (under autograd the gradients are an input to
the step, as in the PyNative adapter).

MindSpore's execution mode is process-global and the suite's processes run PyNative (the MindSpore
adapter binds it): each step switches to GRAPH_MODE around the optimizer call and back. Measured with
MindSpore 2.10 on CPU: the graph is compiled once and reused across switches (~1 ms a step), while
`mindspore.jit` on the optimizer call inside PyNative recompiled it at every step (~0.25 s a step).
Formula: nn.AdaMax's.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from conformance.backends.base import SessionSpec
from conformance.backends.mindspore_backend import MindSporeBackend, MindSporeSession


class GraphAdaMaxSession(MindSporeSession):
    @contextlib.contextmanager
    def _graph_mode(self) -> Iterator[None]:
        self.ms.set_context(mode=self.ms.GRAPH_MODE)
        try:
            yield
        finally:
            self.ms.set_context(mode=self.ms.PYNATIVE_MODE)

    def step(self, grads) -> None:
        native = self._last_grads if grads is None else tuple(self._tensor(g) for g in grads)
        self._lr_used = self._current_lr()
        with self._graph_mode():
            self.optimizer(native)

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "mode": "graph"}


class GraphAdaMaxBackend(MindSporeBackend):
    name = "mindspore_graph"
    package = "mindspore"  # the distribution whose version the run records
    formula_of = "mindspore"  # nn.AdaMax's formula, compiled

    def api(self) -> dict[str, Any]:
        # the constructor is nn.AdaMax's: its announced changes are recorded once, under `mindspore`
        return {**super().api(), "class": "mindspore.nn.AdaMax (GRAPH_MODE)", "notices": []}

    def open(self, spec: SessionSpec) -> GraphAdaMaxSession:
        return GraphAdaMaxSession(spec)


BACKEND = GraphAdaMaxBackend()
