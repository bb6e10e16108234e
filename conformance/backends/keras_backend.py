"""Keras 3 adapter: keras layers + keras.optimizers.Adamax on Keras's torch backend. The only module
that imports keras.

Keras runs on the backend named by KERAS_BACKEND when it is first imported; this adapter sets
`torch` (torch is the suite's own dependency, no TensorFlow or JAX needed) and reports the item
unavailable if keras was already imported on another backend. On the torch backend Keras swaps its
Adamax for a foreach implementation (keras/src/backend/torch/optimizers/torch_adamax.py): the same
formula as the generic one, in the variable's dtype:

    p <- p * (1 - wd * lr)                 (decoupled decay, before the step, every variable; the factor is
                                            a float32 tensor, as Keras's lr variable is)
    m <- b1*m + (1-b1)*g;  u <- max(b2*u, |g|)
    p <- p - (m*lr) / ((u + eps) * (1 - b1**t))    (b1**t and lr in the variable's dtype)

Keras's Dense kernel is (in, out), torch's weight (out, in): values cross the interface transposed
into the neutral layout. Keras skips a variable whose gradient is None but counts the step for every
variable (one `iterations`); this adapter is fed zeros for a missing gradient instead, as MindSpore is.
"""
from __future__ import annotations

import functools
import inspect
import os
from typing import Any

import numpy as np

from conformance.backends.base import (
    Backend,
    Session,
    SessionSpec,
    decay_as_none_kwargs,
    describe_signature,
    import_problem,
)
from conformance.engine import models

NATIVE_NAMES = {"lr": "learning_rate", "betas": ("beta_1", "beta_2"), "eps": "epsilon", "weight_decay": "weight_decay"}
LAYERNORM_EPS = 1e-5  # torch's default (Keras's LayerNormalization defaults to 1e-3)
_ROLE = {"dense": {"weight": "kernel", "bias": "bias"}, "layernorm": {"weight": "gamma", "bias": "beta"}}


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras  # imported lazily: listing backends must not cost a framework import

    return keras


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    problem = import_problem("keras", _keras)
    if problem and "not installed" in problem:
        problem += " (tox -e matrix installs it)"
    if problem is None and _keras().config.backend() != "torch":
        return (f"keras runs on its {_keras().config.backend()} backend in this process (KERAS_BACKEND); "
                "this adapter measures the torch backend: unset KERAS_BACKEND or set it to torch")
    return problem


def native_kwargs(hparams: dict[str, Any]) -> dict[str, Any]:
    """Neutral hyper-parameters -> this optimizer's keywords (base.decay_as_none_kwargs)."""
    return decay_as_none_kwargs(hparams, NATIVE_NAMES)


