"""`conformance.record(optimizer, path, model=model)`: a user's torch training loop, recorded as a trace.

    with conformance.record(optimizer, "traces/my_model", model=model) as trace:
        for x, y in batches:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            trace.loss(loss)          # optional
            optimizer.step()

The loop does not change: the recorder hooks `optimizer.step` (torch's step pre-hook), so it sees each
parameter's gradient and each group's learning rate exactly as the step is about to use them (after a
scheduler or a GradScaler's unscale). It writes the trace folder of conformance/traces/format.py: the
initial parameters when the block starts, then one step folder per `step()`, each written under a
`.partial` name and renamed once complete (conformance/traces/writer.py), so a loop that crashes or is
interrupted leaves every complete step readable and the manifest says how the recording ended. Memory
held: one gradient at a time (its host copy, on a GPU), whatever the number of steps.

This is the one module outside conformance/backends/ that imports torch (tests/meta/test_layout.py
allows exactly it): it runs inside the user's torch process, on the user's own optimizer, and is never
imported by the suite itself (`conformance.record` imports it when called).
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from conformance.traces import format as trace_format
from conformance.traces.writer import TraceWriter

OPTIONS = ("maximize", "foreach", "differentiable", "capturable")


def _torch():
    import torch  # the user's torch, already imported by their loop

    return torch


def _replayable(tensor) -> None:
    if str(tensor.dtype).removeprefix("torch.") not in trace_format.DTYPES:
        raise TypeError(f"conformance.record: a {tensor.dtype} tensor cannot be replayed; parameters must be "
                        f"{', '.join(trace_format.DTYPES)}")


def _host(tensor) -> np.ndarray:
    """A tensor's values as a NumPy array on the host (a view of a CPU tensor, a copy of a GPU one)."""
    _replayable(tensor)
    return tensor.detach().cpu().numpy()


def _number(value: Any) -> Any:
    """A hyper-parameter as JSON: a tensor lr as its float, betas as a list."""
    if hasattr(value, "item"):
        return float(value.item())
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return value


def _named(optimizer, model) -> list[tuple[str, Any, str, str]]:
    """(name, parameter, module class name, qualified class) of every parameter the optimizer holds, in
    the model's order (named_parameters); without a model, group<g>.param<i> in the optimizer's order."""
    held = {id(p): (g, i, p) for g, group in enumerate(optimizer.param_groups) for i, p in enumerate(group["params"])}
    out = []
    if model is not None:
        for name, param in model.named_parameters():
            if id(param) in held:
                prefix = name.rpartition(".")[0]
                module = type(model.get_submodule(prefix))
                out.append((name, param, module.__name__, f"{module.__module__}.{module.__qualname__}"))
                del held[id(param)]
    for g, i, param in held.values():  # parameters the model does not own (or no model given)
        out.append((f"group{g}.param{i}", param, "", ""))
    return out


class Recorder:
    """The context manager `conformance.record` returns; `loss(value)` attaches a loss to the next step."""

    def __init__(self, optimizer, path: str | os.PathLike, model=None):
        torch = _torch()
        if not isinstance(optimizer, torch.optim.Adamax):
            raise TypeError(f"conformance.record records a torch.optim.Adamax; got {type(optimizer).__name__}")
        self.optimizer, self.model, self.path = optimizer, model, Path(path)
        self._loss: float | None = None
        self._handle = None
        self._named: list[tuple[str, Any, str, str]] = []
        self._writer: TraceWriter | None = None

    @property
    def steps(self) -> int:
        """Steps recorded so far."""
        return self._writer.steps if self._writer else 0

    def __enter__(self) -> Recorder:
        self._named = _named(self.optimizer, self.model)
        for _, param, _, _ in self._named:  # refused before anything is written
            _replayable(param)
        parameters = [{"name": name, "shape": list(p.shape), "dtype": str(p.dtype).removeprefix("torch."),
                       "module": module, "module_class": qualified} for name, p, module, qualified in self._named]
        self._writer = TraceWriter(self.path, parameters, self._optimizer(),
                                   {"torch": _torch().__version__, "recorder": "conformance.record"})
        self._writer.start(_host(p) for _, p, _, _ in self._named)
        self._handle = self.optimizer.register_step_pre_hook(self._before_step)
        return self

    def _optimizer(self) -> dict[str, Any]:
        """The optimizer as the manifest keeps it: its class, constructor values, torch's defaults, groups."""
        index = {id(p): i for i, (_, p, _, _) in enumerate(self._named)}
        groups = [{"params": [index[id(p)] for p in group["params"]],
                   **{k: _number(group[k]) for k in trace_format.HPARAMS}, **{k: group.get(k) for k in OPTIONS}}
                  for group in self.optimizer.param_groups]
        signature = inspect.signature(_torch().optim.Adamax.__init__).parameters
        return {"class": "torch.optim.Adamax",
                "constructor": {k: _number(v) for k, v in self.optimizer.defaults.items()},
                "torch_defaults": {k: _number(signature[k].default) for k in trace_format.HPARAMS},
                "groups": groups}

    def loss(self, value: Any) -> None:
        """The loss of the step about to be taken (a float or a one-element tensor); optional."""
        self._loss = float(value.item() if hasattr(value, "item") else value)

    def _before_step(self, optimizer, args: tuple, kwargs: dict) -> None:
        if len(args) > 1 or kwargs.get("closure") is not None:  # args[0] is the optimizer
            raise RuntimeError("conformance.record: optimizer.step(closure) computes its gradients inside the "
                               "step, after the recorder has seen them; call loss.backward() before step()")
        for _, param, _, _ in self._named:
            if param.grad is not None and param.grad.is_sparse:
                raise TypeError("conformance.record: sparse gradients cannot be recorded (Adamax does not take them)")
        grads = ((i, _host(p.grad)) for i, (_, p, _, _) in enumerate(self._named) if p.grad is not None)
        self._writer.step([_number(g["lr"]) for g in optimizer.param_groups], self._loss, grads)
        self._loss = None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._writer is not None:
            self._writer.finish(None if exc_type is None else f"{exc_type.__name__}: {exc}")
        return False  # the loop's exception goes on


def record(optimizer, path: str | os.PathLike, model=None) -> Recorder:
    """Record a torch.optim.Adamax loop into the trace folder `path` (it must not exist, or be empty).
    `model`: the module whose parameters the optimizer holds, for their names and module types (MindSpore
    names a LayerNorm's weight gamma, which decides its weight decay)."""
    return Recorder(optimizer, path, model=model)
