"""Which item runs when: a predicted cost per item, the longest first, and under xdist one item at a time.

Two workers end together only if the long items start first and none is queued behind others. Two
things stood in the way. xdist's `load` scheduler hands each worker a consecutive chunk of its share up
front (a quarter of it: 15 items of 124 on two workers), so with the longest first one worker got the
fifteen longest; and the order came from steps x parameters, blind to how many implementations an item
steps (a matrix item steps five here, eight under `tox -e matrix`), to per-item compiles
(`torch.compile`, MindSpore's graph mode) and to sides that cannot run here (GPU items without a GPU,
frameworks not installed), so a 3,000-step matrix item was ordered after a 1,000-step pair.

`cost` predicts an item's seconds from what the case says and what is installed (no framework is
imported: installed means its distribution's metadata is there); `LongestFirst` sorts by it after
deselection; `OneAhead` is the `load` scheduler with each worker holding one running and one queued item
(the least xdist's worker needs), the next item going to whichever worker frees first. It also keeps
the items of each less common dtype (float64, float16) on the first worker that took one: the compiled
comparison and oracle loops are specialised per dtype, and on a fresh checkout compiling the float64
ones cost each worker ~8 s of CPU (numba's compile timers, loaded 2-core machine) for two short items.
Order and placement change no result: every item runs in a fresh session of its own, summary.json is
sorted by id, and the compiled loops give the same bits wherever they were compiled.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conformance.cases import checks

# Rough CPU seconds per item, fitted to the per-item CPU time of a warm serial run on the 2-core machine
# (docs/performance.md): one side's optimizer step with its checks (comparison, oracle, JSONL line), small
# model, gradients replayed; a side computing its own loss and gradients costs AUTOGRAD times that; and
# what each side pays once per item before its first step (a compile, a session).
STEP = {"torch": 0.0011, "torch_compile": 0.0011, "mindspore": 0.0018, "mindspore_graph": 0.0025,
        "mindspore_experimental": 0.0035, "keras": 0.002, "optax": 0.0012, "optax_adamaxw": 0.0012,
        "paddle": 0.002}
AUTOGRAD = 1.7
# a model kind whose forward and backward cost more than an MLP's per autograd step (the transformer block
# of cases/real_data.yaml: 11-17 s per 1,000-step item against 3.5-5 s for the digits MLP, warm, idle)
KIND = {"transformer": 2.5}
START = {"torch_compile": 1.8, "mindspore_graph": 0.6}
DEFAULT_STEP, DEFAULT_START = 0.002, 0.05
DTYPE = re.compile(r"-(float(?:16|32|64))\]$")
SMALL = 20_000  # parameters up to which a step costs about the same; above, it grows with the size


@functools.cache
def installed(framework: str) -> bool:
    """Whether a framework's distribution is installed (metadata only: nothing is imported)."""
    from conformance import backends

    try:
        importlib.metadata.version(backends.get(framework).distribution())
    except (importlib.metadata.PackageNotFoundError, KeyError):
        return False
    return True


@functools.cache
def gpu_runs() -> bool:
    """Whether GPU items will run: a rehearsal on the CPU (CONFORMANCE_TORCH_GPU_DEVICE=cpu) or an NVIDIA
    device node. A guess, for ordering only: a wrong one costs time, never a result."""
    return os.environ.get("CONFORMANCE_TORCH_GPU_DEVICE") == "cpu" or Path("/dev/nvidiactl").exists()


def cost(spec: Any) -> float:
    """Predicted seconds of one item (an engine Item; probe and API items cost next to nothing)."""
    case = spec.case
    if not hasattr(case, "steps"):
        return 0.01
    if spec.device == "gpu" and not gpu_runs():
        return 0.0
    sides = [f for f in case.frameworks if installed(f)] * (2 if spec.device == "gpu" else 1)
    if len(sides) < 2:
        return 0.0
    size = max(1.0, checks.param_count(case.model) / SMALL)
    autograd = AUTOGRAD * KIND.get(case.model.kind, 1.0) if case.gradients.mode == "autograd" else 1.0
    per_step = sum(STEP.get(f, DEFAULT_STEP) for f in sides) * autograd * size
    return sum(START.get(f, DEFAULT_START) for f in sides) + case.steps * per_step


def _cost(item: pytest.Item) -> float:
    spec = getattr(item, "spec", None)
    return cost(spec) if spec is not None else 0.0


class LongestFirst:
    """Runs after deselection (-k, -m): the items by predicted cost, longest first, stable otherwise."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list) -> None:
        items.sort(key=lambda item: -_cost(item))


def compile_key(nodeid: str) -> str | None:
    """The dtype a case item runs in, from its node id (`...[cpu-float64]`): what its compiled loops are
    specialised for. None for anything else."""
    match = DTYPE.search(nodeid)
    return match.group(1) if match else None


def one_ahead_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's `load` scheduler, handing out one item at a time in collection order (longest first), the
    items of each less common dtype kept to one worker."""
    from xdist.scheduler import LoadScheduling

    class OneAhead(LoadScheduling):
        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None:
                for node in self.nodes:
                    self.check_schedule(node)
                return
            if not self._check_nodes_have_same_collection():
                self.log("**Different tests collected, aborting run**")
                return
            self.collection = next(iter(self.node2collection.values()))
            self.pending[:] = range(len(self.collection))
            self.keys = [compile_key(nodeid) for nodeid in self.collection]
            counts = Counter(key for key in self.keys if key)
            self.shared = counts.most_common(1)[0][0] if counts else None  # every worker needs its loops
            self.owners: dict[str, Any] = {}
            for _ in range(2):  # round robin, one at a time: the two longest go to different workers
                for node in self.nodes:
                    self._send_next(node)
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

        def _send_next(self, node: Any) -> None:
            """The longest pending item this worker may take: one of the shared dtype, or of a dtype no
            other worker has compiled for; if none is left, the longest pending (no worker waits)."""
            if not self.pending:
                return
            mine = (i for i in self.pending
                    if self.keys[i] in (None, self.shared) or self.owners.get(self.keys[i], node) is node)
            index = next(mine, self.pending[0])
            if self.keys[index] not in (None, self.shared):
                self.owners.setdefault(self.keys[index], node)
            self.pending.remove(index)
            self.node2pending[node].append(index)
            node.send_runtest_some([index])

        def check_schedule(self, node: Any, duration: float = 0) -> None:
            if node.shutting_down:
                return
            if self.pending:
                while self.pending and len(self.node2pending[node]) < 2:
                    self._send_next(node)
            else:
                node.shutdown()

    return OneAhead(config, log)
