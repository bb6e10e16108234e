"""torch.optim.Adamax with its step compiled by `torch.compile` (TorchInductor), another execution mode.

The model, data and gradients are torch's eager ones (torch_backend); only `optimizer.step()` runs as a
compiled function, as torch's own tutorial on compiling the optimizer does. Inductor fuses the update
into generated C++ on CPU (Triton on CUDA) and may reorder or contract its arithmetic (e.g. FMA), which
is what this implementation measures against eager torch. Formula: torch's, with float16 computed in
float32 (FEATURES["torch_compile"] in numerics/formulas.py).

The compile happens at the first step of each session (one graph per parameter set, shapes and dtypes)
and needs a C++ compiler on CPU: `unavailable` says so where none is found.
"""
from __future__ import annotations

import functools
import shutil
import time
from typing import Any

from conformance.backends.base import SessionSpec
from conformance.backends.torch_backend import TorchBackend, TorchSession, _torch


class CompiledStepSession(TorchSession):
    def __init__(self, spec: SessionSpec):
        super().__init__(spec)
        self._compiled = _torch().compile(self.optimizer.step, fullgraph=False)
        self.compile_seconds: float | None = None  # the first (compiling) step's wall time

    def _optimizer_step(self) -> None:
        if self.compile_seconds is None:
            started = time.perf_counter()
            self._compiled()
            self.compile_seconds = time.perf_counter() - started
        else:
            self._compiled()

    def hparams(self) -> dict[str, Any]:
        return {**super().hparams(), "compiled": True}


@functools.lru_cache(maxsize=1)
def _compiler_problem() -> str | None:
    """Inductor's CPU code generation needs a C++ compiler (it calls $CXX, else c++/g++/clang++)."""
    import os

    if os.environ.get("CXX") or any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return None
    return "torch.compile on CPU needs a C++ compiler (none of $CXX, c++, g++, clang++ found on PATH)"


class CompiledStepBackend(TorchBackend):
    name = "torch_compile"
    package = "torch"  # the distribution whose version the run records
    extra_options: dict[str, dict] = {}  # the session reads `optimizer.torch:` options, as eager torch does

    def unavailable(self, device: str, dtype: str) -> str | None:
        problem = super().unavailable(device, dtype)
        if problem or device == "gpu":
            return problem
        return _compiler_problem()

    def api(self) -> dict[str, Any]:
        return {**super().api(), "class": "torch.optim.Adamax (step under torch.compile)"}

    def open(self, spec: SessionSpec) -> CompiledStepSession:
        return CompiledStepSession(spec)


BACKEND = CompiledStepBackend()
