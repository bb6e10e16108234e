"""Fuzzing the way in: generated YAML documents and case dictionaries (wrong types, huge numbers,
unicode, nested junk) must each end in a valid Case or a structured CaseError, never anything else.

Nothing here imports a framework: loading a case must not need one.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.case import Case
from conformance.errors import CaseError
from conformance.loader import build_case, load_file

# CI runs a few hundred examples per test; CONFORMANCE_FUZZ_EXAMPLES=5000 for a longer hunt.
EXAMPLES = int(os.environ.get("CONFORMANCE_FUZZ_EXAMPLES", "300"))
VALID = {
    "id": "fuzz", "description": "d", "model": {"kind": "mlp", "sizes": [2, 4, 3], "activation": "tanh"},
    "loss": "mse", "data": {"batch": 4, "seed": 1, "distribution": "uniform", "resample": True},
    "gradients": {"mode": "replay", "source": "generated", "seed": 3, "scale": 0.5},
    "optimizer": {"lr": 0.01, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.0,
                  "torch": {"foreach": False}, "mindspore": {"loss_scale": 1.0}},
    "steps": 3, "dtype": ["float32", "float64"], "devices": ["cpu"],
    "tolerance": {"params": {"atol": 1e-6}, "state": {"rtol": 1e-3}, "loss": {"ulp": 4}},
    "expect": "diverge", "reason": "r", "cause": "eps_placement", "frameworks": ["torch", "mindspore"],
    "matrix": {"optimizer.lr": [0.1, 0.2]},
}
PATHS = [("id",), ("description",), ("model",), ("model", "kind"), ("model", "sizes"), ("model", "in"),
         ("model", "names"), ("model", "init_scale"), ("loss",), ("data",), ("data", "batch"),
         ("data", "seed"), ("gradients",), ("gradients", "mode"), ("gradients", "scale"), ("optimizer",),
         ("optimizer", "lr"), ("optimizer", "betas"), ("optimizer", "torch"), ("optimizer", "defaults"),
         ("steps",), ("dtype",), ("devices",), ("tolerance",), ("tolerance", "params"),
         ("tolerance", "params", "ulp"), ("expect",), ("reason",), ("frameworks",), ("matrix",),
         ("matrix", "optimizer.lr"), ("matrix", "model.sizes"), ("matrix", "optimizer.lr.x"), ("unknown",)]

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**8, max_value=10**40)
            | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
            | st.sampled_from(["", "cpu", "gpu", "float16", "linear", "diverge", "ñ<script>", "1e-8", "..", "/"]))
junk = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8) | st.sampled_from(["kind", "lr", "x.y"]), inner, max_size=4),
                    max_leaves=12)


@st.composite
def case_dicts(draw) -> dict:
    """The valid case with a few keys replaced by junk or removed."""
    entry = copy.deepcopy(VALID)
    for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=4)):
        node = entry
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
        else:
            if draw(st.booleans()) and path[-1] in node:
                del node[path[-1]]
            else:
                node[path[-1]] = draw(junk)
    return entry


def _is_structured(result: object) -> bool:
    if isinstance(result, Case):
        return True
    assert isinstance(result, CaseError), result
    assert isinstance(result.message, str) and result.message and isinstance(result.file, str)
    str(result)  # the user-facing line must render
    return True


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case_dicts())
def test_any_case_dict_is_a_case_or_a_case_error(entry):
    try:
        result = build_case(entry, "cases/f.yaml", 2, "")
    except CaseError as exc:
        result = exc
    assert _is_structured(result)


def _load(tmp_path: Path, text: str) -> list:
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    return load_file(path, "cases/f.yaml")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(case_dicts() | junk, max_size=3), defaults=st.none() | junk, extra=junk)
def test_any_generated_document_loads_to_cases_or_errors(tmp_path, cases, defaults, extra):
    doc = {"cases": cases, "defaults": defaults}
    if isinstance(extra, dict):
        doc = {**extra, **doc} if len(extra) % 2 else doc
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    results = _load(tmp_path, text)
    assert results and all(_is_structured(r) for r in results)


yaml_fragments = st.sampled_from([
    "cases:", "defaults:", "  - ", "id: a", "{", "}", "[", "]", ": ", "- ", "&a ", "*a", "<<: *a", "!!python/object/apply:os.system ['x']",
    "!!binary aGk=", "!!set {a}", "? [1, 2]\n: 3", "\t", "\n", "  ", "steps: 1e999", "model: {kind: linear}",
    "'", '"', "%YAML 1.1\n---", "---", "...", "#", "ü", "\x00", "\ufeff", "!!int x", "matrix: {1: [1]}",
])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(yaml_fragments | st.text(max_size=6), max_size=25).map("".join))
def test_any_text_loads_to_cases_or_errors(tmp_path, text):
    results = _load(tmp_path, text)
    assert results and all(_is_structured(r) for r in results)