class KerasSession(Session):
    def __init__(self, spec: SessionSpec):
        keras = _keras()
        import torch  # Keras's backend: its variables are torch Parameters

        self.keras, self.torch = keras, torch
        if spec.item.case.optimizer.schedule is not None:
            raise NotImplementedError("the keras adapter maps no lr schedule (per-step lr lists work)")
        self.np_dtype = np.dtype(spec.item.dtype)
        self.model, self.kinds = self._build(spec)
        self.variables, self.native_names, self.transposed = self._variables(spec)
        for var, neutral, flip in zip(self.variables, spec.init, self.transposed):
            value = spec.init[neutral].T if flip else spec.init[neutral]
            var.assign(np.ascontiguousarray(value, dtype=self.np_dtype))
        self.loss_fn = (keras.losses.MeanAbsoluteError() if spec.item.case.loss == "l1"
                        else keras.losses.MeanSquaredError())
        kwargs = native_kwargs(spec.hparams)
        lr = spec.hparams.get("lr")
        self.lr_list = tuple(lr) if isinstance(lr, (list, tuple)) else None
        self.optimizer = keras.optimizers.Adamax(**kwargs)
        self.optimizer.build(self.variables)
        self.steps_done = 0
        self._lr_used = float(self.optimizer.learning_rate)

    def _build(self, spec: SessionSpec):
        keras, dtype = self.keras, spec.item.dtype
        layers = models.assemble(
            spec.item.case.model, lambda a, b: keras.layers.Dense(b, dtype=dtype),
            lambda n: keras.layers.LayerNormalization(epsilon=LAYERNORM_EPS, dtype=dtype),
            lambda name: keras.layers.Activation(name, dtype=dtype))
        for name, layer in layers.items():
            layer.name = name  # unique, and the neutral layer name (Keras would number them)
        model = keras.Sequential([keras.Input((spec.item.case.model.sizes[0],), dtype=dtype), *layers.values()])
        return model, {layer.name: layer.kind for layer in models.layers(spec.item.case.model)}

    def _variables(self, spec: SessionSpec):
        """Keras variables in neutral (model) order, their native names and whether each is transposed."""
        out, names, flips = [], [], []
        for neutral in spec.init:
            layer_name, role = neutral.rsplit(".", 1)
            kind = "layernorm" if self.kinds[layer_name] == "layernorm" else "dense"
            native = _ROLE[kind][role]
            layer = self.model.get_layer(layer_name)
            out.append(getattr(layer, native))
            names.append(f"{layer_name}.{native}")
            flips.append(native == "kernel")
        return out, names, flips

    def _neutral(self, tensor, flip: bool) -> np.ndarray:
        array = tensor.detach().cpu().numpy()
        return array.T if flip else array

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        for var in self.variables:
            var.value.grad = None
        inputs = self.torch.from_numpy(np.ascontiguousarray(x, dtype=self.np_dtype))
        target = self.torch.from_numpy(np.ascontiguousarray(y, dtype=self.np_dtype))
        loss = self.loss_fn(target, self.model(inputs))
        loss.backward()
        self._last_grads = [var.value.grad for var in self.variables]
        return float(loss.item()), [self._neutral(g, f).copy() for g, f in zip(self._last_grads, self.transposed)]

    def step(self, grads: list[np.ndarray] | None) -> None:
        if grads is None:
            native = self._last_grads
        else:
            native = [self.torch.from_numpy(np.ascontiguousarray(g.T if f else g, dtype=self.np_dtype))
                      for g, f in zip(grads, self.transposed)]
        if self.lr_list:
            self.optimizer.learning_rate.assign(self.lr_list[min(self.steps_done, len(self.lr_list) - 1)])
        self._lr_used = float(self.optimizer.learning_rate)  # the float32 variable's value
        self.optimizer.apply(native, self.variables)
        self.steps_done += 1

    def lr_used(self) -> float:
        return self._lr_used

    def params(self) -> list[np.ndarray]:
        return [self._neutral(v.value, f) for v, f in zip(self.variables, self.transposed)]

    def state(self) -> dict[str, list[np.ndarray]]:
        index = self.optimizer._get_variable_index  # Keras's own slot lookup (m and u per variable)
        return {key: [self._neutral(slots[index(v)].value, f) for v, f in zip(self.variables, self.transposed)]
                for key, slots in (("m", self.optimizer._m), ("u", self.optimizer._u))}

    def hparams(self) -> dict[str, Any]:
        opt = self.optimizer
        return {"lr": float(opt.learning_rate), "betas": (float(opt.beta_1), float(opt.beta_2)),
                "eps": float(opt.epsilon), "weight_decay": float(opt.weight_decay or 0.0)}


class KerasBackend(Backend):
    name = "keras"
    missing_grad = "zeros"  # see the module docstring
    extra_options: dict[str, dict] = {}

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu":
            return "the keras adapter runs on CPU only (its torch backend would need CUDA torch)"
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _keras().__version__

    def api(self) -> dict[str, Any]:
        neutral = {"learning_rate": "lr", "beta_1": "betas[0]", "beta_2": "betas[1]", "epsilon": "eps",
                   "weight_decay": "weight_decay"}
        return describe_signature("keras.optimizers.Adamax", inspect.signature(_keras().optimizers.Adamax.__init__),
                                  neutral)

    def build_info(self) -> dict[str, Any]:
        keras = _keras()
        import torch

        return {"version": keras.__version__, "backend": keras.config.backend(), "torch": torch.__version__,
                "floatx": keras.config.floatx()}

    def probe(self, request: dict[str, Any]) -> None:
        keras = _keras()
        param = request.get("param", {})
        shape, dtype = tuple(param.get("shape", [2])), param.get("dtype", "float32")
        variables = [] if request.get("empty_params") else [keras.Variable(np.zeros(shape, dtype), dtype=dtype)]
        kwargs: dict[str, Any] = {}
        for neutral, value in request.get("hparams", {}).items():
            native = NATIVE_NAMES[neutral]
            kwargs.update(dict(zip(native, value)) if isinstance(native, tuple) else {native: value})
        optimizer = keras.optimizers.Adamax(**kwargs)
        optimizer.apply([keras.ops.ones(shape, dtype) for _ in variables], variables)

    def open(self, spec: SessionSpec) -> KerasSession:
        return KerasSession(spec)


BACKEND = KerasBackend()
