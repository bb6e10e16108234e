"""A case whose gradients come from a trace (`gradients: {mode: replay, source: trace, trace: PATH}`).

The trace brings what other cases write: the parameters (names, shapes, initial values, owning torch
module), the steps (default: every complete step), the dtype, the hyper-parameters (default: the port
`conformance/traces/porting.py` writes: `ported`, or with `optimizer: {defaults: native}` the native
one; keys the case gives override it) and the default tolerance. `PATH` is relative to the case file's
folder. A trace that cannot be read is a CaseError naming the case and the trace's own error.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from conformance.cases.case import ModelSpec
from conformance.traces import porting
from conformance.traces.format import Trace, TraceError, open_trace

KEY = "gradients.trace"


def is_trace(entry: dict) -> bool:
    gradients = entry.get("gradients")
    return isinstance(gradients, dict) and (gradients.get("source") == "trace" or "trace" in gradients)


def _problem(path: list, message: str) -> tuple[None, None, list[tuple[list, str]]]:
    return None, None, [(path, message)]


def expand(entry: dict, base: Path | None) -> tuple[dict | None, ModelSpec | None, list[tuple[list, str]]]:
    """(the entry with the trace's steps, dtype, optimizer and tolerance filled in, the model, problems)."""
    gradients = entry["gradients"]
    if gradients.get("source") != "trace":
        return _problem(["gradients", "trace"], "`trace` names the trace of `source: trace`; add source: trace")
    if gradients.get("mode") != "replay":
        return _problem(["gradients", "mode"], "source: trace replays recorded gradients: mode: replay")
    if "trace" not in gradients:
        return _problem(["gradients", "trace"], "name the trace folder (conformance.record wrote it): trace: PATH")
    if "model" in entry:
        return _problem(["model"], "a trace case takes its parameters from the trace; remove `model`")
    path = Path(gradients["trace"])
    path = path if path.is_absolute() or base is None else base / path
    try:
        trace = open_trace(path)
    except TraceError as exc:
        return _problem(["gradients", "trace"], str(exc))
    dtypes = sorted({p.dtype for p in trace.parameters})
    if len(dtypes) > 1:
        return _problem(["gradients", "trace"], f"the trace's parameters have dtypes {', '.join(dtypes)}; a replay "
                                                "needs one")
    steps = entry.get("steps", trace.steps)
    if steps > trace.steps:
        return _problem(["steps"], f"{steps} steps, but the trace has {trace.steps} complete steps")
    try:
        out = _filled(entry, trace, steps, str(path.resolve()))
    except TraceError as exc:
        return _problem(["gradients", "trace"], str(exc))
    return out, porting.model(trace), []


def _filled(entry: dict, trace: Trace, steps: int, path: str) -> dict:
    given = dict(entry.get("optimizer") or {})
    port = porting.optimizer(trace, steps, native=given.get("defaults") == "native")
    optimizer: dict[str, Any] = {**port, **given}
    for name, extras in given.items():  # framework options merge with the port's (torch's foreach)
        if isinstance(extras, dict) and isinstance(port.get(name), dict):
            optimizer[name] = {**port[name], **extras}
    out = copy.copy(entry)
    out.update(gradients={**entry["gradients"], "trace": path}, steps=steps, optimizer=optimizer,
               dtype=entry.get("dtype", trace.dtype))
    if "tolerance" not in entry:
        decay = max([float(optimizer.get("weight_decay") or 0.0),
                     *(float(g.get("weight_decay") or 0.0) for g in optimizer.get("groups", ()))])
        out["tolerance"] = porting.tolerance(trace, steps, decay)
    return out
