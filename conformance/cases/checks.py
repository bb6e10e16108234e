"""Checks of a case entry that a JSON Schema cannot express: sizes by model kind, layer and parameter
names, parameter groups, `expect` as a mapping, declared causes, and the limits on parameters and memory.
Each check returns (key path, message) problems; the loader turns the first into a CaseError."""
from __future__ import annotations

import math

from conformance import backends
from conformance.cases import causes, training_checks
from conformance.cases.case import ModelSpec
from conformance.cases.schema import MAX_MEMORY_MB, MAX_PARAMS, MAX_STEPS
from conformance.engine import models


def param_count(model: ModelSpec) -> int:
    if model.kind == "trace":
        return sum(math.prod(shape) for shape in model.shapes)
    return sum(math.prod(shape) for shape in models.param_shapes(model).values())


_REPLAY_ONLY = {"zero_fraction", "sign_flip", "spikes", "nonfinite", "prescale", "source", "trace", "missing",
                "missing_until"}


def memory_estimate(model: ModelSpec, batch: int, devices: list[str], frameworks: int = 2) -> int:
    """Rough peak bytes of one item, counted in float64 words so one figure serves every dtype.

    Per parameter: the float64 init and replayed gradient (2); per side, the framework's params, grads,
    m, u (4), their host copies and received gradients (4), the oracle's results, scales and temporaries
    (10). Per sample: inputs and targets (in + out), and per side forward/backward activations (3 x width).
    A GPU item adds a CPU twin per framework. Over-estimates rather than under-: it guards the machine.
    """
    sides = frameworks * (2 if "gpu" in devices else 1)
    params = param_count(model)
    width = sum(model.sizes)  # a trace has no layers: no batch, no activations
    words = params * (2 + 18 * sides) + (batch * (model.sizes[0] + model.sizes[-1] + 3 * sides * width)
                                         if model.sizes else 0)
    return 8 * words


def semantic_checks(entry: dict, model: ModelSpec) -> list[tuple[list, str]]:
    """Checks a schema cannot express: sizes by kind, layer names, the parameter limit."""
    problems = training_checks.transformer(entry.get("model", {}), model)
    if problems:
        return problems
    problems += _group_problems(entry, models.init_arrays_names(model))
    if model.kind == "linear" and "sizes" in entry["model"]:
        problems.append((["model", "sizes"], "a linear model takes 'in' and 'out', not 'sizes'"))
    if model.kind == "layernorm_mlp" and len(model.sizes) < 3:
        problems.append((["model", "sizes"], "layernorm_mlp needs at least one hidden size: [in, hidden, out]"))
    problems += training_checks.data(entry, model)
    layers = len(model.sizes) - 1 + (len(model.sizes) - 2 if model.kind == "layernorm_mlp" else 0)
    if model.kind != "trace" and model.names is not None and len(model.names) != layers:
        problems.append((["model", "names"], f"give {layers} layer names for this model, got {len(model.names)}"))
    if model.names is not None and len(set(model.names)) != len(model.names):
        problems.append((["model", "names"], "layer names must be unique (parameter names must be)"))
    gradients = entry.get("gradients")
    if isinstance(gradients, dict):
        known = set(models.init_arrays_names(model))
        for name in gradients.get("missing", ()):
            if name not in known:
                problems.append((["gradients", "missing"], f"no parameter '{name}' in this model; "
                                                           f"parameters: {', '.join(sorted(known))}"))
        if gradients.get("mode") != "replay" and any(k in gradients for k in _REPLAY_ONLY):
            problems.append((["gradients", "mode"], f"{', '.join(sorted(_REPLAY_ONLY & set(gradients)))} "
                                                    "need mode: replay"))
    problems += _expect_mapping_checks(entry) + _resume_checks(entry)
    if entry.get("expect") != "error" and "error_contains" in entry:
        problems.append((["error_contains"], "error_contains goes with expect: error"))
    count = param_count(model)
    if count > MAX_PARAMS:
        problems.append((["model"], f"{count} parameters exceeds the limit of {MAX_PARAMS}; "
                                    "set CONFORMANCE_MAX_PARAMS to raise it deliberately"))
        return problems
    devices = entry.get("devices", ["cpu", "gpu"])
    batch = int(entry.get("data", {}).get("batch", 4))
    need = memory_estimate(model, batch, [devices] if isinstance(devices, str) else devices,
                           len(entry.get("frameworks", ("torch", "mindspore"))))
    if need > MAX_MEMORY_MB * 2**20:
        problems.append((["data", "batch"] if "batch" in entry.get("data", {}) else ["model"],
                         f"this item would need about {need / 2**20:,.0f} MiB (model {count} parameters, batch "
                         f"{batch}), over the limit of {MAX_MEMORY_MB} MiB; set CONFORMANCE_MAX_MEMORY_MB "
                         "to raise it deliberately"))
    return problems


