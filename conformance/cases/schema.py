"""JSON Schema of one case entry, checked with `jsonschema` before anything runs.

The schema is data; `validate()` turns jsonschema's findings into CaseErrors that name the key, say
what is allowed and, for a misspelt key, suggest the closest valid one.

`"type": "number"` means a *finite* number here (see _finite_number): NaN and infinity are refused in
every numeric field the schema declares, so a new field is covered without a line of its own. The one
place they are the point, the gradient pattern `nonfinite: [{step, value}]`, says so with the custom
type `nonfinite`.
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable
from typing import Any

import jsonschema

from conformance.cases.case import DEVICES, DTYPES
from conformance.engine.datasets import DATASETS, PACKAGE

# Limits protect the machine from a typo such as `steps: 100000000`; raise them deliberately with
# the environment variables named in the message (read once at import).
MAX_STEPS = int(os.environ.get("CONFORMANCE_MAX_STEPS", 100_000))
MAX_PARAMS = int(os.environ.get("CONFORMANCE_MAX_PARAMS", 50_000_000))
# Estimated peak memory of one item (model, optimizer state, host copies, oracle, data; see
# checks.memory_estimate): catches a huge `data.batch` as well as a huge model.
MAX_MEMORY_MB = int(os.environ.get("CONFORMANCE_MAX_MEMORY_MB", 16_384))
# Cases one `matrix:` may expand into (before devices x dtypes).
MAX_MATRIX = int(os.environ.get("CONFORMANCE_MAX_MATRIX", 1_000))


def _finite_number(checker: Any, instance: Any) -> bool:
    """JSON Schema's `number`, finite. A NaN tolerance makes every comparison false, so `expect: diverge`
    would pass whatever the frameworks do; a NaN lr or eps makes both sides NaN and "agree". YAML reads
    `.nan`, `.inf`, `-.inf` (and `1e999`) as numbers, so the schema must refuse them itself."""
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return False
    try:
        return math.isfinite(instance)
    except OverflowError:  # an integer beyond float64's range: it would become inf (or raise) downstream
        return False


def _nonfinite_value(instance: Any) -> bool:
    """NaN or +-infinity as YAML reads it (a float), or an integer too large for a float64."""
    return not isinstance(instance, bool) and isinstance(instance, (int, float)) and not _finite_number(None, instance)


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
    "number": _finite_number,
    # 2020-12's integer does not ask `number`; a 400-digit integer would pass `integer` while the bound
    # keywords (they check `number` first) skip it: `steps: 1000...0` would bypass MAX_STEPS
    "integer": lambda checker, instance: (jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer")
                                          and _finite_number(checker, instance)),
    # NaN or +-infinity where they are the point (the `nonfinite` gradient pattern)
    "nonfinite": lambda checker, instance: isinstance(instance, float) and not math.isfinite(instance),
})
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)

_NUM = {"type": "number"}
_POS_INT = {"type": "integer", "minimum": 1}
_BOUND = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"atol": {"type": "number", "minimum": 0}, "rtol": {"type": "number", "minimum": 0},
                   "ulp": {"type": ["number", "null"], "minimum": 0}},
}
_TOLERANCE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"params": _BOUND, "state": _BOUND, "loss": _BOUND},
}


# `cause:` one id of cases/causes.yaml or a list of them (the loader checks they exist), or `unknown`
_CAUSE = {"oneOf": [{"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True}]}


def _STEP_VALUE(key: str, value: dict) -> dict:
    return {"type": "object", "additionalProperties": False, "required": ["step", key],
            "properties": {"step": _POS_INT, key: value}}


def case_schema(framework_extras: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Schema of one case; `framework_extras` maps each framework to its native-only options (and
    each option to the schema of its value)."""
    optimizer_props: dict[str, Any] = {
        "defaults": {"enum": ["neutral", "native"]},
        "lr": {"oneOf": [{"type": "number", "exclusiveMinimum": 0},
                         {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1}]},
        "schedule": {"type": "object", "additionalProperties": False, "required": ["kind", "max_lr", "period"],
                     "properties": {"kind": {"enum": ["cosine"]}, "max_lr": {"type": "number", "exclusiveMinimum": 0},
                                    "min_lr": {"type": "number", "minimum": 0}, "period": _POS_INT}},
        "betas": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2},
        "eps": _NUM,
        "weight_decay": {"type": "number", "minimum": 0},
    }
    # parameter groups (neutral names; each parameter in one group), each setting its own values
    optimizer_props["groups"] = {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["params"],
        "properties": {"params": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                       **{k: optimizer_props[k] for k in ("lr", "betas", "eps", "weight_decay")}}}}
    for name, extras in framework_extras.items():
        optimizer_props[name] = {"type": "object", "propertyNames": {"enum": sorted(extras)},
                                 "properties": dict(extras)}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],  # and model, steps: unless the gradients come from a trace (below)
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9_.=+-]+$"},
            "description": {"type": "string"},
            "model": {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind"],
                "properties": {
                    "kind": {"enum": ["linear", "mlp", "layernorm_mlp", "transformer"]},
                    "in": _POS_INT, "out": _POS_INT,
                    "sizes": {"type": "array", "items": _POS_INT, "minItems": 2},
                    "activation": {"enum": ["relu", "tanh", "sigmoid", "none"]},
                    "init_seed": {"type": "integer", "minimum": 0},
                    "init_scale": {"type": "number", "exclusiveMinimum": 0},
                    "names": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
                    "tokens": _POS_INT,
                },
            },
            "loss": {"enum": ["l1", "mse", "cross_entropy"]},
            "data": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"batch": _POS_INT, "seed": {"type": "integer", "minimum": 0},
                               "distribution": {"enum": ["normal", "uniform"]}, "resample": {"type": "boolean"},
                               "dataset": {"enum": list(DATASETS)}},
            },
            "gradients": {
                "oneOf": [
                    {"enum": ["autograd", "replay"]},
                    {"type": "object", "additionalProperties": False, "required": ["mode"],
                     "properties": {"mode": {"enum": ["autograd", "replay"]},
                                    "source": {"enum": ["generated", "trace", *sorted(framework_extras)]},
                                    "trace": {"type": "string", "minLength": 1},
                                    "seed": {"type": "integer", "minimum": 0},
                                    "distribution": {"enum": ["normal", "uniform", "constant", "zeros"]},
                                    "scale": {"type": "number", "exclusiveMinimum": 0},
                                    "zero_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                                    "sign_flip": {"type": "boolean"},
                                    "spikes": {"type": "array", "items": _STEP_VALUE("scale", _NUM)},
                                    "nonfinite": {"type": "array", "items": _STEP_VALUE("value", {"oneOf": [
                                        {"enum": ["nan", "inf", "-inf"]}, {"type": "nonfinite"}]})},
                                    "missing": {"type": "array", "items": {"type": "string"}},
                                    "missing_until": _POS_INT,
                                    "prescale": {"type": "object", "propertyNames": {"enum": sorted(framework_extras)},
                                                 "additionalProperties": _NUM}}},
                ]
            },
            "optimizer": {"type": "object", "additionalProperties": False, "properties": optimizer_props},
            "steps": {**_POS_INT, "maximum": MAX_STEPS},
            "dtype": {"oneOf": [{"enum": list(DTYPES)},
                                {"type": "array", "items": {"enum": list(DTYPES)}, "minItems": 1,
                                 "uniqueItems": True}]},
            "devices": {"oneOf": [{"enum": list(DEVICES)},
                                  {"type": "array", "items": {"enum": list(DEVICES)}, "minItems": 1,
                                   "uniqueItems": True}]},
            "tolerance": _TOLERANCE,
            "oracle_tolerance": _TOLERANCE,
            "oracle_stride": {"oneOf": [{"const": "auto"}, _POS_INT]},
            "expect": {"oneOf": [{"enum": ["conform", "diverge", "error", "nonfinite"]},
                                 {"type": "object", "propertyNames": {"enum": sorted(framework_extras)},
                                  "additionalProperties": {"enum": ["conform", "diverge", "nonfinite"]},
                                  "minProperties": 1}]},
            "reason": {"type": "string", "minLength": 1},
            "cause": _CAUSE,
            "error_contains": {"type": "string", "minLength": 1},
            "oracle_expect": {"type": "object", "propertyNames": {"enum": sorted(framework_extras)},
                              "additionalProperties": {"enum": ["conform", "diverge", "nonfinite"]}},
            "frameworks": {"type": "array", "items": {"enum": sorted(framework_extras)},
                           "minItems": 2, "uniqueItems": True},
            # the first `steps` trained by `from` alone; the compared steps continue from its state
            "resume": {"type": "object", "additionalProperties": False, "required": ["steps", "from"],
                       "properties": {"steps": {**_POS_INT, "maximum": MAX_STEPS},
                                      "from": {"enum": sorted(framework_extras)}}},
            "matrix": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
        },
        "allOf": [
            # a declared difference names its reason and cause: `expect` diverge/error/nonfinite, or a
            # mapping (one expectation per framework after the first) holding one
            {"if": {"properties": {"expect": {"anyOf": [
                {"enum": ["diverge", "error", "nonfinite"]},
                {"type": "object", "not": {"additionalProperties": {"const": "conform"}}}]}}, "required": ["expect"]},
             "then": {"required": ["reason", "cause"]}},
            # a trace brings the model and the steps (conformance/traces); every other case names them
            {"if": {"properties": {"gradients": {"type": "object", "anyOf": [
                {"properties": {"source": {"const": "trace"}}, "required": ["source"]}, {"required": ["trace"]}]}},
                    "required": ["gradients"]},
             "else": {"required": ["model", "steps"]}},
        ],
    }


