"""PaddlePaddle adapter: paddle.nn layers + paddle.optimizer.Adamax, dynamic graph on CPU. The only
module that imports paddle.

Paddle's Adamax (paddle/phi/kernels/impl/adamax_kernel_impl.h) is a third camp for eps: it adds eps to
the decayed norm inside the max and nowhere else,

    g <- g + wd*p   (a float weight_decay is an L2Decay regularizer added to the gradient)
    m <- b1*m + (1-b1)*g;  u <- max(b2*u + eps, |g|);  p <- p - lr/(1 - beta1_pow) * m/u

with beta1_pow a per-parameter accumulator in the parameter's dtype, multiplied by b1 after each step.
Paddle's Linear weight is (in, out), torch's (out, in): values cross the interface transposed. The
CPU kernel is registered for float32 and float64 only: float16 items skip this side with that reason.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import os
import warnings
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

log = logging.getLogger("conformance.paddle")
NATIVE_NAMES = {"lr": "learning_rate", "betas": ("beta1", "beta2"), "eps": "epsilon", "weight_decay": "weight_decay"}
LAYERNORM_EPS = 1e-5  # torch's default (Paddle's is also 1e-5; stated for symmetry with the others)
CPU_DTYPES = ("float32", "float64")  # the adamax CPU kernel's registered types (Paddle 3.3.1, measured)
_ROLE = {"dense": {"weight": "weight", "bias": "bias"}, "layernorm": {"weight": "weight", "bias": "bias"}}


def _load_mindspore_first() -> None:
    """MindSpore's CPU ops library fails to load once paddle is imported (measured with paddle 3.3.1
    and MindSpore 2.10: `undefined symbol: dnnl_threadpool_interop_stream_create`, paddle's oneDNN
    symbols come first); the other order works. Where MindSpore is installed, its adapter loads it
    before paddle, whichever case a process runs first."""
    if importlib.util.find_spec("mindspore") is not None:
        from conformance.backends import get

        get("mindspore").unavailable("cpu", "float32")


def _paddle():
    _load_mindspore_first()
    # GLOG_v means opposite things to the two: MindSpore's level 3 is "errors only" (its adapter sets it),
    # glog's (paddle's) is VLOG verbosity 3, which printed every eager op and made a step ~100x slower
    # (measured). Paddle's glog reads it once, when its library loads: 0 for that import, then restored.
    saved = os.environ.get("GLOG_v")
    os.environ["GLOG_v"] = "0"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import paddle  # imported lazily: listing backends must not cost a framework import
    finally:
        if saved is None:
            os.environ.pop("GLOG_v", None)
        else:
            os.environ["GLOG_v"] = saved
    for w in caught:
        log.info("paddle import warning: %s", w.message)
    paddle.set_device("cpu")
    return paddle


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    if importlib.util.find_spec("paddle") is None:  # before _paddle(), which would load MindSpore first
        return "paddle is not installed in this environment (tox -e matrix installs it)"
    problem = import_problem("paddle", _paddle)
    if problem and "not installed" in problem:
        problem += " (tox -e matrix installs it)"
    return problem


def native_kwargs(hparams: dict[str, Any]) -> dict[str, Any]:
    """Neutral hyper-parameters -> this optimizer's keywords (base.decay_as_none_kwargs)."""
    return decay_as_none_kwargs(hparams, NATIVE_NAMES)


