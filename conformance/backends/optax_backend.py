"""optax adapter: a functional JAX model + optax.adamax, the step under `jax.jit`. The only module that
imports jax or optax (optax_adamaxw_backend.py reuses its session for optax.adamaxw).

optax.adamax is `scale_by_adamax` then `scale_by_learning_rate` (optax/_src/transform.py): eps inside
the max, as torch, with m as (1-b1)*g + b1*m, the bias correction 1 - b1**count in the state's count
(int32) and the update (m/(1-b1**t))/u * -lr added to the parameter. optax.adamax has no weight
decay; a case's `weight_decay` is L2 as in torch: `optax.chain(optax.add_decayed_weights(wd),
optax.adamax(...))`, the decay added to the gradient before the moments. optax.adamaxw (optax/_src/
alias.py) is optax's own AdaMax with weight decay: `scale_by_adamax`, then `add_decayed_weights(wd)`
on the update, then `scale_by_learning_rate`, so p - lr*(m/(1-b1**t)/u + wd*p): decoupled, as Keras,
with a default weight_decay of 1e-4. optax has no default learning rate: under `defaults: native` a
case gives `optimizer.<name>.learning_rate`; the other defaults are read from the transform's signature.

JAX computes in float32 unless x64 is enabled; a float64 item runs inside `jax.experimental.enable_x64()`
(float32 and float16 items run with JAX's default configuration, as most users run it).
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import logging
from typing import Any

import numpy as np

from conformance.backends.base import Backend, Session, SessionSpec, describe_signature, import_problem
from conformance.engine import models

log = logging.getLogger("conformance.optax")
NATIVE_NAMES = {"lr": "learning_rate", "betas": ("b1", "b2"), "eps": "eps", "weight_decay": "weight_decay"}
LAYERNORM_EPS = 1e-5  # torch's default


def _jax():
    import jax  # imported lazily: listing backends must not cost a framework import
    import optax

    jax.config.update("jax_platforms", "cpu")
    return jax, optax


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    missing = [m for m in ("jax", "optax") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{' and '.join(missing)} not installed in this environment (tox -e matrix installs them)"
    return import_problem("optax", _jax)


def _forward(jnp, jax, spec: SessionSpec):
    """The case's model as a pure function of (params in neutral order, x): torch's layer semantics."""
    layers = models.layers(spec.item.case.model)
    index = {name: i for i, name in enumerate(spec.init)}
    acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}

    def forward(params, x):
        for layer in layers:
            if layer.kind == "dense":
                x = x @ params[index[f"{layer.name}.weight"]].T + params[index[f"{layer.name}.bias"]]
            elif layer.kind == "layernorm":
                mean = x.mean(-1, keepdims=True)
                var = ((x - mean) ** 2).mean(-1, keepdims=True)
                x = (x - mean) / jnp.sqrt(var + LAYERNORM_EPS) * params[index[f"{layer.name}.weight"]] \
                    + params[index[f"{layer.name}.bias"]]
            else:
                x = acts[layer.activation](x)
        return x
    return forward


def native_defaults(transform: str) -> dict[str, Any]:
    """The neutral defaults of optax.<transform> as its signature gives them (adamax has no weight decay)."""
    params = inspect.signature(getattr(_jax()[1], transform)).parameters
    return {"betas": (float(params["b1"].default), float(params["b2"].default)), "eps": float(params["eps"].default),
            "weight_decay": float(params["weight_decay"].default) if "weight_decay" in params else 0.0}


class OptaxSession(Session):
    def __init__(self, spec: SessionSpec, name: str = "optax", transform: str = "adamax"):
        jax, optax = _jax()
        self.jax, self.optax = jax, optax
        jnp = jax.numpy
        self.x64 = spec.item.dtype == "float64"
        self.np_dtype = np.dtype(spec.item.dtype)
        if spec.item.case.optimizer.schedule is not None:
            raise NotImplementedError("the optax adapter maps no lr schedule (per-step lr lists work)")
        given = spec.item.case.optimizer.extras.get(name, {})
        if "lr" not in spec.hparams and "learning_rate" not in given:
            raise ValueError(f"optax.{transform} has no default learning rate: give optimizer.lr, or under "
                             f"`defaults: native` optimizer.{name}.learning_rate")
        self.hp = {**native_defaults(transform), "lr": given.get("learning_rate"), **spec.hparams}
        lr = self.hp["lr"]
        self.lr_list = tuple(float(v) for v in lr) if isinstance(lr, (list, tuple)) else None
        learning_rate = (lambda count: jnp.asarray(self.lr_list)[jnp.minimum(count, len(self.lr_list) - 1)]) \
            if self.lr_list else float(lr)
        b1, b2 = (float(b) for b in self.hp["betas"])
        wd = float(self.hp["weight_decay"] or 0.0)
        if transform == "adamaxw":  # decoupled: its own add_decayed_weights, on the update, before the lr
            self.tx = optax.adamaxw(learning_rate, b1=b1, b2=b2, eps=float(self.hp["eps"]), weight_decay=wd)
        else:  # L2, as torch: the decay into the gradient, before the moments
            adamax = optax.adamax(learning_rate, b1=b1, b2=b2, eps=float(self.hp["eps"]))
            self.tx = optax.chain(optax.add_decayed_weights(wd), adamax) if wd else adamax
        self.native_names = list(spec.init)
        loss_kind = spec.item.case.loss
        forward = _forward(jnp, jax, spec)

        def loss(params, x, y):
            diff = forward(params, x) - y
            return jnp.abs(diff).mean() if loss_kind == "l1" else (diff * diff).mean()

        def step(params, state, grads):
            updates, state = self.tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        with self._mode():
            self.params_ = [jnp.asarray(spec.init[n], dtype=self.np_dtype) for n in spec.init]
            self.opt_state = self.tx.init(self.params_)
            self._step = jax.jit(step)
            self._grad = jax.jit(jax.value_and_grad(loss))
        self.steps_done = 0
        self._last_grads = None

    def _mode(self):
        return self.jax.experimental.enable_x64() if self.x64 else contextlib.nullcontext()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        with self._mode():
            loss, grads = self._grad(self.params_, x.astype(self.np_dtype), y.astype(self.np_dtype))
        self._last_grads = grads
        return float(loss), [np.array(g) for g in grads]

    def step(self, grads: list[np.ndarray] | None) -> None:
        with self._mode():
            native = self._last_grads if grads is None else [self.jax.numpy.asarray(g, self.np_dtype) for g in grads]
            self.params_, self.opt_state = self._step(self.params_, self.opt_state, native)
        self.steps_done += 1

    def lr_used(self) -> float:
        if self.lr_list:
            return self.lr_list[min(self.steps_done - 1, len(self.lr_list) - 1)]
        return float(self.hp["lr"])

    def _adamax_state(self):
        """The ScaleByAdamState inside the (possibly chained) optimizer state: count, mu, nu."""
        states = self.opt_state if isinstance(self.opt_state, tuple) and not hasattr(self.opt_state, "mu") \
            else (self.opt_state,)
        for item in states:
            if hasattr(item, "nu"):
                return item
            if isinstance(item, tuple):
                for inner in item:
                    if hasattr(inner, "nu"):
                        return inner
        raise RuntimeError(f"no adamax state (mu, nu) in optax's state {type(self.opt_state).__name__}")

    def params(self) -> list[np.ndarray]:
        return [np.asarray(p) for p in self.params_]

    def state(self) -> dict[str, list[np.ndarray]]:
        st = self._adamax_state()
        return {"m": [np.asarray(a) for a in st.mu], "u": [np.asarray(a) for a in st.nu]}

    def hparams(self) -> dict[str, Any]:
        return {"lr": self.lr_list or float(self.hp["lr"]), "betas": tuple(float(b) for b in self.hp["betas"]),
                "eps": float(self.hp["eps"]), "weight_decay": float(self.hp["weight_decay"] or 0.0)}


class OptaxBackend(Backend):
    name = "optax"
    transform = "adamax"  # the optax alias this backend runs: optax.<transform>
    package = "optax"  # the distribution whose version the run records
    missing_grad = "zeros"  # a pytree of gradients has every leaf
    # the lr under `defaults: native` (optax has no default learning rate)
    extra_options = {"learning_rate": {"type": "number", "exclusiveMinimum": 0}}

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu":
            return "the optax adapter runs on CPU only (jax is installed with its CPU jaxlib)"
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _jax()[1].__version__

    def api(self) -> dict[str, Any]:
        neutral = {"learning_rate": "lr", "b1": "betas[0]", "b2": "betas[1]", "eps": "eps",
                   "weight_decay": "weight_decay"}
        signature = inspect.signature(getattr(_jax()[1], self.transform))
        return describe_signature(f"optax.{self.transform}", signature,
                                  {k: v for k, v in neutral.items() if k in signature.parameters})

    def build_info(self) -> dict[str, Any]:
        jax, optax = _jax()
        import jaxlib

        return {"version": optax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "devices": [str(d) for d in jax.devices()], "x64_default": bool(jax.config.jax_enable_x64)}

    def probe(self, request: dict[str, Any]) -> None:
        jax, optax = _jax()
        param = request.get("param", {})
        shape, dtype = tuple(param.get("shape", [2])), param.get("dtype", "float32")
        params = [] if request.get("empty_params") else [jax.numpy.zeros(shape, dtype)]
        kwargs: dict[str, Any] = {}
        for neutral, value in request.get("hparams", {}).items():
            native = NATIVE_NAMES[neutral]
            kwargs.update(dict(zip(native, value)) if isinstance(native, tuple) else {native: value})
        if "weight_decay" in kwargs and self.transform == "adamax":
            raise TypeError("optax.adamax has no weight_decay argument")
        tx = getattr(optax, self.transform)(**{"learning_rate": 0.002, **kwargs})
        state = tx.init(params)
        tx.update([jax.numpy.ones(shape, dtype) for _ in params], state, params)

    def open(self, spec: SessionSpec) -> OptaxSession:
        return OptaxSession(spec, self.name, self.transform)


BACKEND = OptaxBackend()