def probe_schema(frameworks: Iterable[str]) -> dict[str, Any]:
    """An input-validation probe: one unusual constructor input, each framework's expected behaviour."""
    names = sorted(frameworks)
    behaviour = {"oneOf": [{"const": "accepts"},
                           {"type": "object", "additionalProperties": False, "required": ["raises"],
                            "properties": {"raises": {"type": "string"}, "contains": {"type": "string"}}}]}
    return {
        "type": "object", "additionalProperties": False, "required": ["id", "probe", "behaviour"],
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9_.=+-]+$"},
            "description": {"type": "string"},
            "probe": {"type": "object", "additionalProperties": False, "properties": {
                "hparams": {"type": "object", "propertyNames": {"enum": ["lr", "betas", "eps", "weight_decay"]}},
                "param": {"type": "object", "additionalProperties": False, "properties": {
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "dtype": {"enum": ["float16", "float32", "float64", "complex64"]}}},
                "empty_params": {"type": "boolean"},
                "lr_as_tensor": {"type": "boolean"}}},
            "behaviour": {"type": "object", "propertyNames": {"enum": names}, "minProperties": 1,
                          "additionalProperties": behaviour},
            "reason": {"type": "string", "minLength": 1},
            "cause": _CAUSE,
        },
    }


def api_schema(frameworks: Iterable[str]) -> dict[str, Any]:
    """An API-mapping check: the constructor's parameter names and defaults the suite assumes."""
    return {
        "type": "object", "additionalProperties": False, "required": ["id", "api", "class", "params"],
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9_.=+-]+$"},
            "description": {"type": "string"},
            "api": {"enum": sorted(frameworks)},
            "class": {"type": "string"},
            "params": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
            "reason": {"type": "string", "minLength": 1},
            "cause": _CAUSE,
        },
    }


