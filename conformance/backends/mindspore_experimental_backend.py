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

from conformance.backends.base import Session, SessionSpec, describe_signature
from conformance.backends.mindspore_backend import (
    MindSporeBackend,
    MindSporeSession,
    _ms,
)

NATIVE_NAMES = {"lr": "lr", "betas": "betas", "eps": "eps", "weight_decay": "weight_decay"}


class ExperimentalAdamaxSession(MindSporeSession):
    def _make_optimizer(self, spec: SessionSpec):
        kwargs = {NATIVE_NAMES[k]: (tuple(float(b) for b in v) if k == "betas" else float(v))
                  for k, v in spec.hparams.items()}
        kwargs.update(spec.item.case.optimizer.extras.get("mindspore_experimental", {}))
        return self.ms.experimental.optim.Adamax(self.param_list, **kwargs)

    def state(self) -> dict[str, list[np.ndarray]]:
        return {"m": [t.asnumpy() for t in self.optimizer.exp_avg],
                "u": [t.asnumpy() for t in self.optimizer.exp_inf]}

    def _current_lr(self) -> float:
        return float(np.asarray(self.optimizer.param_groups[0]["lr"].asnumpy()).reshape(-1)[0])

    # its state is exp_avg / exp_inf / per-group steps, not nn.AdaMax's Parameters: no state layout
    native_state = Session.native_state
    load_native_state = Session.load_native_state

    def hparams(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        lr = group["lr"]
        return {"lr": float(lr.asnumpy()) if hasattr(lr, "asnumpy") else float(lr),
                "betas": tuple(float(b) for b in group["betas"]), "eps": float(group["eps"]),
                "weight_decay": float(group["weight_decay"]), "maximize": bool(group["maximize"])}


class ExperimentalAdamaxBackend(MindSporeBackend):
    name = "mindspore_experimental"
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
