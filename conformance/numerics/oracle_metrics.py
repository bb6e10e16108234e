"""A framework's step against its oracle: per tensor, params/m/u metrics (diff.diff's) of the values after the
step against the float64 formula (oracles.Formula) stepped from the values before it.

The bound: `oracle_tolerance` k x eps of the dtype the framework computes in x the magnitude of the terms
that formed each element (oracles.Step says why the terms, not the result). One compiled pass
(Formula.check) where it applies, else the formula's arrays and diff.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from conformance.cases.case import Tolerance
from conformance.numerics.diff import diff
from conformance.numerics.formulas import per_parameter
from conformance.numerics.oracles import Formula


def oracle_bounds(tolerance: Tolerance, compute_dtype: str) -> dict[str, tuple[float, float, float]]:
    """Per quantity (atol x eps, rtol, ulp or -1): against an oracle, atol counts eps of the dtype the
    framework computes in (Formula.compute_dtype) x the element's operand magnitude (Step)."""
    eps = float(np.finfo(compute_dtype).eps)
    out = {}
    for quantity in ("params", "state"):
        bound = tolerance.for_quantity(quantity)
        out[quantity] = (bound.atol * eps, float(bound.rtol), -1.0 if bound.ulp is None else float(bound.ulp))
    return out


def tensor_metrics(formula: Formula, pre: dict[str, list[np.ndarray]], post: dict[str, list[np.ndarray]], i: int,
                   grad: np.ndarray | None, count: int, step: int, hp: dict[str, Any], name: str, dtype: str,
                   tolerance: Tolerance, bounds: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, Any]]:
    """params/m/u metrics (diff.diff's) of tensor i's post-step values against `formula` stepped in
    float64 from `pre` and the gradient received (a parameter that received none must come back
    bit-identical). `count`: the steps this parameter took; `step`: the optimizer's. One compiled pass
    where it applies, else the formula's arrays and diff."""
    p, m, u = (pre[k][i] for k in ("params", "m", "u"))
    after = tuple(post[k][i] for k in ("params", "m", "u"))
    if grad is not None:
        fused = formula.check((p, m, u), grad, count, hp, name, after, dtype, bounds, step)
        if fused is not None:
            return fused
        res = formula(p, m, u, grad, count, hp, name, dtype, step)  # NaN/Inf inputs are data, compared in compare
        expected = ((res.p, res.scale_p), (res.m, res.scale_m), (res.u, res.scale_u))
    else:
        expected = tuple((x.astype(np.float64), np.zeros(x.shape)) for x in (p, m, u))
    out = {}
    for key, value, (oracle, scale) in zip(("params", "m", "u"), after, expected):
        quantity = "params" if key == "params" else "state"
        out[key] = diff(value, oracle, dtype, tolerance.for_quantity(quantity), bounds[quantity][0] * scale)
    return out


def formula_metrics(formula: Formula, pre: dict[str, list[np.ndarray]], post: dict[str, list[np.ndarray]],
                    grads: list, counts: list[int], step: int, hp: dict[str, Any], names: list[str], dtype: str,
                    tolerance: Tolerance, bounds_dtype: str | None = None) -> dict[str, dict[str, dict]]:
    """Per quantity, per tensor metrics of a side's post-step values against `formula` at one step, keyed
    like the comparator's (params: name, state: m:name / u:name). The bound is eps of the formula's compute
    dtype unless `bounds_dtype` says whose precision to hold the values to."""
    bounds = oracle_bounds(tolerance, bounds_dtype or formula.compute_dtype(dtype))
    hps = per_parameter(hp, len(names))  # a parameter group's values where the optimizer has groups
    tensors = [tensor_metrics(formula, pre, post, i, grads[i], counts[i], step, hps[i], name, dtype, tolerance, bounds)
               for i, name in enumerate(names)]
    return {"params": {name: t["params"] for name, t in zip(names, tensors)},
            "state": {**{f"m:{name}": t["m"] for name, t in zip(names, tensors)},
                      **{f"u:{name}": t["u"] for name, t in zip(names, tensors)}},
            "loss": {}}
