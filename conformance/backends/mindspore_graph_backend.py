"""mindspore.nn.AdaMax compiled as a graph (`mindspore.jit`), as most MindSpore training runs.

The same optimizer as the PyNative adapter, another execution mode: the optimizer call (weight decay,
learning-rate lookup, the ApplyAdaMax kernel) and, under autograd, the forward and backward pass are
each compiled once into a MindSpore graph by `mindspore.jit` and then launched as one graph per step.
PyNative dispatches the same ops one by one. MindSpore binds a process to one device and a default
mode; `mindspore.jit` compiles a function within the PyNative process, so both adapters share a
process (and an xdist worker) without switching the global mode. Formula: nn.AdaMax's.
"""
from __future__ import annotations

from typing import Any

from .. import oracles
from .base import SessionSpec
from .mindspore_backend import MindSporeBackend, MindSporeSession


class GraphAdaMaxSession(MindSporeSession):
    def __init__(self, spec: SessionSpec):
        super().__init__(spec)
        # compiled at their first call (one graph per session: shapes and dtypes are fixed)
        self._grad_fn = self.ms.jit(self._grad_fn)
        self._graph_step = self.ms.jit(self._optimizer_step)

    def _optimizer_step(self, grads: tuple) -> Any:
        return self.optimizer(grads)

    def step(self, grads) -> None:
        native = self._last_grads if grads is None else tuple(self._tensor(g) for g in grads)
        self._lr_used = self._current_lr()
        self._graph_step(native)


class GraphAdaMaxBackend(MindSporeBackend):
    name = "mindspore_graph"
    formula = staticmethod(oracles.mindspore_adamax)

    def open(self, spec: SessionSpec) -> GraphAdaMaxSession:
        return GraphAdaMaxSession(spec)


BACKEND = GraphAdaMaxBackend()