class PaddleSession(Session):
    def __init__(self, spec: SessionSpec):
        paddle = _paddle()
        self.paddle = paddle
        paddle.seed(0)
        if spec.item.case.optimizer.schedule is not None:
            raise NotImplementedError("the paddle adapter maps no lr schedule (per-step lr lists work)")
        self.np_dtype = np.dtype(spec.item.dtype)
        nn = paddle.nn
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        layers = models.assemble(spec.item.case.model, nn.Linear,
                                 lambda n: nn.LayerNorm(n, epsilon=LAYERNORM_EPS), lambda name: acts[name]())
        self.model = nn.Sequential(*layers.values())
        self.model.to(dtype=spec.item.dtype)
        self.param_list, self.native_names, self.transposed = [], [], []
        kinds = {layer.name: layer.kind for layer in models.layers(spec.item.case.model)}
        for neutral in spec.init:
            layer_name, role = neutral.rsplit(".", 1)
            param = getattr(layers[layer_name], role)
            flip = kinds[layer_name] == "dense" and role == "weight"
            param.set_value(np.ascontiguousarray(spec.init[neutral].T if flip else spec.init[neutral], self.np_dtype))
            self.param_list.append(param)
            self.native_names.append(f"{layer_name}.{role} ({param.name})")
            self.transposed.append(flip)
        self.loss_fn = nn.L1Loss() if spec.item.case.loss == "l1" else nn.MSELoss()
        lr = spec.hparams.get("lr")
        self.lr_list = tuple(lr) if isinstance(lr, (list, tuple)) else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.optimizer = paddle.optimizer.Adamax(parameters=self.param_list, **native_kwargs(spec.hparams))
        for w in caught:
            log.info("Adamax warning: %s", w.message)
        self.steps_done = 0
        self._lr_used = float(self.optimizer.get_lr())

    def _tensor(self, array: np.ndarray):
        return self.paddle.to_tensor(np.ascontiguousarray(array, dtype=self.np_dtype))

    def _neutral(self, tensor, flip: bool) -> np.ndarray:
        array = tensor.numpy()
        return array.T if flip else array

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        self.optimizer.clear_grad(set_to_zero=False)
        loss = self.loss_fn(self.model(self._tensor(x)), self._tensor(y))
        loss.backward()
        return float(loss.item()), [self._neutral(p.grad, f).copy() for p, f in zip(self.param_list, self.transposed)]

    def step(self, grads: list[np.ndarray] | None) -> None:
        if grads is not None:
            for param, grad, flip in zip(self.param_list, grads, self.transposed):
                param.grad = self._tensor(grad.T if flip else grad)
        if self.lr_list:
            self.optimizer.set_lr(self.lr_list[min(self.steps_done, len(self.lr_list) - 1)])
        self._lr_used = float(self.optimizer.get_lr())
        self.optimizer.step()
        self.steps_done += 1

    def lr_used(self) -> float:
        return self._lr_used

    def params(self) -> list[np.ndarray]:
        return [self._neutral(p, f) for p, f in zip(self.param_list, self.transposed)]

    def state(self) -> dict[str, list[np.ndarray]]:
        acc = self.optimizer._accumulators
        out: dict[str, list[np.ndarray]] = {}
        for key, native in (("m", self.optimizer._moment_acc_str), ("u", self.optimizer._inf_norm_acc_str)):
            slots = acc.get(native, {})
            out[key] = [self._neutral(slots[p.name], f) if p.name in slots
                        else np.zeros(tuple(p.shape)[::-1] if f else tuple(p.shape), self.np_dtype)
                        for p, f in zip(self.param_list, self.transposed)]
        return out

    def hparams(self) -> dict[str, Any]:
        opt = self.optimizer
        decay = opt.regularization
        return {"lr": float(opt.get_lr()), "betas": (float(opt._beta1), float(opt._beta2)),
                "eps": float(opt._epsilon), "weight_decay": float(getattr(decay, "_coeff", 0.0) or 0.0)}


class PaddleBackend(Backend):
    name = "paddle"
    package = "paddlepaddle"  # the distribution whose version the run records
    missing_grad = "zeros"  # every parameter is given a gradient (zeros where the case has none)
    extra_options: dict[str, dict] = {}

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu":
            return "the paddle adapter runs on CPU only (the CPU wheel of paddlepaddle)"
        if dtype not in CPU_DTYPES:
            return (f"paddle's adamax CPU kernel is registered for {' and '.join(CPU_DTYPES)} only "
                    f"(a {dtype} step raises NotFound: kernel not registered)")
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _paddle().__version__

    def api(self) -> dict[str, Any]:
        neutral = {"learning_rate": "lr", "beta1": "betas[0]", "beta2": "betas[1]", "epsilon": "eps",
                   "weight_decay": "weight_decay"}
        return describe_signature("paddle.optimizer.Adamax", inspect.signature(_paddle().optimizer.Adamax.__init__),
                                  neutral)

    def build_info(self) -> dict[str, Any]:
        paddle = _paddle()
        return {"version": paddle.__version__, "commit": paddle.version.commit,
                "cuda": paddle.version.cuda(), "with_mkl": paddle.version.with_mkl}

    def probe(self, request: dict[str, Any]) -> None:
        paddle = _paddle()
        param = request.get("param", {})
        shape, dtype = tuple(param.get("shape", [2])), param.get("dtype", "float32")
        params = [] if request.get("empty_params") else [
            paddle.create_parameter(list(shape), dtype, default_initializer=paddle.nn.initializer.Constant(0.0))]
        kwargs: dict[str, Any] = {}
        for neutral, value in request.get("hparams", {}).items():
            native = NATIVE_NAMES[neutral]
            kwargs.update(dict(zip(native, value)) if isinstance(native, tuple) else {native: value})
        optimizer = paddle.optimizer.Adamax(parameters=params, **kwargs)
        for p in params:
            p.grad = paddle.ones(shape, dtype)
        optimizer.step()

    def open(self, spec: SessionSpec) -> PaddleSession:
        return PaddleSession(spec)


BACKEND = PaddleBackend()
