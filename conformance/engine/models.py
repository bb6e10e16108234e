"""Neutral model, data and gradient sources, generated once in NumPy and copied into every framework.

Both frameworks must start from the same numbers, so nothing here depends on a framework's own RNG or
initialiser. Parameters are named neutrally `<layer>.weight` / `<layer>.bias`; each adapter maps them to
its native names (MindSpore's LayerNorm calls them gamma/beta, which matters for its weight decay, and
its Embedding calls its weight embedding_table).

Most kinds are a sequence of layers (`assemble` builds one in any framework); `transformer` is one
pre-norm transformer block over the input read as tokens: its layers, with the names every adapter gives
them, are `TRANSFORMER` below, and each adapter writes its forward pass with its own ops.
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
from conformance.engine import datasets
from conformance.traces.format import open_trace


@dataclass(frozen=True)
class Layer:
    kind: str  # dense | layernorm | embedding | activation
    name: str
    size_in: int = 0  # embedding: the number of rows (positions)
    size_out: int = 0
    activation: str = ""


# The transformer block, in model order: (kind, name, size in, size out) with the sizes as expressions of
# `token` (in / tokens features per token), `width`, `tokens` and `out`. Forward, in every adapter:
#   h = embed(x as [batch, tokens, token]) + pos(positions 0..tokens-1)
#   h = h + attn_out(softmax(q k^T / sqrt(width)) v), [q | k | v] = attn_qkv(norm1(h)) (one fused projection)
#   h = h + ffn_out(relu(ffn_in(norm2(h))));  logits = head(norm_f(mean of h over the tokens))
TRANSFORMER = (("dense", "embed", "token", "width"), ("embedding", "pos", "tokens", "width"),
               ("layernorm", "norm1", "width", "width"), ("dense", "attn_qkv", "width", "qkv"),
               ("dense", "attn_out", "width", "width"), ("layernorm", "norm2", "width", "width"),
               ("dense", "ffn_in", "width", "hidden"), ("dense", "ffn_out", "hidden", "width"),
               ("layernorm", "norm_f", "width", "width"), ("dense", "head", "width", "out"))


def _transformer_layers(spec: ModelSpec) -> list[Layer]:
    size = {"token": spec.sizes[0] // spec.tokens, "width": spec.sizes[1], "hidden": 2 * spec.sizes[1],
            "qkv": 3 * spec.sizes[1],
            "tokens": spec.tokens, "out": spec.sizes[-1]}
    return [Layer(kind, name, size[a], size[b]) for kind, name, a, b in TRANSFORMER]


def layers(spec: ModelSpec) -> list[Layer]:
    """The layers every adapter builds, in order, with the names its parameters take (for a sequential
    kind, the sequence itself; none for a trace: its parameters are bare tensors)."""
    if spec.kind == "trace":
        return []
    if spec.kind == "transformer":
        return _transformer_layers(spec)
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
             activation: Callable[[str], Any],
             embedding: Callable[[int, int], Any] | None = None) -> OrderedDict[str, Any]:
    """A framework's layer objects in model order, named as `layers` says, from its factories (`embedding`
    only for the kinds that have one)."""
    built: OrderedDict[str, Any] = OrderedDict()
    for layer in layers(spec):
        if layer.kind == "dense":
            built[layer.name] = dense(layer.size_in, layer.size_out)
        elif layer.kind == "layernorm":
            built[layer.name] = layernorm(layer.size_out)
        elif layer.kind == "embedding":
            built[layer.name] = embedding(layer.size_in, layer.size_out)
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
        elif layer.kind == "embedding":  # N(0, 1/width): rows of the size a dense layer's outputs have
            arrays[f"{layer.name}.weight"] = rng.normal(0, 1.0 / np.sqrt(layer.size_out),
                                                        (layer.size_in, layer.size_out))
    return arrays


def param_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Neutral parameter names and shapes in model order, without generating any values (a trace's as
    recorded)."""
    if spec.kind == "trace":
        return dict(zip(spec.names or (), spec.shapes))
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in layers(spec):
        if layer.kind == "dense":
            shapes.update({f"{layer.name}.weight": (layer.size_out, layer.size_in),
                           f"{layer.name}.bias": (layer.size_out,)})
        elif layer.kind == "layernorm":
            shapes.update({f"{layer.name}.weight": (layer.size_out,), f"{layer.name}.bias": (layer.size_out,)})
        elif layer.kind == "embedding":
            shapes[f"{layer.name}.weight"] = (layer.size_in, layer.size_out)
    return shapes


def init_arrays_names(spec: ModelSpec) -> list[str]:
    """Neutral parameter names in model order, without generating any values."""
    return list(param_shapes(spec))


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
    """(inputs, targets) for each step, float64: dummy ones for a trace (replayed gradients: no forward
    pass, no data), a real dataset's training batches (datasets.batches), or generated ones, the same batch
    every step unless `resample`."""
    if model.kind == "trace":
        return itertools.repeat((np.zeros((data.batch, 0)), np.zeros((data.batch, 0))))
    if data.dataset is not None:
        return datasets.batches(data)
    return _generated_batches(data, model)


def _generated_batches(data: DataSpec, model: ModelSpec) -> Iterator[tuple[np.ndarray, np.ndarray]]:
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
