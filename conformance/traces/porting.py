"""A trace as a case: its parameters as the model, the hyper-parameters a port writes, the tolerance.

Two ports of the recorded torch.optim.Adamax, each the raw `optimizer:` mapping a case file would hold
(neutral keys; each adapter turns them into its framework's own arguments):

- `ported`, as a careful porter writes it: every hyper-parameter the torch run used, explicitly (torch's
  lr is MindSpore's learning_rate, betas split into beta1/beta2, eps, weight_decay), a learning rate
  that changed during the run (a scheduler) as one value per step, and several torch parameter groups
  as as many groups (MindSpore group dicts with their lr and weight_decay);
- `native`, as a port that copies only what the torch code wrote: the values that differ from
  torch.optim.Adamax's defaults (those the user must have passed), each framework's own defaults for
  the rest (`defaults: native`): MindSpore's learning_rate default is not torch's.

The default tolerance of a trace case is 4 ULP of the trace's dtype at the largest magnitude a value can
reach in the run: a parameter at most its largest initial magnitude plus the sum of the learning rates
(an AdaMax step moves a parameter by about lr at most), m and u at most the largest gradient plus the
weight decay's share (wd x that parameter bound). A case file may give its own `tolerance:`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from conformance.cases.case import Case, ModelSpec
from conformance.traces.format import HPARAMS, MANIFEST, Trace, TraceError, open_trace

ULPS = 4


def model(trace: Trace) -> ModelSpec:
    """The recorded parameters as a model without layers (kind `trace`)."""
    return ModelSpec(kind="trace", sizes=(), names=tuple(p.name for p in trace.parameters),
                     shapes=tuple(p.shape for p in trace.parameters), modules=tuple(p.module for p in trace.parameters))


def _lr(trace: Trace, group: int, steps: int) -> float | list[float]:
    """A group's learning rate over the replayed steps: one number, or one per step where it changed."""
    values = [lrs[group] for lrs in trace.lrs[:steps]]
    return values[0] if len(set(values)) == 1 else values


def _plain(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value)


def _changed(key: str, value: Any, reference: dict[str, Any]) -> bool:
    """Whether a port must write this value: it differs from the reference, or is a per-step lr list."""
    return (key == "lr" and isinstance(value, list)) or value != reference[key]


def _check_options(trace: Trace) -> None:
    for g, group in enumerate(trace.groups):
        if group.options.get("maximize"):
            raise TraceError(trace.path, MANIFEST, f"optimizer group {g} has maximize=True: a replay of a maximizing "
                                                   "run is not supported (negate the loss instead)")


def optimizer(trace: Trace, steps: int, native: bool) -> dict[str, Any]:
    """The raw `optimizer:` mapping of a port (see the module docstring)."""
    _check_options(trace)
    used = [{**{k: _plain(g.hparams[k]) for k in HPARAMS}, "lr": _lr(trace, i, steps)}
            for i, g in enumerate(trace.groups)]
    names = [p.name for p in trace.parameters]
    if native:
        defaults = {k: _plain(v) for k, v in trace.optimizer["torch_defaults"].items()}
        if len(trace.groups) == 1:
            out = {k: v for k, v in used[0].items() if _changed(k, v, defaults)}
            groups = []
        else:  # the constructor's values the user wrote, and what each group sets beyond them
            written = {k: _plain(v) for k, v in trace.optimizer["constructor"].items() if k in HPARAMS}
            out = {k: v for k, v in written.items() if v != defaults[k]}
            groups = [{k: v for k, v in g.items() if _changed(k, v, written)} for g in used]
        out = {"defaults": "native", **out}
    else:
        out = dict(used[0])
        groups = [{k: v for k, v in g.items() if k in ("lr", "weight_decay") or v != used[0][k]} for g in used]
    if len(trace.groups) > 1:
        out["groups"] = [{"params": [names[i] for i in group.params], **given}
                         for group, given in zip(trace.groups, groups)]
    foreach = trace.groups[0].options.get("foreach")
    if foreach is not None:
        out["torch"] = {"foreach": bool(foreach)}
    return out


def tolerance(trace: Trace, steps: int, weight_decay: float) -> dict[str, Any]:
    """The raw `tolerance:` mapping of a trace case (see the module docstring)."""
    eps = float(np.finfo(trace.dtype).eps)
    travel = max(sum(lrs[g] for lrs in trace.lrs[:steps]) for g in range(len(trace.groups)))
    params = trace.init_absmax + travel
    state = trace.grad_absmax + weight_decay * params
    return {"params": {"atol": ULPS * eps * params}, "state": {"atol": ULPS * eps * state},
            "loss": {"ulp": 16}}


def facts(case: Case, names: dict[str, list[str]]) -> dict[str, Any]:
    """The trace as an item's entry records it: its folder, complete and replayed steps, how its recording
    ended, and each parameter's torch name, shape, module and the names the sides that rename it use
    (MindSpore's gamma/beta/embedding_table)."""
    try:
        trace = open_trace(case.gradients.trace)
    except TraceError as exc:
        return {"path": case.gradients.trace, "error": str(exc)}
    torch_names = list(case.model.names or ())
    renamed = {label: given for label, given in names.items() if given != torch_names}
    parameters = [{"name": name, "shape": list(shape), "module": module,
                   **({"names": {label: given[i] for label, given in renamed.items()}} if renamed else {})}
                  for i, (name, shape, module) in enumerate(zip(torch_names, case.model.shapes, case.model.modules))]
    return {"path": case.gradients.trace, "steps": trace.steps, "replayed": case.steps, "status": trace.status,
            "note": trace.note, "parameters": parameters}
