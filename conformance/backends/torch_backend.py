"""PyTorch adapter: torch.nn model + torch.optim.Adamax. The only module that imports torch."""
from __future__ import annotations

import functools
import inspect
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from .. import models, oracles
from .base import SessionSpec, describe_signature, import_problem

# neutral hyper-parameter -> torch.optim.Adamax keyword (identical here; stated so the mapping is explicit)
NATIVE_NAMES = {"lr": "lr", "betas": "betas", "eps": "eps", "weight_decay": "weight_decay"}
# torch splits matmuls and reductions across its intra-op threads, and the split changes the float
# result (measured: a 256x4096 @ 4096x512 float32 matmul and a full sum differ bitwise between 1, 2 and
# 4 threads). Pinned, so two runs -- on machines with other core counts, or in xdist workers -- give the
# same bits; the suite's models are small, where one thread is also the fastest. MindSpore's CPU
# results did not change with runtime_num_threads (1, 2, 4) on the same inputs, so it is left alone.
TORCH_THREADS = int(os.environ.get("CONFORMANCE_TORCH_THREADS", "1"))
LAYERNORM_EPS = 1e-5  # torch's default; the MindSpore adapter sets the same (its own default is 1e-7)


def _torch():
    import torch  # imported lazily: listing backends must not cost a framework import

    return torch


@functools.lru_cache(maxsize=1)
def _import_problem() -> str | None:
    """Why torch cannot be imported here (missing or broken), or None; tried once per process."""
    return import_problem("torch", _torch)


class TorchSession:
    def __init__(self, spec: SessionSpec):
        torch = _torch()
        torch.manual_seed(0)
        torch.set_num_threads(TORCH_THREADS)
        self.torch = torch
        self.dtype = getattr(torch, spec.item.dtype)
        self.device = torch.device("cuda" if spec.device == "gpu" else "cpu")
        self.model = self._build(spec).to(device=self.device, dtype=self.dtype)
        named = dict(self.model.named_parameters())
        self.native_names = list(spec.init)  # torch names are the neutral names
        self.param_list = [named[name] for name in self.native_names]
        with torch.no_grad():
            for param, name in zip(self.param_list, self.native_names):
                param.copy_(torch.from_numpy(spec.init[name]).to(self.dtype))
        self.loss_fn = torch.nn.L1Loss() if spec.item.case.loss == "l1" else torch.nn.MSELoss()
        kwargs = {NATIVE_NAMES[k]: v for k, v in spec.hparams.items()}
        kwargs.update(spec.item.case.optimizer.extras.get("torch", {}))
        self.optimizer = torch.optim.Adamax(self.param_list, **kwargs)

    def _build(self, spec: SessionSpec):
        nn = self.torch.nn
        acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
        modules: OrderedDict[str, Any] = OrderedDict()
        for layer in models.layers(spec.item.case.model):
            if layer.kind == "dense":
                modules[layer.name] = nn.Linear(layer.size_in, layer.size_out)
            elif layer.kind == "layernorm":
                modules[layer.name] = nn.LayerNorm(layer.size_out, eps=LAYERNORM_EPS)
            else:
                modules[layer.name] = acts[layer.activation]()
        return nn.Sequential(modules)

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(device=self.device, dtype=self.dtype)

    def _numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().copy()

    def loss_and_grads(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self._tensor(x)), self._tensor(y))
        loss.backward()
        return float(loss.item()), [self._numpy(p.grad) for p in self.param_list]

    def step(self, grads: list[np.ndarray] | None) -> None:
        if grads is not None:
            for param, grad in zip(self.param_list, grads):
                param.grad = self._tensor(grad)
        self.optimizer.step()

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

    def hparams(self) -> dict[str, Any]:
        group = self.optimizer.param_groups[0]
        out = {neutral: group[native] for neutral, native in NATIVE_NAMES.items()}
        out["betas"] = tuple(out["betas"])
        out["maximize"] = bool(group.get("maximize", False))
        return out


class TorchBackend:
    name = "torch"
    extra_options = frozenset({"foreach", "maximize", "differentiable", "capturable"})
    formula = staticmethod(oracles.torch_adamax)

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = _import_problem()
        if problem:
            return problem
        if device == "gpu" and not _torch().cuda.is_available():
            return "torch has no CUDA device on this machine (torch.cuda.is_available() is False)"
        return None

    def version(self) -> str | None:
        return None if _import_problem() else _torch().__version__

    def api(self) -> dict[str, Any]:
        return describe_signature("torch.optim.Adamax", inspect.signature(_torch().optim.Adamax.__init__),
                                  {native: neutral for neutral, native in NATIVE_NAMES.items()})

    def open(self, spec: SessionSpec) -> TorchSession:
        return TorchSession(spec)


BACKEND = TorchBackend()
