"""JSON Schema of one case entry, checked with `jsonschema` before anything runs.

The schema is data; `validate()` turns jsonschema's findings into CaseErrors that name the key, say
what is allowed and, for a misspelt key, suggest the closest valid one.
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Iterable

import jsonschema

from .case import DEVICES, DTYPES

# Limits protect the machine from a typo such as `steps: 100000000`; raise them deliberately with
# the environment variables named in the message (read once at import).
MAX_STEPS = int(os.environ.get("CONFORMANCE_MAX_STEPS", 100_000))
MAX_PARAMS = int(os.environ.get("CONFORMANCE_MAX_PARAMS", 50_000_000))
# Estimated peak memory of one item (model, optimizer state, host copies, oracle, data; see
# loader.memory_estimate): catches a huge `data.batch` as well as a huge model.
MAX_MEMORY_MB = int(os.environ.get("CONFORMANCE_MAX_MEMORY_MB", 16_384))
# Cases one `matrix:` may expand into (before devices x dtypes).
MAX_MATRIX = int(os.environ.get("CONFORMANCE_MAX_MATRIX", 1_000))

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


def case_schema(framework_extras: dict[str, Iterable[str]]) -> dict[str, Any]:
    """Schema of one case; `framework_extras` maps each framework to its native-only options."""
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
    for name, extras in framework_extras.items():
        optimizer_props[name] = {"type": "object", "propertyNames": {"enum": sorted(extras)}}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "model", "steps"],
        "properties": {
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9_.=+-]+$"},
            "description": {"type": "string"},
            "model": {
                "type": "object",
                "additionalProperties": False,
                "required": ["kind"],
                "properties": {
                    "kind": {"enum": ["linear", "mlp", "layernorm_mlp"]},
                    "in": _POS_INT, "out": _POS_INT,
                    "sizes": {"type": "array", "items": _POS_INT, "minItems": 2},
                    "activation": {"enum": ["relu", "tanh", "sigmoid", "none"]},
                    "init_seed": {"type": "integer", "minimum": 0},
                    "init_scale": {"type": "number", "exclusiveMinimum": 0},
                    "names": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
                },
            },
            "loss": {"enum": ["l1", "mse"]},
            "data": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"batch": _POS_INT, "seed": {"type": "integer", "minimum": 0},
                               "distribution": {"enum": ["normal", "uniform"]}, "resample": {"type": "boolean"}},
            },
            "gradients": {
                "oneOf": [
                    {"enum": ["autograd", "replay"]},
                    {"type": "object", "additionalProperties": False, "required": ["mode"],
                     "properties": {"mode": {"enum": ["autograd", "replay"]},
                                    "source": {"enum": ["generated", *sorted(framework_extras)]},
                                    "seed": {"type": "integer", "minimum": 0},
                                    "distribution": {"enum": ["normal", "uniform", "constant", "zeros"]},
                                    "scale": {"type": "number", "exclusiveMinimum": 0},
                                    "zero_fraction": {"type": "number", "minimum": 0, "maximum": 1},
                                    "sign_flip": {"type": "boolean"},
                                    "spikes": {"type": "array", "items": _STEP_VALUE("scale", _NUM)},
                                    "nonfinite": {"type": "array",
                                                  "items": _STEP_VALUE("value", {"enum": ["nan", "inf", "-inf"]})},
                                    "missing": {"type": "array", "items": {"type": "string"}},
                                    "missing_until": _POS_INT,
                                    "prescale": {"type": "object", "propertyNames": {"enum": sorted(framework_extras)},
                                                 "additionalProperties": _NUM}}},
                ]
            },
            "optimizer": {"type": "object", "additionalProperties": False, "properties": optimizer_props},
            "steps": {**_POS_INT, "maximum": MAX_STEPS},
            "dtype": {"oneOf": [{"enum": list(DTYPES)},
                                {"type": "array", "items": {"enum": list(DTYPES)}, "minItems": 1, "uniqueItems": True}]},
            "devices": {"oneOf": [{"enum": list(DEVICES)},
                                  {"type": "array", "items": {"enum": list(DEVICES)}, "minItems": 1, "uniqueItems": True}]},
            "tolerance": _TOLERANCE,
            "oracle_tolerance": _TOLERANCE,
            "oracle_stride": {"oneOf": [{"const": "auto"}, _POS_INT]},
            "expect": {"enum": ["conform", "diverge", "error", "nonfinite"]},
            "reason": {"type": "string", "minLength": 1},
            "cause": _CAUSE,
            "error_contains": {"type": "string", "minLength": 1},
            "oracle_expect": {"type": "object", "propertyNames": {"enum": sorted(framework_extras)},
                              "additionalProperties": {"enum": ["conform", "diverge", "nonfinite"]}},
            "frameworks": {"type": "array", "items": {"enum": sorted(framework_extras)},
                           "minItems": 2, "maxItems": 2, "uniqueItems": True},
            "matrix": {"type": "object", "additionalProperties": {"type": "array", "minItems": 1}},
        },
        "if": {"properties": {"expect": {"enum": ["diverge", "error", "nonfinite"]}}, "required": ["expect"]},
        "then": {"required": ["reason", "cause"]},
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


def schema_for(entry: Any, framework_extras: dict[str, Iterable[str]]) -> dict[str, Any]:
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


def _explain(error: jsonschema.ValidationError, schema: dict) -> tuple[list, str]:
    """(path to the offending key, message saying what is allowed)."""
    path = list(error.absolute_path)
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
        options = [s.get("enum") or s.get("type") for s in error.validator_value]
        return path, f"{error.instance!r} is not allowed here; allowed: {options}"
    if error.validator == "maximum" and path and path[-1] == "steps":
        return path, (f"{error.instance} steps exceeds the limit of {MAX_STEPS}; "
                      "set CONFORMANCE_MAX_STEPS to raise it deliberately")
    return path, error.message


def validate(entry: Any, framework_extras: dict[str, Iterable[str]]) -> list[tuple[list, str]]:
    """All problems of one case entry as (key path, message), most specific first."""
    schema = schema_for(entry, framework_extras)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(entry), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    return [_explain(e, schema) for e in errors]
