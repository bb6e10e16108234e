"""MindSpore adapter: mindspore.nn cells + mindspore.nn.AdaMax. The only module that imports mindspore.

MindSpore is quieted before import (GLOG_v=3 unless the user set it) and bound to one device per
process, so a process runs either its CPU or its GPU items (pytest-xdist workers are separate
processes). Its Python warnings are recorded in the run log, not shown to the user.
"""
from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import shutil
import warnings
from typing import Any

import numpy as np

from conformance.backends.base import (
    Backend,
    Session,
    SessionSpec,
    describe_signature,
    import_problem,
    param_groups,
)
from conformance.engine import models

log = logging.getLogger("conformance.mindspore")

# neutral hyper-parameter -> mindspore.nn.AdaMax keyword; betas split into two
NATIVE_NAMES = {"lr": "learning_rate", "betas": ("beta1", "beta2"), "eps": "eps", "weight_decay": "weight_decay"}
LAYERNORM_EPS = 1e-5  # match torch's default (MindSpore's own default is 1e-7)
_NORM = {"weight": "gamma", "bias": "beta"}
# A torch module's parameters as the MindSpore cell a port uses names them (mindspore.nn 2.10, each cell's
# trainable_params(): LayerNorm, BatchNorm1d/2d/3d, GroupNorm, InstanceNorm1d/2d/3d, Embedding, PReLU); every
# other module's keep their torch names (Linear -> Dense: weight, bias). nn.AdaMax's decay filter reads
# these names, so a replayed trace (conformance/traces) decays in MindSpore as the ported model would.
PORTED_NAMES = {"LayerNorm": _NORM, "BatchNorm1d": _NORM, "BatchNorm2d": _NORM, "GroupNorm": _NORM,
                "BatchNorm3d": {"weight": "bn2d.gamma", "bias": "bn2d.beta"}, "InstanceNorm1d": _NORM,
                "InstanceNorm2d": _NORM, "InstanceNorm3d": _NORM, "Embedding": {"weight": "embedding_table"},
                "PReLU": {"weight": "a"}}
# the neutral model's layer kinds (engine/models.py) as the torch modules whose ports PORTED_NAMES names
_PORTED_KINDS = {"layernorm": "LayerNorm", "embedding": "Embedding"}
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


def ported_name(torch_name: str, module: str) -> str:
    """A torch parameter's name in the MindSpore port of its module (PORTED_NAMES): `norm.weight` of a
    LayerNorm is `norm.gamma`."""
    prefix, _, role = torch_name.rpartition(".")
    native = PORTED_NAMES.get(module, {}).get(role, role)
    return f"{prefix}.{native}" if prefix else native


def native_names(spec: SessionSpec) -> list[str]:
    """The parameters' MindSpore names, model order: a trace's as its ported modules name them, the neutral
    model's with its LayerNorms' weight/bias as gamma/beta."""
    model = spec.item.case.model
    if model.kind == "trace":
        return [ported_name(name, module) for name, module in zip(model.names, model.modules)]
    kinds = {layer.name: layer.kind for layer in models.layers(model)}
    return [ported_name(n, _PORTED_KINDS.get(kinds[n.rsplit(".", 1)[0]], "")) for n in spec.init]


def _transformer(ms, built, spec):
    """models.TRANSFORMER's block as a MindSpore cell: `built` holds its layers by name (set in model order,
    which the parameters' names follow); the forward pass is the one written there."""
    class TransformerBlock(ms.nn.Cell):
        def __init__(self):
            super().__init__()
            for name, layer in built.items():
                setattr(self, name, layer)
            self.positions = ms.Tensor(np.arange(spec.tokens), ms.int32)
            self.tokens, self.width, self.scale = spec.tokens, spec.sizes[1], 1.0 / math.sqrt(spec.sizes[1])

        def construct(self, x):
            h = self.embed(x.reshape(x.shape[0], self.tokens, -1)) + self.pos(self.positions)
            qkv, w = self.attn_qkv(self.norm1(h)), self.width
            q, k, v = qkv[..., :w], qkv[..., w:2 * w], qkv[..., 2 * w:]
            scores = ms.ops.softmax(ms.ops.matmul(q, k.swapaxes(1, 2)) * self.scale, axis=-1)
            h = h + self.attn_out(ms.ops.matmul(scores, v))
            h = h + self.ffn_out(ms.ops.relu(self.ffn_in(self.norm2(h))))
            return self.head(self.norm_f(h.mean(axis=1)))

    return TransformerBlock()


