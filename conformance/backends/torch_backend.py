"""PyTorch adapter: torch.nn model + torch.optim.Adamax. The only module of the suite that imports torch (a
user's loop imports it too: conformance/traces/record.py records it)."""
from __future__ import annotations

import functools
import inspect
import math
import os
from typing import Any

import numpy as np

from conformance.backends.base import (
    Backend,
    Session,
    SessionSpec,
    describe_signature,
    import_problem,
    lr_at,
    param_groups,
)
from conformance.engine import models

# neutral hyper-parameter -> torch.optim.Adamax keyword (identical here; stated so the mapping is explicit)
NATIVE_NAMES = {"lr": "lr", "betas": "betas", "eps": "eps", "weight_decay": "weight_decay"}
# torch splits matmuls and reductions across its intra-op threads, and the split changes the float
# result (measured: a 256x4096 @ 4096x512 float32 matmul and a full sum differ bitwise between 1, 2 and
# 4 threads). Pinned, so two runs -- on machines with other core counts, or in xdist workers -- give the
# same bits; the suite's models are small, where one thread is also the fastest. MindSpore's CPU
# results did not change with runtime_num_threads (1, 2, 4) on the same inputs, so it is left alone.
TORCH_THREADS = int(os.environ.get("CONFORMANCE_TORCH_THREADS", "1"))
LAYERNORM_EPS = 1e-5  # torch's default; the MindSpore adapter sets the same (its own default is 1e-7)
# The torch device a case's `gpu` means: cuda by default (cuda:1, xpu... where that is the accelerator).
# `cpu` is a rehearsal of the GPU path on a machine without one (tools/gpu-run --rehearse-on-cpu): every
# GPU item then runs, CPU against its CPU twin; the run records it (build_info's gpu_device), and its
# figures are no GPU evidence.
GPU_DEVICE = os.environ.get("CONFORMANCE_TORCH_GPU_DEVICE", "cuda")
# Options torch accepts only on devices that support graph capture: a CPU twin of a GPU item runs without
# them (it is the CPU reference of the same update; with them torch refuses the CPU parameters).
CAPTURE_ONLY_OPTIONS = ("capturable",)


def _torch():
    import torch  # imported lazily: listing backends must not cost a framework import

    return torch


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    """Why torch cannot be imported here (missing or broken), or None; tried once per process."""
    return import_problem("torch", _torch)


def _transformer(torch, built, spec):
    """models.TRANSFORMER's block as a torch module: `built` holds its layers by name (registered in model
    order, so named_parameters() follows it); the forward pass is the one written there."""
    class TransformerBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, layer in built.items():
                self.add_module(name, layer)
            self.register_buffer("positions", torch.arange(spec.tokens), persistent=False)
            self.tokens, self.width, self.scale = spec.tokens, spec.sizes[1], 1.0 / math.sqrt(spec.sizes[1])

        def forward(self, x):
            h = self.embed(x.reshape(x.shape[0], self.tokens, -1)) + self.pos(self.positions)
            qkv, w = self.attn_qkv(self.norm1(h)), self.width
            q, k, v = qkv[..., :w], qkv[..., w:2 * w], qkv[..., 2 * w:]
            h = h + self.attn_out(torch.softmax((q @ k.transpose(1, 2)) * self.scale, dim=-1) @ v)
            h = h + self.ffn_out(torch.relu(self.ffn_in(self.norm2(h))))
            return self.head(self.norm_f(h.mean(dim=1)))

    return TransformerBlock()


def _gpu_problem() -> str | None:
    """Why a case's `gpu` cannot run on torch here, or None."""
    kind = GPU_DEVICE.split(":")[0]
    if kind == "cpu":
        return None  # a rehearsal (see GPU_DEVICE)
    if kind == "cuda" and not _torch().cuda.is_available():
        return "torch has no CUDA device on this machine (torch.cuda.is_available() is False)"
    return None