def schema_for(entry: Any, framework_extras: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Which kind of entry this is: a probe, an API check, or (default) a numerical case."""
    if isinstance(entry, dict) and "probe" in entry:
        return probe_schema(framework_extras)
    if isinstance(entry, dict) and "api" in entry:
        return api_schema(framework_extras)
    return case_schema(framework_extras)


def _subschema(schema: dict, path: list) -> dict:
    """The schema node that governs `path`, to list what is allowed there."""
    node = schema
    for key in path:
        props = node.get("properties", {})
        if isinstance(key, str) and key in props:
            node = props[key]
        elif "items" in node:
            node = node["items"]
        else:
            return node
    return node


def _range(node: dict) -> str:
    """A node's bounds in words (` >= 0 and <= 1`), empty if it has none."""
    bounds = [f"{word} {node[key]}" for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                       ("maximum", "<="), ("exclusiveMaximum", "<")) if key in node]
    return (" " + " and ".join(bounds)) if bounds else ""


def _describe(node: dict) -> str:
    """What a schema node allows, in words (`a finite number > 0, or a list of: a finite number > 0`)."""
    if "enum" in node:
        return "one of " + ", ".join(str(v) for v in node["enum"])
    if "const" in node:
        return str(node["const"])
    for key in ("oneOf", "anyOf"):
        if key in node:
            return ", or ".join(_describe(branch) for branch in node[key])
    types = node.get("type", [])
    words = {"number": "a finite number" + _range(node), "integer": "a whole number" + _range(node),
             "null": "null", "boolean": "true or false", "string": "text", "object": "a mapping",
             "array": "a list of: " + _describe(node.get("items", {})) if "items" in node else "a list",
             "nonfinite": ".nan, .inf or -.inf"}
    return " or ".join(words[t] for t in ([types] if isinstance(types, str) else types)) or "any value"


