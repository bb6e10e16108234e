"""What the search draws: Hypothesis strategies over models, hyper-parameters, gradients and dtypes, and the budget."""
from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

# Layer names: MindSpore's ungrouped weight decay skips parameters whose name holds 'beta' or 'gamma'
# ('alphabet' holds 'beta' by accident).
NAME_POOL = ("dense", "head", "proj", "gamma_proj", "beta_head", "alphabet", "norm", "embed")


# sampled_from shrinks toward the first value: the first is always the ordinary one.
LRS = (1e-3, 1e-1, 1.0, 1e-5, 10.0, 1e-8)


EPSS = (1e-8, 1e-16, 1e-30, 1e-12, 1e-6, 1e-3, 0.1, 1.0, 10.0)


DECAYS = (0.0, 1e-2, 0.1, 1.0, 1e-4)


SCALES = (1.0, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 1e2, 1e4, 1e6)


ZERO_FRACTIONS = (0.0, 0.5, 0.9, 0.99)


DTYPES = ("float32", "float16", "float64")


# float16 draws also take, half the time, weight decay on small parameters (normal init with these scales):
# wd*scale is 1e-8 to 1e-5, among float16's subnormals (below 2^-14 = 6.1e-5, whole units of 2^-24 = 6e-8),
# where each rounding of the decay is a sizeable fraction of it and, with zero gradients, decides u and
# the step (conformance/numerics/float16.py).
SMALL_INIT_SCALES = (1e-2, 1e-3, 1e-4)
SMALL_PARAM_DECAYS = (1e-4, 1e-3)


def _layer_count(model: dict) -> int:
    sizes = [model["in"], model["out"]] if model["kind"] == "linear" else model["sizes"]
    return len(sizes) - 1 + (len(sizes) - 2 if model["kind"] == "layernorm_mlp" else 0)


@st.composite
def models_(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(("linear", "mlp", "layernorm_mlp")))
    size = st.integers(1, 4)
    if kind == "linear":
        model: dict[str, Any] = {"kind": "linear", "in": draw(size), "out": draw(size)}
    else:
        model = {"kind": kind, "sizes": [draw(size), draw(st.integers(1, 6)), draw(size)], "activation": "tanh"}
    if draw(st.booleans()):
        n = _layer_count(model)
        model["names"] = draw(st.lists(st.sampled_from(NAME_POOL), min_size=n, max_size=n, unique=True))
    model["init_seed"] = draw(st.integers(0, 3))
    return model


def _unit_interval(special: tuple[float, ...]) -> st.SearchStrategy[float]:
    """Usual values first (shrink targets), then any float in [0, 1): values near 0 and near 1."""
    return st.one_of(st.sampled_from(special), st.floats(0.0, 1.0, exclude_max=True))


@st.composite
def entries(draw: st.DrawFn, dtypes: tuple[str, ...] = DTYPES, max_steps: int = 100) -> dict:
    """One case entry (replay mode) as the YAML would hold it."""
    steps = draw(st.integers(1, max_steps))
    grads: dict[str, Any] = {
        "mode": "replay",
        "seed": draw(st.integers(0, 1000)),
        "distribution": draw(st.sampled_from(("normal", "uniform", "constant", "zeros"))),
        "scale": draw(st.sampled_from(SCALES)),
        "zero_fraction": draw(st.sampled_from(ZERO_FRACTIONS)),
        "sign_flip": draw(st.booleans()),
    }
    if steps > 1 and draw(st.booleans()):  # a single spike after quiet steps
        grads["spikes"] = [{"step": draw(st.integers(2, steps)), "scale": draw(st.sampled_from(SCALES))}]
    entry = {
        "id": "search",
        "model": draw(models_()),
        "gradients": grads,
        "optimizer": {"lr": draw(st.sampled_from(LRS)),
                      "betas": [draw(_unit_interval(BETA1S)), draw(_unit_interval(BETA2S))],
                      "eps": draw(st.sampled_from(EPSS)), "weight_decay": draw(st.sampled_from(DECAYS))},
        "steps": steps,
        "dtype": draw(st.sampled_from(dtypes)),
        "devices": ["cpu"],
    }
    if entry["dtype"] == "float16" and draw(st.booleans()):  # drawn last: earlier draws keep their order
        entry["model"]["init_scale"] = draw(st.sampled_from(SMALL_INIT_SCALES))
        entry["optimizer"]["weight_decay"] = draw(st.sampled_from(SMALL_PARAM_DECAYS))
    entry["tolerance"] = tolerance(entry)
    return entry


def tolerance(entry: dict) -> dict:
    """torch~mindspore bound of a search case: 64 ULP of its dtype, or an absolute floor of 64 eps at
    the magnitude of the terms (parameters ~1 + lr, state ~ the largest gradient or decay term) where
    values cancel toward 0.

    Loose enough that differing operation order alone (rounding accumulated over <= 100 steps) passes;
    every known cause exceeds it by orders of magnitude."""
    eps = float(np.finfo(entry["dtype"]).eps)
    grads, opt = entry["gradients"], entry["optimizer"]
    largest = max([grads["scale"], *(s["scale"] for s in grads.get("spikes", ()))])
    params = 1.0 + opt["lr"]  # |p| ~ 1 plus updates of size ~lr: rounding of the larger term
    return {"params": {"ulp": 64, "atol": float(f"{64 * eps * params:.3g}")},
            "state": {"ulp": 64, "atol": float(f"{64 * eps * max(largest, opt['weight_decay'] * params):.3g}")}}


BETA1S = (0.9, 0.5, 0.99, 0.999, 0.9999, 0.99999, 1e-8, 0.0)


BETA2S = (0.999, 0.9, 0.5, 0.99, 0.9999, 0.999999, 1e-8, 0.0)
