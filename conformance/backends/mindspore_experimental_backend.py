"""Control implementation: mindspore.experimental.optim.Adamax, which follows torch's formula.

It shares MindSpore's model, data and gradient plumbing with the nn.AdaMax adapter and differs only in
the optimizer, its state names (exp_avg / exp_inf) and its formula (torch's eps inside the max and decay
on every parameter, with MindSpore's float32 scalars: FEATURES["mindspore_experimental"] in
numerics/formulas.py).
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from conformance.backends.base import Session, SessionSpec, describe_signature, lr_at
from conformance.backends.mindspore_backend import (
    MindSporeBackend,
    MindSporeSession,
    _ms,
)

NATIVE_NAMES = {"lr": "lr", "betas": "betas", "eps": "eps", "weight_decay": "weight_decay"}


def _native(hparams: dict[str, Any]) -> dict[str, Any]:
    """Neutral values -> Adamax keywords; a per-step lr list starts at its first value (step() goes on)."""
    return {NATIVE_NAMES[k]: tuple(float(b) for b in v) if k == "betas" else lr_at(v, 0) for k, v in hparams.items()}


class ExperimentalAdamaxSession(MindSporeSession):
    """Parameter groups are torch's (params, lr, betas, eps, weight_decay each); the optimizer keeps its
    parameters in group order, so gradients go in and state comes out through `order`."""

    def _make_optimizer(self, spec: SessionSpec):
        kwargs = _native(spec.hparams)
        kwargs.update(spec.item.case.optimizer.extras.get("mindspore_experimental", {}))
        groups = self.groups or [(list(range(len(self.param_list))), {})]
        self.order = [i for indices, _ in groups for i in indices]  # optimizer position -> model index
        self.lrs = [given.get("lr", spec.hparams.get("lr")) for _, given in groups]
        self.steps_done = 0
        params = [{"params": [self.param_list[i] for i in indices], **_native(given)} for indices, given in groups]
        return self.ms.experimental.optim.Adamax(params, **kwargs)

    def step(self, grads) -> None:
        # a per-step lr list, assigned as mindspore.experimental.optim.lr_scheduler does (ops.assign on the
        # group's lr; set_data on it was not seen by the compiled step once there were two groups)
        for lr, group in zip(self.lrs, self.optimizer.param_groups):
            if isinstance(lr, tuple):
                self.ms.ops.assign(group["lr"], self.ms.Tensor(lr_at(lr, self.steps_done), self.ms.float32))
        self.steps_done += 1
        native = self._last_grads if grads is None else tuple(self._tensor(grads[i]) for i in self.order)
        self._lr_used = self._current_lr()
        self.optimizer(native)

    def _model_order(self, tensors) -> list[np.ndarray]:
        out: list[Any] = [None] * len(self.order)
        for position, index in enumerate(self.order):
            out[index] = tensors[position].asnumpy()
        return out

    def state(self) -> dict[str, list[np.ndarray]]:
        return {"m": self._model_order(self.optimizer.exp_avg), "u": self._model_order(self.optimizer.exp_inf)}

    def _current_lr(self) -> float | list[float]:
        lrs = [float(np.asarray(g["lr"].asnumpy()).reshape(-1)[0]) for g in self.optimizer.param_groups]
        return lrs if self.groups else lrs[0]

    # its state is exp_avg / exp_inf / per-group steps, not nn.AdaMax's Parameters: no state layout
    native_state = Session.native_state
    load_native_state = Session.load_native_state

    def hparams(self) -> dict[str, Any]:
        out = self._group_hparams(self.optimizer.param_groups[0])
        if self.groups:
            out["groups"] = [{"params": indices, **self._group_hparams(g)}
                             for (indices, _), g in zip(self.groups, self.optimizer.param_groups)]
        return out

    @staticmethod
    def _group_hparams(group: dict[str, Any]) -> dict[str, Any]:
        lr = group["lr"]
        return {"lr": float(lr.asnumpy()) if hasattr(lr, "asnumpy") else float(lr),
                "betas": tuple(float(b) for b in group["betas"]), "eps": float(group["eps"]),
                "weight_decay": float(group["weight_decay"]), "maximize": bool(group["maximize"])}


class ExperimentalAdamaxBackend(MindSporeBackend):
    name = "mindspore_experimental"
    replays_traces = takes_groups = True
    package = "mindspore"  # the distribution whose version the run records
    extra_options = {"maximize": {"type": "boolean"}}
    missing_grad = "zeros"
    state_layout = None  # see ExperimentalAdamaxSession

    def api(self) -> dict[str, Any]:
        signature = inspect.signature(_ms().experimental.optim.Adamax.__init__)
        return describe_signature("mindspore.experimental.optim.Adamax", signature,
                                  {native: neutral for neutral, native in NATIVE_NAMES.items()},
                                  _ms().experimental.optim.Adamax.__doc__)

    def _probe_optimizer(self, ms, params: list, hparams: dict[str, Any], lr_tensor: Any):
        kwargs = {NATIVE_NAMES[k]: (tuple(v) if isinstance(v, list) else v) for k, v in hparams.items()}
        if lr_tensor is not None:
            kwargs["lr"] = lr_tensor
        return ms.experimental.optim.Adamax(params, **kwargs)

    def open(self, spec: SessionSpec) -> ExperimentalAdamaxSession:
        return ExperimentalAdamaxSession(spec)


BACKEND = ExperimentalAdamaxBackend()
