"""MindSpore adapter: mindspore.nn cells + mindspore.nn.AdaMax. The only module that imports mindspore.

MindSpore is quieted before import (GLOG_v=3 unless the user set it) and bound to one device per
process, so a process runs either its CPU or its GPU items (pytest-xdist workers are separate
processes). Its Python warnings are recorded in the run log, not shown to the user.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import warnings
from typing import Any

import numpy as np

from conformance.backends.base import Backend, Session, SessionSpec, describe_signature, import_problem
from conformance.engine import models

log = logging.getLogger("conformance.mindspore")

# neutral hyper-parameter -> mindspore.nn.AdaMax keyword; betas split into two
NATIVE_NAMES = {"lr": "learning_rate", "betas": ("beta1", "beta2"), "eps": "eps", "weight_decay": "weight_decay"}
LAYERNORM_EPS = 1e-5  # match torch's default (MindSpore's own default is 1e-7)
_LAYERNORM_NATIVE = {"weight": "gamma", "bias": "beta"}
_bound_device: list[str] = []
# MindSpore's C++ teardown at interpreter exit takes seconds (measured 1.7 s after one step, 3.9 s after
# fifteen items): processes that are done may skip it (backends.exit_now).
SLOW_TEARDOWN = "mindspore"
# PyNative dispatches each op through a "frontend_queue" thread whose ring queue busy-waits; on two
# cores that thread took ~23% of a core from the other xdist worker. MS_DEV_HOST_BLOCKING_RUN=1 (a
# documented MindSpore switch) runs the same tasks on the calling thread: the whole suite went from
# 58.3 s to 49.2 s serially and 42.7 s to 36.0 s with -n 2, every per-step JSONL byte-identical.
# Set MS_DEV_HOST_BLOCKING_RUN=0 to get MindSpore's default dispatch back.
HOST_BLOCKING_RUN = "1"
# One runtime thread, as torch (see torch_backend.TORCH_THREADS): the suite's parallelism is one item per
# xdist worker, and two workers x two MindSpore threads on two cores made the whole suite ~15% slower
# (measured with `python -m conformance bench --suite cases`). MindSpore's CPU results did not change
# with 1, 2 or 4 threads on the same inputs.
MINDSPORE_THREADS = int(os.environ.get("CONFORMANCE_MINDSPORE_THREADS", "1"))


def _ms():
    os.environ.setdefault("GLOG_v", "3")
    os.environ.setdefault("MS_DEV_HOST_BLOCKING_RUN", HOST_BLOCKING_RUN)  # read once, at the first op
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import mindspore
    for w in caught:
        log.info("mindspore import warning: %s", w.message)
    return mindspore


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    """Why mindspore cannot be imported here (missing or broken), or None; tried once per process."""
    return import_problem("mindspore", _ms)


def _bind(device: str):
    """Select MindSpore's device once per process; a second, different device is an explicit error."""
    ms = _ms()
    target = "GPU" if device == "gpu" else "CPU"
    if not _bound_device:
        ms.set_device(target)
        ms.set_context(mode=ms.PYNATIVE_MODE, runtime_num_threads=MINDSPORE_THREADS)
        _bound_device.append(target)
    elif _bound_device[0] != target:
        raise RuntimeError(f"MindSpore is bound to {_bound_device[0]} in this process; run {target} items "
                           "in another process (e.g. pytest -n 2, or -k to select one device)")
    return ms


def to_native_kwargs(hparams: dict[str, Any]) -> dict[str, Any]:
    """Neutral hyper-parameters -> nn.AdaMax keywords (an lr list stays a list: MindSpore's dynamic lr)."""
    out: dict[str, Any] = {}
    for neutral, value in hparams.items():
        native = NATIVE_NAMES[neutral]
        if isinstance(native, tuple):
            out.update({n: float(v) for n, v in zip(native, value)})
        elif isinstance(value, (list, tuple)):
            out[native] = [float(v) for v in value]
        else:
            out[native] = float(value)
    return out


def _init_signature() -> inspect.Signature:
    """nn.AdaMax.__init__'s real signature: MindSpore wraps it in a (*args, **kwargs) registrar."""
    init = _ms().nn.AdaMax.__init__
    for cell in init.__closure__ or ():
        if inspect.isfunction(cell.cell_contents) and cell.cell_contents.__name__ == "__init__":
            init = cell.cell_contents
    return inspect.signature(init)