class MindSporeSession(Session):
    def __init__(self, spec: SessionSpec):
        ms = _bind(spec.device)
        ms.set_seed(0)
        self.ms = ms
        self.np_dtype = np.dtype(spec.item.dtype)
        self.dtype = getattr(ms, spec.item.dtype)
        self.native_names = native_names(spec)
        if spec.item.case.model.kind == "trace":  # a recorded model's parameters, named as its port names them
            self.net = None
            self.param_list = [ms.Parameter(ms.Tensor(np.zeros(shape, self.np_dtype)), name=name)
                               for name, shape in zip(self.native_names, spec.item.case.model.shapes)]
        else:
            self.net = self._build(spec)
            by_name = {p.name: p for p in self.net.trainable_params()}
            self.param_list = [by_name[n] for n in self.native_names]
        self.groups = param_groups(spec)
        for param, neutral in zip(self.param_list, spec.init):
            param.set_data(ms.Tensor(spec.init[neutral].astype(self.np_dtype)))
        # cross_entropy: the targets are one-hot rows, which CrossEntropyLoss reads as class probabilities
        self.loss_fn = {"l1": ms.nn.MAELoss, "mse": ms.nn.MSELoss,
                        "cross_entropy": ms.nn.CrossEntropyLoss}[spec.item.case.loss]()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.optimizer = self._make_optimizer(spec)
        for w in caught:
            log.info("%s warning: %s", type(self.optimizer).__name__, w.message)
        self._grad_fn = ms.value_and_grad(self._forward, None, self.optimizer.parameters)
        if spec.item.case.data.dataset is not None:
            # A real training run, as MindSpore's training scripts run one: forward and backward compiled
            # (mindspore.jit), the optimizer as it is. About ten times faster on CPU (2.10; a 64-32-10 MLP on
            # a busy 2-core machine: 24 ms a step in PyNative, 2 ms compiled, after ~1 s compiling once).
            self._grad_fn = ms.jit(self._grad_fn)
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
        elif self.groups:  # group dicts as a port writes them; order_params keeps the model's order
            params = [*map(self._group, self.groups), {"order_params": self.param_list}]
        return ms.nn.AdaMax(params, **kwargs)

    def _group(self, group: tuple[list[int], dict[str, Any]]) -> dict[str, Any]:
        """One parameter group as nn.AdaMax takes it: params, and the lr and weight_decay it sets (a
        grouped nn.AdaMax decays by the group's weight_decay > 0, names ignored)."""
        indices, given = group
        other = sorted(k for k in given if k not in ("lr", "weight_decay"))
        if other:
            raise ValueError(f"mindspore.nn.AdaMax parameter groups set only lr and weight_decay; a group sets "
                             f"{', '.join(other)}")
        out: dict[str, Any] = {"params": [self.param_list[i] for i in indices]}
        if "lr" in given:
            out["lr"] = [float(v) for v in given["lr"]] if isinstance(given["lr"], tuple) else float(given["lr"])
        if "weight_decay" in given:
            out["weight_decay"] = float(given["weight_decay"])
        return out

    def _build(self, spec: SessionSpec):
        nn, dtype = self.ms.nn, self.dtype
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        model = spec.item.case.model
        built = models.assemble(model, lambda a, b: nn.Dense(a, b, dtype=dtype),
                                lambda n: nn.LayerNorm((n,), epsilon=LAYERNORM_EPS, dtype=dtype),
                                lambda name: acts[name](), nn.Embedding)
        return _transformer(self.ms, built, model) if model.kind == "transformer" else nn.SequentialCell(built)

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

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.net(self._tensor(x)).asnumpy().copy()

    def _current_lr(self) -> float | list[float]:
        """The learning rate nn.AdaMax will use at its next step (constant, per-step list or schedule); with
        parameter groups one per group (a group's lr is its first parameter's: nn.AdaMax keeps one per
        parameter, in the model's order)."""
        step = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
        lr = self.optimizer.learning_rate
        if self.groups and self.optimizer.is_group_lr:
            return [self._lr_value(lr[indices[0]], step) for indices, _ in self.groups]
        return [self._lr_value(lr, step)] * len(self.groups) if self.groups else self._lr_value(lr, step)

    def _lr_value(self, lr: Any, step: int) -> float:
        if isinstance(lr, self.ms.nn.Cell):
            return float(lr(self.ms.Tensor(step, self.ms.int32)).asnumpy())
        values = lr.asnumpy().reshape(-1)
        return float(values[min(step, len(values) - 1)])

    def lr_used(self) -> float | list[float]:
        return self._lr_used

    def params(self) -> list[np.ndarray]:
        return [p.asnumpy() for p in self.param_list]  # a view of the CPU tensor (see Session.params)

    def state(self) -> dict[str, list[np.ndarray]]:
        return {"m": [t.asnumpy() for t in self.optimizer.moment1],
                "u": [t.asnumpy() for t in self.optimizer.moment2]}

    def native_state(self) -> dict[str, Any]:
        """nn.AdaMax's state Parameters by name, as its checkpoints hold them: `moment1.<param>`,
        `moment2.<param>`, `beta1_power` (float32, shape [1]) and `global_step` (int32, shape [1])."""
        opt = self.optimizer
        out = {p.name: p.asnumpy().copy() for p in (*opt.moment1, *opt.moment2)}
        out.update(beta1_power=opt.beta1_power.asnumpy().copy(), global_step=opt.global_step.asnumpy().copy())
        return out

    def load_native_state(self, state: dict[str, Any]) -> None:
        """As a user loads a checkpoint: load_param_into_net with strict_load=True. Without it MindSpore
        2.10 strips a guessed prefix from names it does not find, and `moment1.weight` also overwrites the
        network's `weight`. Before the first step: once nn.AdaMax has stepped, values loaded this way
        replace the Parameters' data, which the compiled step no longer reads (measured on CPU, 2.10)."""
        ms = self.ms
        given = {name: ms.Parameter(ms.Tensor(np.asarray(value)), name=name) for name, value in state.items()}
        _, not_loaded = ms.load_param_into_net(self.optimizer, given, strict_load=True)
        if not_loaded:
            raise ValueError(f"nn.AdaMax has no state Parameter named {', '.join(sorted(not_loaded))}")

    def hparams(self) -> dict[str, Any]:
        """What nn.AdaMax recorded of its own arguments, defaults applied, under neutral names."""
        args = self.optimizer.init_args
        grouped = self.optimizer.init_params["params"][0]["weight_decay"] if self.grouped else None
        weight_decay = args["weight_decay"] if not self.grouped else grouped
        lr = self.optimizer.init_learning_rate
        out = {"lr": tuple(lr) if isinstance(lr, list) else lr, "betas": (args["beta1"], args["beta2"]),
               "eps": args["eps"], "weight_decay": weight_decay, "loss_scale": args["loss_scale"],
               "param_groups": self.grouped or bool(self.groups)}
        if self.groups:
            out["groups"] = [{"params": indices, "betas": out["betas"], "eps": out["eps"],
                              **{k: v for k, v in self._group((indices, given)).items() if k != "params"},
                              **({} if "lr" in given else {"lr": out["lr"]}),
                              **({} if "weight_decay" in given else {"weight_decay": weight_decay})}
                             for indices, given in self.groups]
            for group in out["groups"]:
                group["lr"] = tuple(group["lr"]) if isinstance(group["lr"], list) else group["lr"]
        return out


class MindSporeBackend(Backend):
    name = "mindspore"
    model_kinds = (*Backend.model_kinds, "transformer")
    losses = (*Backend.losses, "cross_entropy")
    replays_traces = takes_groups = True
    extra_options = {"loss_scale": {"type": "number", "exclusiveMinimum": 0}, "param_groups": {"type": "boolean"}}
    missing_grad = "zeros"  # nn.AdaMax takes one gradient per parameter: a frozen one gets zeros
    state_layout = "mindspore"

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