def _group_problems(entry: dict, names: list[str]) -> list[tuple[list, str]]:
    """`optimizer.groups` name parameters of the model, each parameter in exactly one group."""
    groups = (entry.get("optimizer") or {}).get("groups")
    if not groups:
        return []
    listed = [n for g in groups for n in g["params"]]
    unknown = [n for n in listed if n not in names]
    if unknown:
        return [(["optimizer", "groups"], f"no parameter '{unknown[0]}' in this model; parameters: {', '.join(names)}")]
    if sorted(listed) != sorted(names):
        twice = sorted({n for n in listed if listed.count(n) > 1})
        return [(["optimizer", "groups"], "each parameter belongs to exactly one group; " +
                 (f"in several: {', '.join(twice)}" if twice else
                  f"in none: {', '.join(n for n in names if n not in listed)}"))]
    return []


def _expect_mapping_checks(entry: dict) -> list[tuple[list, str]]:
    """`expect` as a mapping names every framework after the first, and only those (N-way cases)."""
    expect = entry.get("expect")
    if not isinstance(expect, dict):
        return []
    others = list(entry.get("frameworks", ("torch", "mindspore")))[1:]
    missing, extra = [f for f in others if f not in expect], [f for f in expect if f not in others]
    if missing or extra:
        return [(["expect"], "a mapping `expect` gives one expectation per framework after the first "
                             f"({', '.join(others)}); " + (f"missing: {', '.join(missing)}" if missing else
                                                           f"not in frameworks: {', '.join(extra)}"))]
    return []


def declared_causes(entry: dict) -> tuple[str, ...]:
    cause = entry.get("cause", ())
    return (cause,) if isinstance(cause, str) else tuple(cause)


def cause_problems(entry: dict) -> list[tuple[list, str]]:
    """Every declared cause must be an id of the registry (cases/causes.yaml) or `unknown` alone."""
    declared = declared_causes(entry)
    if not declared:
        return []
    try:
        known = causes.load()
    except causes.RegistryError as exc:
        return [(["cause"], f"the cause registry cannot be read: {exc}")]
    if causes.UNKNOWN in declared and len(declared) > 1:
        return [(["cause"], "`unknown` stands alone: it says no known cause explains the difference")]
    wrong = [c for c in declared if c not in known and c != causes.UNKNOWN]
    if wrong:
        return [(["cause"], f"{', '.join(map(repr, wrong))} is not a cause of {causes.registry_path().name}; "
                            f"allowed: {', '.join(sorted(known))}, or unknown")]
    return []


def _resume_checks(entry: dict) -> list[tuple[list, str]]:
    """`resume:` needs a `from` among the frameworks, an optimizer state every framework can load, a
    constant learning rate (a list or schedule would need its position restored too) and gradients the
    `from` framework can draw alone."""
    resume, frameworks = entry.get("resume"), list(entry.get("frameworks", ("torch", "mindspore")))
    if resume is None:
        return []
    stateless = [f for f in frameworks if backends.get(f).state_layout is None]
    optimizer, gradients = entry.get("optimizer", {}), entry.get("gradients")
    source = gradients.get("source", "generated") if isinstance(gradients, dict) else "generated"
    problems = [(["resume", "from"], f"resume from {resume['from']}: it is not among the frameworks "
                                     f"({', '.join(frameworks)})") if resume["from"] not in frameworks else None,
                (["frameworks"], f"resume needs an optimizer state every framework can load; {', '.join(stateless)} "
                                 "cannot (torch and mindspore can)") if stateless else None,
                (["optimizer"], "resume continues a constant learning rate; drop the lr list or schedule")
                if "schedule" in optimizer or isinstance(optimizer.get("lr"), list) else None,
                (["gradients", "source"], f"resume from {resume['from']} replays its own or generated gradients, "
                                          f"not {source}'s") if source not in ("generated", resume["from"]) else None,
                (["resume", "steps"], f"{resume['steps']} resumed + {entry['steps']} compared steps exceed the limit "
                                      f"of {MAX_STEPS}; set CONFORMANCE_MAX_STEPS to raise it deliberately")
                if resume["steps"] + entry["steps"] > MAX_STEPS else None]
    return [p for p in problems if p]