def _native_name(neutral: str, kinds: dict[str, str]) -> str:
    layer, role = neutral.rsplit(".", 1)
    return f"{layer}.{_LAYERNORM_NATIVE[role]}" if kinds[layer] == "layernorm" else neutral


class MindSporeSession(Session):
    def __init__(self, spec: SessionSpec):
        ms = _bind(spec.device)
        ms.set_seed(0)
        self.ms = ms
        self.np_dtype = np.dtype(spec.item.dtype)
        self.dtype = getattr(ms, spec.item.dtype)
        self.net = self._build(spec)
        kinds = {layer.name: layer.kind for layer in models.layers(spec.item.case.model)}
        self.native_names = [_native_name(n, kinds) for n in spec.init]
        by_name = {p.name: p for p in self.net.trainable_params()}
        self.param_list = [by_name[n] for n in self.native_names]
        for param, neutral in zip(self.param_list, spec.init):
            param.set_data(ms.Tensor(spec.init[neutral].astype(self.np_dtype)))
        self.loss_fn = ms.nn.MAELoss() if spec.item.case.loss == "l1" else ms.nn.MSELoss()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.optimizer = self._make_optimizer(spec)
        for w in caught:
            log.info("%s warning: %s", type(self.optimizer).__name__, w.message)
        self._grad_fn = ms.value_and_grad(self._forward, None, self.optimizer.parameters)
        self._last_grads: tuple | None = None

    def _make_optimizer(self, spec: SessionSpec):
        """mindspore.nn.AdaMax from neutral hyper-parameters (+ loss_scale, param_groups, schedules)."""
        ms = self.ms
        kwargs = to_native_kwargs(spec.hparams)
        self.extras = dict(spec.item.case.optimizer.extras.get("mindspore", {}))
        self.grouped = bool(self.extras.pop("param_groups", False))
        kwargs.update(self.extras)
        schedule = spec.item.case.optimizer.schedule
        if schedule is not None:  # MindSpore's native counterpart of a neutral cosine schedule
            kwargs["learning_rate"] = ms.nn.CosineDecayLR(float(schedule["min_lr"]), float(schedule["max_lr"]),
                                                          int(schedule["period"]))
        params: Any = self.param_list
        if self.grouped:  # a group that sets weight_decay decays every parameter in it, names ignored
            params = [{"params": self.param_list, "weight_decay": kwargs.pop("weight_decay", 0.0)}]
        return ms.nn.AdaMax(params, **kwargs)

    def _build(self, spec: SessionSpec):
        nn, dtype = self.ms.nn, self.dtype
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        return nn.SequentialCell(models.assemble(
            spec.item.case.model, lambda a, b: nn.Dense(a, b, dtype=dtype),
            lambda n: nn.LayerNorm((n,), epsilon=LAYERNORM_EPS, dtype=dtype), lambda name: acts[name]()))

    def _forward(self, x, y):
        return self.loss_fn(self.net(x), y)

    def _tensor(self, array: np.ndarray):
        return self.ms.Tensor(np.ascontiguousarray(array, dtype=self.np_dtype))

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        loss, grads = self._grad_fn(self._tensor(x), self._tensor(y))
        self._last_grads = grads
        return float(loss.asnumpy()), [g.asnumpy().copy() for g in grads]

    def step(self, grads: list[np.ndarray] | None) -> None:
        native = self._last_grads if grads is None else tuple(self._tensor(g) for g in grads)
        self._lr_used = self._current_lr()
        self.optimizer(native)

    def _current_lr(self) -> float:
        """The learning rate nn.AdaMax will use at its next step (constant, per-step list or schedule)."""
        step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
        lr = self.optimizer.learning_rate
        if isinstance(lr, self.ms.nn.Cell):
            return float(lr(self.ms.Tensor(step, self.ms.int32)).asnumpy())
        values = lr.asnumpy().reshape(-1)
        return float(values[min(step, len(values) - 1)])

    def lr_used(self) -> float:
        return self._lr_used

    def params(self) -> list[np.ndarray]:
        return [p.asnumpy() for p in self.param_list]  # a view of the CPU tensor (see Session.params)

    def state(self) -> dict[str, list[np.ndarray]]:
        return {"m": [t.asnumpy() for t in self.optimizer.moment1],
                "u": [t.asnumpy() for t in self.optimizer.moment2]}

    def hparams(self) -> dict[str, Any]:
        """What nn.AdaMax recorded of its own arguments, defaults applied, under neutral names."""
        args = self.optimizer.init_args
        grouped = self.optimizer.init_params["params"][0]["weight_decay"] if self.grouped else None
        weight_decay = args["weight_decay"] if not self.grouped else grouped
        lr = self.optimizer.init_learning_rate
        return {"lr": tuple(lr) if isinstance(lr, list) else lr, "betas": (args["beta1"], args["beta2"]),
                "eps": args["eps"], "weight_decay": weight_decay, "loss_scale": args["loss_scale"],
                "param_groups": self.grouped}


