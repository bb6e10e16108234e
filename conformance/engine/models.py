"""Neutral model, data and gradient sources, generated once in NumPy and copied into every framework.

Both frameworks must start from the same numbers, so nothing here depends on a framework's own RNG or
initialiser. Parameters are named neutrally `<layer>.weight` / `<layer>.bias`; each adapter maps them to
its native names (MindSpore's LayerNorm calls them gamma/beta, which matters for its weight decay).
A model of kind `trace` has no layers: its parameters, their initial values and every step's gradients
are a recorded torch run's (conformance/traces/format.py), read one step at a time.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.cases.case import Case, DataSpec, GradientSpec, ModelSpec
from conformance.traces.format import open_trace


@dataclass(frozen=True)
class Layer:
    kind: str  # dense | layernorm | activation
    name: str
    size_in: int = 0
    size_out: int = 0
    activation: str = ""


def layers(spec: ModelSpec) -> list[Layer]:
    """The layer sequence every adapter builds, in order, with the names its parameters take (none for a
    trace: its parameters are bare tensors)."""
    if spec.kind == "trace":
        return []
    sizes = spec.sizes
    names = list(spec.names) if spec.names else None
    out: list[Layer] = []
    dense_i = norm_i = 0

    def next_name(default: str) -> str:
        return names.pop(0) if names else default

    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        out.append(Layer("dense", next_name(f"dense{dense_i}"), a, b))
        dense_i += 1
        if last:
            break
        if spec.kind == "layernorm_mlp":
            out.append(Layer("layernorm", next_name(f"norm{norm_i}"), b, b))
            norm_i += 1
        if spec.activation != "none":
            out.append(Layer("activation", f"act{i}", activation=spec.activation))
    return out


def assemble(spec: ModelSpec, dense: Callable[[int, int], Any], layernorm: Callable[[int], Any],
             activation: Callable[[str], Any]) -> OrderedDict[str, Any]:
    """A framework's layer objects in model order, named as `layers` says, from its three factories."""
    built: OrderedDict[str, Any] = OrderedDict()
    for layer in layers(spec):
        if layer.kind == "dense":
            built[layer.name] = dense(layer.size_in, layer.size_out)
        elif layer.kind == "layernorm":
            built[layer.name] = layernorm(layer.size_out)
        else:
            built[layer.name] = activation(layer.activation)
    return built


def init_arrays(spec: ModelSpec) -> dict[str, np.ndarray]:
    """Initial weights (float64, neutral names, model order) from ONE seeded generator."""
    rng = np.random.default_rng(spec.init_seed)
    arrays: dict[str, np.ndarray] = {}
    for layer in layers(spec):
        if layer.kind == "dense":
            bound = 1.0 / np.sqrt(layer.size_in)
            if spec.init_scale is None:
                arrays[f"{layer.name}.weight"] = rng.uniform(-bound, bound, (layer.size_out, layer.size_in))
                arrays[f"{layer.name}.bias"] = rng.uniform(-bound, bound, (layer.size_out,))
            else:
                arrays[f"{layer.name}.weight"] = rng.normal(0, spec.init_scale, (layer.size_out, layer.size_in))
                arrays[f"{layer.name}.bias"] = rng.normal(0, spec.init_scale, (layer.size_out,))
        elif layer.kind == "layernorm":
            arrays[f"{layer.name}.weight"] = np.ones(layer.size_out)
            arrays[f"{layer.name}.bias"] = np.zeros(layer.size_out)
    return arrays


def init_arrays_names(spec: ModelSpec) -> list[str]:
    """Neutral parameter names in model order, without generating any values."""
    if spec.kind == "trace":
        return list(spec.names or ())
    names: list[str] = []
    for layer in layers(spec):
        if layer.kind in ("dense", "layernorm"):
            names += [f"{layer.name}.weight", f"{layer.name}.bias"]
    return names


def initial(case: Case) -> dict[str, np.ndarray]:
    """The initial parameters of a case: generated from the model's seed, or a trace's recorded ones (in
    the trace's dtype, which every adapter casts to exactly)."""
    if case.model.kind == "trace":
        return open_trace(case.gradients.trace).init_arrays()
    return init_arrays(case.model)


def gradient_stream(case: Case, init: dict[str, np.ndarray]) -> Iterator[list[np.ndarray | None]] | None:
    """The replayed gradients of a case, step by step (None: each framework differentiates its own loss,
    or one framework's autograd is replayed: the runner asks it step by step)."""
    spec = case.gradients
    if spec.mode == "replay" and spec.source == "trace":
        return open_trace(spec.trace).gradients(case.steps)
    if spec.mode == "replay" and spec.source == "generated":
        return generated_gradients(spec, list(init), [a.shape for a in init.values()])
    return None


def _draw(rng: np.random.Generator, distribution: str, shape: tuple[int, ...]) -> np.ndarray:
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, shape)
    if distribution == "constant":
        return np.ones(shape)
    if distribution == "zeros":
        return np.zeros(shape)
    return rng.standard_normal(shape)


def batches(data: DataSpec, model: ModelSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) for each step, float64; the same batch every step unless `resample`."""
    if model.kind == "trace":  # replayed gradients: no forward pass, no data
        yield from itertools.repeat((np.zeros((data.batch, 0)), np.zeros((data.batch, 0))))
    rng = np.random.default_rng(data.seed)
    shape_x, shape_y = (data.batch, model.sizes[0]), (data.batch, model.sizes[-1])
    x, y = _draw(rng, data.distribution, shape_x), _draw(rng, data.distribution, shape_y)
    while True:
        yield x, y
        if data.resample:
            x, y = _draw(rng, data.distribution, shape_x), _draw(rng, data.distribution, shape_y)


def generated_gradients(spec: GradientSpec, names: list[str],
                        shapes: list[tuple[int, ...]]) -> Iterator[list[np.ndarray | None]]:
    """One replayed gradient sequence (float64; None for a missing gradient), drawn step by step."""
    rng = np.random.default_rng(spec.seed)
    spikes, nonfinite = dict(spec.spikes), dict(spec.nonfinite)
    step = 0
    while True:
        step += 1
        scale = spikes.get(step, spec.scale) * (-1.0 if spec.sign_flip and step % 2 == 0 else 1.0)
        grads: list[np.ndarray | None] = []
        for name, shape in zip(names, shapes):
            grad = _draw(rng, spec.distribution, shape) * scale
            if spec.zero_fraction:
                grad[rng.random(shape) < spec.zero_fraction] = 0.0
            if step in nonfinite and grad.size:
                grad.flat[0] = nonfinite[step]
            absent = name in spec.missing and (spec.missing_until is None or step <= spec.missing_until)
            grads.append(None if absent else grad)
        yield grads
