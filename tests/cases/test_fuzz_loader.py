"""Fuzzing the way in: generated YAML documents, raw bytes (not UTF-8, byte-order marks, NUL, CRLF) and
case dictionaries (wrong types, huge numbers, NaN and infinity in every numeric field, unicode, nested
junk) must each end in a valid Case or a structured CaseError, never anything else.

Nothing here imports a framework: loading a case must not need one.
"""
from __future__ import annotations

import codecs
import copy
import math
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance import backends
from conformance.cases.case import Case
from conformance.cases.loader import build_case, load_file
from conformance.cases.schema import case_schema, validate
from conformance.errors import CaseError

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
    "cases:", "defaults:", "  - ", "id: a", "{", "}", "[", "]", ": ", "- ", "&a ", "*a", "<<: *a",
    "!!python/object/apply:os.system ['x']",
    "!!binary aGk=", "!!set {a}", "? [1, 2]\n: 3", "\t", "\n", "  ", "steps: 1e999", "model: {kind: linear}",
    "'", '"', "%YAML 1.1\n---", "---", "...", "#", "ü", "\x00", "\ufeff", "!!int x", "matrix: {1: [1]}",
])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(yaml_fragments | st.text(max_size=6), max_size=25).map("".join))
def test_any_text_loads_to_cases_or_errors(tmp_path, text):
    results = _load(tmp_path, text)
    assert results and all(_is_structured(r) for r in results)


def _load_bytes(tmp_path: Path, data: bytes) -> list:
    path = tmp_path / "f.yaml"
    path.write_bytes(data)
    return load_file(path, "cases/f.yaml")


def _shape(results: list) -> list:
    """What a load found, comparable across encodings: (case id, line) or (error line, key, message)."""
    return [(r.id, r.line) if isinstance(r, Case) else (r.line, r.key, r.message) for r in results]


PLAIN = yaml.safe_dump({"cases": [VALID, {**VALID, "id": "second", "matrix": {"steps": [2]}}]}, sort_keys=False)
assert PLAIN.isascii()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from([b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b"cases:\n  - "]),
       body=st.binary(max_size=3000))
def test_any_bytes_load_to_cases_or_errors(tmp_path, prefix, body):
    results = _load_bytes(tmp_path, prefix + body)
    assert results and all(_is_structured(r) for r in results)


@pytest.mark.parametrize("bom", [b"", codecs.BOM_UTF8])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_utf8_byte_order_mark_and_crlf_line_ends_change_nothing(tmp_path, bom, newline):
    results = _load_bytes(tmp_path, bom + PLAIN.replace("\n", newline).encode())
    assert len(results) == 3 and all(isinstance(r, Case) for r in results)
    assert _shape(results) == _shape(load_file(_write_plain(tmp_path), "cases/f.yaml"))
    assert all("\r" not in r.source_text and "\ufeff" not in r.source_text for r in results)


def _write_plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text(PLAIN, encoding="utf-8")
    return path


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), bad=st.integers(0x80, 0xFF) | st.just(0), bom=st.booleans(), crlf=st.booleans())
def test_a_bad_byte_anywhere_is_one_error_at_its_offset_line_and_column(tmp_path, data, bad, bom, crlf):
    """One byte that cannot be UTF-8 here (0x80-0xFF after ASCII) or a NUL, inserted anywhere after an
    optional BOM: the file is one CaseError naming that byte's offset, line and column."""
    text = (codecs.BOM_UTF8 if bom else b"") + PLAIN.replace("\n", "\r\n" if crlf else "\n").encode()
    offset = data.draw(st.integers(3 if bom else 0, len(text)), label="offset")
    raw = text[:offset] + bytes([bad]) + text[offset:]
    (error,) = _load_bytes(tmp_path, raw)
    assert isinstance(error, CaseError) and error.file == "cases/f.yaml" and error.case_id is None
    assert f"byte offset {offset}" in error.message and "save it as UTF-8" in error.message
    assert ("NUL byte" if bad == 0 else f"byte 0x{bad:02x}") in error.message
    line_start = max(raw.rfind(b"\n", 0, offset) + 1, 3 if bom else 0)  # ASCII: a byte is a column
    assert (error.line, error.column) == (raw.count(b"\n", 0, offset) + 1, offset - line_start + 1)


def _numeric_paths(node: dict, path: tuple = ()) -> list[tuple]:
    """Every place the schema declares a number or an integer, as key paths (0: a list's item, '*': any
    key of a mapping). Read from the schema itself, so a field added there is fuzzed here unasked."""
    types = node.get("type", [])
    found = [path] if {"number", "integer"} & set([types] if isinstance(types, str) else types) else []
    for key, sub in node.get("properties", {}).items():
        found += _numeric_paths(sub, path + (key,))
    if isinstance(node.get("items"), dict):
        found += _numeric_paths(node["items"], path + (0,))
    if isinstance(node.get("additionalProperties"), dict):
        found += _numeric_paths(node["additionalProperties"], path + ("*",))
    for branch in node.get("oneOf", []) + node.get("anyOf", []):
        found += _numeric_paths(branch, path)
    return list(dict.fromkeys(found))