class MindSporeBackend(Backend):
    name = "mindspore"
    extra_options = {"loss_scale": {"type": "number", "exclusiveMinimum": 0}, "param_groups": {"type": "boolean"}}
    missing_grad = "zeros"  # nn.AdaMax takes one gradient per parameter: a frozen one gets zeros

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu" and shutil.which("nvidia-smi") is None:
            return "MindSpore GPU needs an NVIDIA GPU and driver; none on this machine (no nvidia-smi)"
        target = "GPU" if device == "gpu" else "CPU"
        if _bound_device and _bound_device[0] != target:
            return f"MindSpore is bound to {_bound_device[0]} in this process (one device per process)"
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _ms().__version__

    def api(self) -> dict[str, Any]:
        neutral = {"learning_rate": "lr", "beta1": "betas[0]", "beta2": "betas[1]", "eps": "eps",
                   "weight_decay": "weight_decay"}
        return describe_signature("mindspore.nn.AdaMax", _init_signature(), neutral, _ms().nn.AdaMax.__doc__)

    def probe(self, request: dict[str, Any]) -> None:
        ms = _bind("cpu")
        param = request.get("param", {})
        shape, dtype = tuple(param.get("shape", [2])), np.dtype(param.get("dtype", "float32"))
        params = ([] if request.get("empty_params")
                  else [ms.Parameter(ms.Tensor(np.zeros(shape, dtype)), name="probe_w")])
        hparams = request.get("hparams", {})
        lr_tensor = ms.Tensor(hparams.get("lr", 0.002), ms.float32) if request.get("lr_as_tensor") else None
        optimizer = self._probe_optimizer(ms, params, hparams, lr_tensor)
        if params:
            optimizer(tuple(ms.Tensor(np.ones(shape, dtype)) for _ in params))

    def _probe_optimizer(self, ms, params: list, hparams: dict[str, Any], lr_tensor: Any):
        """nn.AdaMax with the given values passed through as they are (ints stay ints: that is probed)."""
        kwargs: dict[str, Any] = {}
        for neutral, value in hparams.items():
            native = NATIVE_NAMES[neutral]
            kwargs.update(dict(zip(native, value)) if isinstance(native, tuple) else {native: value})
        if lr_tensor is not None:
            kwargs["learning_rate"] = lr_tensor
        return ms.nn.AdaMax(params, **kwargs)

    def build_info(self) -> dict[str, Any]:
        ms = _ms()
        hal = getattr(ms, "hal", None)
        targets = [t for t in ("CPU", "GPU", "Ascend")
                   if hal is not None and hasattr(hal, "is_available") and hal.is_available(t)]
        commit_file = os.path.join(os.path.dirname(ms.__file__), ".commit_id")
        commit = open(commit_file, encoding="utf-8").read().split("=", 1)[-1].strip(" '\n") \
            if os.path.exists(commit_file) else None
        return {"version": ms.__version__, "commit": commit, "device_targets": targets,
                # what every session sets (_bind), as torch's build_info: the context read here gave
                # MindSpore's default (2) in a worker whose first item had not bound a device yet
                "threads": MINDSPORE_THREADS,
                "host_blocking_run": os.environ.get("MS_DEV_HOST_BLOCKING_RUN")}

    def open(self, spec: SessionSpec) -> MindSporeSession:
        return MindSporeSession(spec)


BACKEND = MindSporeBackend()