class TorchSession(Session):
    def __init__(self, spec: SessionSpec):
        torch = _torch()
        torch.manual_seed(0)
        torch.set_num_threads(TORCH_THREADS)
        self.torch = torch
        self.dtype = getattr(torch, spec.item.dtype)
        self.device = torch.device(GPU_DEVICE if spec.device == "gpu" else "cpu")
        self.model = self._build(spec).to(device=self.device, dtype=self.dtype)
        named = dict(self.model.named_parameters())
        self.native_names = list(spec.init)  # torch names are the neutral names (a trace's: the recorded ones)
        self.param_list = (list(self.model) if spec.item.case.model.kind == "trace"
                           else [named[name] for name in self.native_names])
        with torch.no_grad():
            for param, name in zip(self.param_list, self.native_names):
                param.copy_(torch.from_numpy(spec.init[name]).to(self.dtype))
        # cross_entropy: the targets are one-hot rows, which CrossEntropyLoss reads as class probabilities
        self.loss_fn = {"l1": torch.nn.L1Loss, "mse": torch.nn.MSELoss,
                        "cross_entropy": torch.nn.CrossEntropyLoss}[spec.item.case.loss]()
        kwargs = {NATIVE_NAMES[k]: v for k, v in spec.hparams.items()}
        kwargs.update(spec.item.case.optimizer.extras.get("torch", {}))
        if spec.device == "cpu" and spec.item.device == "gpu":  # the CPU twin of a GPU item
            kwargs = {k: v for k, v in kwargs.items() if k not in CAPTURE_ONLY_OPTIONS}
        groups = param_groups(spec)
        params: list = ([{"params": [self.param_list[i] for i in indices],
                          **{NATIVE_NAMES[k]: v for k, v in given.items()}} for indices, given in groups]
                        if groups else [{"params": self.param_list}])
        # each group's lr: a number, or a per-step list that step() applies (None: torch's default)
        self.lrs = [group.get("lr", kwargs.get("lr")) for group in params]
        for group in (*params, kwargs):
            if isinstance(group.get("lr"), tuple):
                group["lr"] = group["lr"][0]
        self.grouped = bool(groups)
        self.optimizer = torch.optim.Adamax(params, **kwargs)
        self.scheduler = self._scheduler(spec.item.case.optimizer.schedule)
        self.steps_done = 0
        self._lr_used: float | list[float] = float(self.optimizer.param_groups[0]["lr"])

    def _scheduler(self, schedule: dict | None):
        """torch's native counterpart of a neutral schedule (CosineAnnealingLR for `cosine`)."""
        if schedule is None:
            return None
        return self.torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=schedule["period"], eta_min=schedule["min_lr"])

    def _build(self, spec: SessionSpec):
        nn = self.torch.nn
        if spec.item.case.model.kind == "trace":  # a recorded model's parameters, without its layers
            return nn.ParameterList([nn.Parameter(self.torch.zeros(shape)) for shape in spec.item.case.model.shapes])
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        model = spec.item.case.model
        built = models.assemble(model, nn.Linear, lambda n: nn.LayerNorm(n, eps=LAYERNORM_EPS),
                                lambda name: acts[name](), nn.Embedding)
        return _transformer(self.torch, built, model) if model.kind == "transformer" else nn.Sequential(built)

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(device=self.device, dtype=self.dtype)

    def _numpy(self, tensor) -> np.ndarray:
        """A NumPy view of a CPU tensor (a host copy of a CUDA one): valid until the next step."""
        return tensor.detach().cpu().numpy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self._tensor(x)), self._tensor(y))
        loss.backward()
        return float(loss.item()), [self._numpy(p.grad).copy() for p in self.param_list]

    def predict(self, x: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self._numpy(self.model(self._tensor(x))).copy()

    def step(self, grads: list[np.ndarray | None] | None) -> None:
        """One step; a None gradient leaves `.grad` unset, so torch skips that parameter entirely.
        A per-step lr list sets its group's lr (holding its last value past the end)."""
        if grads is not None:
            for param, grad in zip(self.param_list, grads):
                param.grad = None if grad is None else self._tensor(grad)
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            if isinstance(lr, tuple):
                group["lr"] = lr_at(lr, self.steps_done)
        used = [float(group["lr"]) for group in self.optimizer.param_groups]
        self._lr_used = used if self.grouped else used[0]
        self._optimizer_step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.steps_done += 1

    def _optimizer_step(self) -> None:
        """The optimizer's step as this adapter runs it (eager here; torch_compile_backend compiles it)."""
        self.optimizer.step()

    def lr_used(self) -> float:
        return self._lr_used

    def params(self) -> list[np.ndarray]:
        return [self._numpy(p) for p in self.param_list]

    def state(self) -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {"m": [], "u": []}
        for param in self.param_list:
            st = self.optimizer.state.get(param, {})
            for neutral, native in (("m", "exp_avg"), ("u", "exp_inf")):
                out[neutral].append(self._numpy(st[native]) if native in st
                                    else np.zeros(tuple(param.shape), dtype=self._numpy(param).dtype))
        return out

    def native_state(self) -> dict[str, Any]:
        """Adamax.state_dict() with NumPy arrays: per parameter index `step`, `exp_avg`, `exp_inf`."""
        saved = self.optimizer.state_dict()
        state = {int(i): {k: float(v.item()) if k == "step" else self._numpy(v).copy() for k, v in s.items()}
                 for i, s in saved["state"].items()}
        groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in saved["param_groups"]]
        return {"state": state, "param_groups": groups}

    def load_native_state(self, state: dict[str, Any]) -> None:
        """Adamax.load_state_dict with this optimizer's own param_groups (its hyper-parameters are the
        case's) and the given per-parameter state; `step` as the float32 tensor torch keeps."""
        saved = self.optimizer.state_dict()
        saved["state"] = {int(i): {"step": self.torch.tensor(float(s["step"]), dtype=self.torch.float32),
                                   "exp_avg": self._tensor(s["exp_avg"]), "exp_inf": self._tensor(s["exp_inf"])}
                          for i, s in state["state"].items()}
        self.optimizer.load_state_dict(saved)

    def hparams(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        out = {neutral: group[native] for neutral, native in NATIVE_NAMES.items()}
        out["betas"] = tuple(out["betas"])
        out["maximize"] = bool(group.get("maximize", False))
        # which of torch's code paths was asked for (foreach None: torch's default, the multi-tensor path
        # on CUDA, the single-tensor loop on the CPU); recorded per side, ignored by the oracle
        out["foreach"] = group.get("foreach")
        out["capturable"] = bool(group.get("capturable", False))
        if self.grouped:
            index = {id(p): i for i, p in enumerate(self.param_list)}
            out["groups"] = [{"params": [index[id(p)] for p in g["params"]], "lr": g["lr"], "betas": tuple(g["betas"]),
                              "eps": g["eps"], "weight_decay": g["weight_decay"]} for g in self.optimizer.param_groups]
        return out


class TorchBackend(Backend):
    name = "torch"
    replays_traces = takes_groups = True
    missing_grad = "skip"  # a parameter whose .grad is None is not touched (state, step count)
    model_kinds = (*Backend.model_kinds, "transformer")
    losses = (*Backend.losses, "cross_entropy")
    state_layout = "torch"
    extra_options = {"foreach": {"type": ["boolean", "null"]}, "maximize": {"type": "boolean"},
                     "differentiable": {"type": "boolean"}, "capturable": {"type": "boolean"}}

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu":
            return _gpu_problem()
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _torch().__version__

    def api(self) -> dict[str, Any]:
        return describe_signature("torch.optim.Adamax", inspect.signature(_torch().optim.Adamax.__init__),
                                  {native: neutral for neutral, native in NATIVE_NAMES.items()},
                                  _torch().optim.Adamax.__doc__)

    def probe(self, request: dict[str, Any]) -> None:
        torch = _torch()
        param = request.get("param", {})
        shape, dtype = tuple(param.get("shape", [2])), getattr(torch, param.get("dtype", "float32"))
        params = [] if request.get("empty_params") else [torch.zeros(shape, dtype=dtype, requires_grad=True)]
        kwargs = {NATIVE_NAMES[k]: (tuple(v) if isinstance(v, list) else v)
                  for k, v in request.get("hparams", {}).items()}
        if request.get("lr_as_tensor"):
            kwargs["lr"] = torch.tensor(kwargs.get("lr", 0.002))
        optimizer = torch.optim.Adamax(params, **kwargs)
        for p in params:
            p.grad = torch.ones_like(p)
        optimizer.step()

    def build_info(self) -> dict[str, Any]:
        torch = _torch()
        cuda = torch.cuda.is_available()
        return {"version": torch.__version__, "git_version": torch.version.git_version,
                "cuda": torch.version.cuda, "debug": bool(torch.version.debug),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "threads": TORCH_THREADS,  # what every session pins (set_num_threads), not this process's
                "interop_threads": torch.get_num_interop_threads(),
                "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
                "gpu_device": GPU_DEVICE, "gpu_problem": _gpu_problem(),
                "config": [line.strip() for line in torch.__config__.show().splitlines() if line.strip()]}

    def open(self, spec: SessionSpec) -> TorchSession:
        return TorchSession(spec)


BACKEND = TorchBackend()