# A valid case with a value in every numeric field (the lr list is made from the scalar lr).
FULL = {
    **{k: v for k, v in VALID.items() if k != "matrix"},
    "model": {"kind": "mlp", "sizes": [2, 4, 3], "in": 2, "out": 3, "init_seed": 1, "init_scale": 0.5},
    "gradients": {"mode": "replay", "seed": 3, "scale": 0.5, "zero_fraction": 0.1, "missing_until": 2,
                  "spikes": [{"step": 2, "scale": 10.0}], "nonfinite": [{"step": 3, "value": "nan"}],
                  "prescale": {"mindspore": 2.0}},
    "optimizer": {**VALID["optimizer"], "schedule": {"kind": "cosine", "max_lr": 0.1, "min_lr": 0.0, "period": 3},
                  "mindspore_graph": {"loss_scale": 1.0}, "optax": {"learning_rate": 0.01},
                  "optax_adamaxw": {"learning_rate": 0.01}},
    "tolerance": {q: {"atol": 1e-6, "rtol": 1e-3, "ulp": 4} for q in ("params", "state", "loss")},
    "oracle_tolerance": {q: {"atol": 1e-6, "rtol": 1e-3, "ulp": 4} for q in ("params", "state", "loss")},
    "oracle_stride": 2,
}
NUMERIC = _numeric_paths(case_schema(backends.extras()))


def _with(node, path: tuple, value) -> tuple[object, tuple]:
    """(a copy of node with value at path, the path with '*' resolved); a scalar where the path goes
    into a list becomes a one-item list."""
    if not path:
        return value, ()
    key, rest = path[0], path[1:]
    if key == 0:
        items = list(node) if isinstance(node, list) else [node]
        inner, where = _with(items[0], rest, value)
        return [inner, *items[1:]], (0, *where)
    key = next(iter(node)) if key == "*" else key
    assert key in node, f"FULL has no value at '{key}' ({path}): give it a valid one"
    inner, where = _with(node[key], rest, value)
    return {**node, key: inner}, (key, *where)


def test_the_full_case_is_valid_and_every_numeric_field_is_found():
    assert validate(FULL, backends.extras()) == []
    for expected in [("tolerance", "params", "atol"), ("oracle_tolerance", "loss", "ulp"), ("optimizer", "lr"),
                     ("optimizer", "lr", 0), ("optimizer", "betas", 0), ("optimizer", "schedule", "min_lr"),
                     ("optimizer", "mindspore", "loss_scale"), ("gradients", "spikes", 0, "scale"),
                     ("gradients", "prescale", "*"), ("model", "init_scale"), ("steps",), ("oracle_stride",)]:
        assert expected in NUMERIC, expected
    assert ("gradients", "nonfinite", 0, "value") not in NUMERIC  # the one place NaN is the point


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=[".nan", ".inf", "-.inf"])
@pytest.mark.parametrize("path", NUMERIC, ids=lambda p: ".".join(map(str, p)))
def test_non_finite_numbers_are_refused_in_every_numeric_field(tmp_path, path, value):
    """Through YAML (`.nan`, `.inf`, `-.inf`): one CaseError with the file, the line of the key, the case
    id, the key, and what is allowed there."""
    entry, where = _with(FULL, path, value)
    text = yaml.safe_dump({"cases": [entry]}, sort_keys=False)
    assert (".nan" if math.isnan(value) else ".inf") in text
    (error,) = _load(tmp_path, text)
    assert isinstance(error, CaseError), f"{where}: {value} accepted"
    assert (error.file, error.case_id, error.key) == ("cases/f.yaml", "fuzz", ".".join(map(str, where)))
    assert "is not a finite number; allowed here: " in error.message and " number" in error.message, error.message
    last_key = [k for k in where if isinstance(k, str)][-1]
    assert f"{last_key}:" in text.splitlines()[error.line - 1], (error.line, text)


@pytest.mark.parametrize("value, expected", [(".nan", math.nan), (".NaN", math.nan), ("nan", math.nan),
                                             (".inf", math.inf), ("inf", math.inf), ("-.inf", -math.inf),
                                             ("-inf", -math.inf)])
def test_the_nonfinite_gradient_pattern_keeps_nan_and_infinity(tmp_path, value, expected):
    entry = {**FULL, "gradients": {"mode": "replay", "nonfinite": [{"step": 2, "value": "VALUE"}]}}
    text = yaml.safe_dump({"cases": [entry]}, sort_keys=False).replace("VALUE", value)
    case, = _load(tmp_path, text)
    assert isinstance(case, Case), case
    ((step, got),) = case.gradients.nonfinite
    assert step == 2 and (math.isnan(got) if math.isnan(expected) else got == expected)