def _shown(value: float | int) -> str:
    """A non-finite value as the user wrote it in YAML."""
    if isinstance(value, int):
        return f"{str(value)[:8]}... ({len(str(abs(value)))} digits, beyond a float64)"
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def _explain(error: jsonschema.ValidationError, schema: dict) -> tuple[list, str]:
    """(path to the offending key, message saying what is allowed)."""
    path = list(error.absolute_path)
    if _nonfinite_value(error.instance):
        return path, f"{_shown(error.instance)} is not a finite number; allowed here: {_describe(error.schema)}"
    if error.validator == "additionalProperties":
        allowed = sorted(_subschema(schema, path).get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        key = extra[0] if extra else None
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        msg = f"unknown key '{key}'" + (f"; did you mean '{hint[0]}'?" if hint else "")
        return path + ([key] if key is not None else []), f"{msg} Allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        key = missing[0] if missing else None
        if key == "reason":
            return path + [key], "expect: diverge (or error) needs a 'reason': the root cause in one sentence"
        return path + ([key] if key else []), f"{error.message}; add it to the case"
    if error.validator == "enum" and path == ["data", "dataset"]:
        return path, (f"unknown dataset {error.instance!r}; allowed: {', '.join(DATASETS)} (real datasets that "
                      f"{PACKAGE} ships, read from the installed package)")
    if error.validator == "propertyNames":
        allowed = error.validator_value.get("enum", [])
        return path, f"unknown option {error.instance!r}; allowed: {', '.join(map(str, allowed))}"
    if error.validator == "oneOf" and isinstance(error.instance, (dict, list)):
        # the instance has the shape of one branch (a mapping, a list): report that branch's problem
        shape = "object" if isinstance(error.instance, dict) else "array"
        branches = [i for i, b in enumerate(error.validator_value) if b.get("type") == shape]
        inner = [e for e in error.context if e.relative_schema_path[0] in branches]
        if inner:
            return _explain(jsonschema.exceptions.best_match(inner), schema)
    if error.validator == "oneOf":
        return path, f"{error.instance!r} is not allowed here; allowed: {_describe(error.schema)}"
    if error.validator == "maximum" and path and path[-1] == "steps":
        return path, (f"{error.instance} steps exceeds the limit of {MAX_STEPS}; "
                      "set CONFORMANCE_MAX_STEPS to raise it deliberately")
    return path, error.message


def validate(entry: Any, framework_extras: dict[str, dict[str, dict]]) -> list[tuple[list, str]]:
    """All problems of one case entry as (key path, message), most specific first."""
    schema = schema_for(entry, framework_extras)
    validator = Validator(schema)
    errors = sorted(validator.iter_errors(entry), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    return [_explain(e, schema) for e in errors]
