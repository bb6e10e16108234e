"""Case files -> Cases. YAML is read with a safe loader that remembers lines, so every error names one.

A case file is UTF-8 text (a byte-order mark and CRLF line ends are accepted); one that is not (a stray
binary, Latin-1 or UTF-16 file, a NUL byte), cannot be read, or is a folder becomes one CaseError
naming the byte offset, line and column, and the other files still load.

A file holds `cases:` (a list of entries) and optionally `defaults:` (keys shared by its entries).
Each entry may carry a `matrix:` of dotted keys to lists of values; it expands into one case per
combination, with readable ids such as `matched.lr=0.01`. A broken entry yields a CaseError for that
entry only; the rest of the file still loads.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from conformance import backends
from conformance.cases import checks, trace_cases
from conformance.cases.case import (
    ApiCase,
    Bound,
    Case,
    DataSpec,
    GradientSpec,
    ModelSpec,
    OptimizerSpec,
    ProbeCase,
    ResumeSpec,
    Tolerance,
)
from conformance.cases.matrix import _DOTTED, expand_matrix
from conformance.cases.schema import MAX_MATRIX, validate
from conformance.cases.yaml_lines import (
    _construct_mapping,
    _line_of,
    _LineDict,
    _LineLoader,
    parse_text,
    read_text,
)
from conformance.errors import CaseError

# Default bounds when a case gives none. Expressed in ULP of the case's dtype so one default serves
# every dtype; atol 0 keeps the bound strict. Cases that expect real agreement set their own.
DEFAULT_TOLERANCE = {"params": {"ulp": 4}, "state": {"ulp": 4}, "loss": {"ulp": 16}}
# A framework against a float64 oracle of its own formula, stepped from the framework's own state:
# one step's rounding, a few ULP. atol covers updates that cancel to ~0 (ULP explodes there); against an
# oracle it is not absolute but counts eps(dtype) x the magnitude of the terms that formed each element
# (oracle_metrics.oracle_bounds applies it; oracles.Step says why the terms, not the result).
DEFAULT_ORACLE_TOLERANCE = {"params": {"ulp": 8, "atol": 8.0}, "state": {"ulp": 8, "atol": 8.0},
                            "loss": {"ulp": 16}}


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads `1e-8` as a string; YAML 1.2 and every user read it as a number.
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _bound(raw: dict | None, default: dict) -> Bound:
    merged = {**default, **(raw or {})}
    return Bound(atol=float(merged.get("atol", 0.0)), rtol=float(merged.get("rtol", 0.0)),
                 ulp=None if merged.get("ulp") is None else float(merged["ulp"]))


def _tolerance(raw: dict | None, default: dict) -> Tolerance:
    raw = raw or {}
    return Tolerance(**{q: _bound(raw.get(q), default[q]) for q in ("params", "state", "loss")})


def _model(raw: dict) -> ModelSpec:
    kind = raw["kind"]
    if kind == "linear":
        sizes = (raw.get("in", 2), raw.get("out", 3))
    else:
        sizes = tuple(raw.get("sizes", (2, 8, 3)))
    names = tuple(raw["names"]) if "names" in raw else None
    return ModelSpec(kind=kind, sizes=tuple(int(s) for s in sizes), activation=raw.get("activation", "relu"),
                     init_seed=int(raw.get("init_seed", 0)), init_scale=raw.get("init_scale"), names=names,
                     tokens=int(raw.get("tokens", 8)))


def _gradients(raw: Any) -> GradientSpec:
    if raw is None or isinstance(raw, str):
        return GradientSpec(mode=raw or "autograd")
    plain = {k: raw[k] for k in ("mode", "source", "trace", "seed", "distribution", "scale", "zero_fraction",
                                 "missing_until", "sign_flip") if k in raw}
    return GradientSpec(
        **plain,
        spikes=tuple((int(s["step"]), float(s["scale"])) for s in raw.get("spikes", ())),
        nonfinite=tuple((int(s["step"]), float(s["value"])) for s in raw.get("nonfinite", ())),
        missing=tuple(raw.get("missing", ())),
        prescale=tuple((k, float(v)) for k, v in raw.get("prescale", {}).items()))


def _optimizer(raw: dict | None, frameworks: list[str]) -> OptimizerSpec:
    raw = dict(raw or {})
    extras = {name: dict(raw.pop(name)) for name in frameworks if name in raw}
    defaults = raw.pop("defaults", "neutral")
    schedule = raw.pop("schedule", None)
    groups = tuple({k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items()} for g in raw.pop("groups", ()))
    hparams = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}
    if schedule is not None:
        hparams["lr"] = float(schedule["max_lr"])
        schedule = {"min_lr": 0.0, **schedule}
    return OptimizerSpec(defaults=defaults, hparams=hparams, extras=extras, schedule=schedule, groups=groups)


def _expectations(entry: dict) -> tuple[str, dict[str, str]]:
    """(expect of the first primary pair, per-framework expectations) from a string or mapping `expect`."""
    expect = entry.get("expect", "conform")
    if not isinstance(expect, dict):
        return expect, {}
    frameworks = list(entry.get("frameworks", ("torch", "mindspore")))
    return expect[frameworks[1]], dict(expect)


def _interface_case(entry: dict, file: str, line: int, text: str) -> ProbeCase | ApiCase:
    common = {"id": str(entry["id"]), "description": entry.get("description", ""), "file": file, "line": line,
              "reason": entry.get("reason"), "source_text": text, "causes": checks.declared_causes(entry)}
    if "probe" in entry:
        return ProbeCase(**common, probe=dict(entry["probe"]), behaviour=dict(entry["behaviour"]),
                         frameworks=tuple(entry["behaviour"]))
    return ApiCase(**common, framework=entry["api"], cls=entry["class"], params=dict(entry["params"]))


def build_case(entry: dict, file: str, line: int, text: str, base: Path | None = None) -> Case | ProbeCase | ApiCase:
    """A validated entry -> Case (or an interface case). Raises CaseError naming the first problem. `base`:
    the case file's folder, against which a relative trace path is read (conformance/cases/trace_cases.py)."""
    frameworks = backends.names()
    problems = validate(entry, backends.extras())
    case_id = str(entry.get("id")) if isinstance(entry, dict) and "id" in entry else None
    if not problems:
        problems = checks.cause_problems(entry)
    if not problems and ("probe" in entry or "api" in entry):
        return _interface_case(entry, file, line, text)
    if not problems and trace_cases.is_trace(entry):
        filled, model, problems = trace_cases.expand(entry, base)
        entry = filled if filled is not None else entry
    elif not problems:
        model = _model(entry["model"])
    if not problems:
        problems = checks.semantic_checks(entry, model)
    if problems:
        path, message = problems[0]
        key = ".".join(str(p) for p in path) or None
        raise CaseError(file, _line_of(entry, path) or line, case_id, key, message)
    dtypes = entry.get("dtype", "float32")
    devices = entry.get("devices", ["cpu", "gpu"])
    return Case(
        id=case_id, description=entry.get("description", ""), file=file, line=line, model=model,
        loss=entry.get("loss", "l1"), data=DataSpec(**entry.get("data", {})),
        gradients=_gradients(entry.get("gradients")),
        optimizer=_optimizer(entry.get("optimizer"), frameworks),
        steps=int(entry["steps"]),
        dtypes=tuple([dtypes] if isinstance(dtypes, str) else dtypes),
        devices=tuple([devices] if isinstance(devices, str) else devices),
        tolerance=_tolerance(entry.get("tolerance"), DEFAULT_TOLERANCE),
        oracle_tolerance=_tolerance(entry.get("oracle_tolerance"), DEFAULT_ORACLE_TOLERANCE),
        expect=_expectations(entry)[0], expect_pairs=_expectations(entry)[1], reason=entry.get("reason"),
        frameworks=tuple(entry.get("frameworks", ("torch", "mindspore"))), source_text=text,
        oracle_expect=dict(entry.get("oracle_expect", {})), error_contains=entry.get("error_contains"),
        oracle_stride=entry.get("oracle_stride", "auto"), causes=checks.declared_causes(entry),
        resume=ResumeSpec(int(entry["resume"]["steps"]), entry["resume"]["from"]) if "resume" in entry else None,
    )


def _entry_text(lines: list[str], start: int, end: int | None) -> str:
    return "".join(lines[start - 1:(end - 1) if end else None]).rstrip() + "\n"


def load_file(path: Path, display: str | None = None) -> list[Case | CaseError]:
    """Every case of one file, or a CaseError in its place. Never raises for a bad file."""
    file = display or str(path)
    try:
        text = read_text(path, file)
        doc = parse_text(text, file)
    except CaseError as exc:
        return [exc]
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list) or not doc["cases"]:
        return [CaseError(file, getattr(doc, "line", 1), None, "cases",
                          "a case file is a mapping with a non-empty 'cases:' list (and optionally 'defaults:')")]
    unknown = sorted(set(doc) - {"cases", "defaults", "rerun"})
    if unknown:
        return [CaseError(file, doc.key_lines.get(unknown[0]), None, unknown[0],
                          "unknown top-level key; allowed: cases, defaults, rerun")]
    if not isinstance(doc.get("rerun", ""), str):
        return [CaseError(file, doc.key_lines.get("rerun"), None, "rerun",
                          "'rerun:' is the command that reruns this file's cases (text)")]
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        return [CaseError(file, doc.key_lines.get("defaults"), None, "defaults",
                          "'defaults:' is a mapping of keys shared by the file's cases")]
    lines = text.splitlines(keepends=True)
    entries = doc["cases"]
    starts = [getattr(e, "line", doc.key_lines["cases"]) for e in entries]
    results: list[Case | CaseError] = []
    for index, entry in enumerate(entries):
        line = starts[index]
        text = _entry_text(lines, line, starts[index + 1] if index + 1 < len(starts) else None)
        if not isinstance(entry, dict):
            results.append(CaseError(file, line, None, None, "each entry under 'cases:' must be a mapping"))
            continue
        merged = _LineDict({**copy.deepcopy(defaults), **entry})
        merged.line, merged.key_lines = entry.line, entry.key_lines
        for _, expanded in _expand_checked(merged, file, line):
            if isinstance(expanded, CaseError):
                results.append(expanded)
                continue
            try:
                case = build_case(expanded, file, line, text, path.parent)
                rerun = doc.get("rerun") if isinstance(case, Case) else None  # a generated file's command
                results.append(dataclasses.replace(case, rerun=rerun) if rerun else case)
            except CaseError as exc:
                results.append(exc)
    return results


def _expand_checked(entry: _LineDict, file: str, line: int) -> Iterator[tuple[str, Any]]:
    matrix = entry.get("matrix")
    well_formed = isinstance(matrix, dict) and all(isinstance(v, list) and v for v in matrix.values())
    if matrix is not None and not well_formed:
        yield str(entry.get("id")), CaseError(file, _line_of(entry, ["matrix"]), str(entry.get("id")), "matrix",
                                              "matrix maps dotted keys (e.g. optimizer.lr) to non-empty lists")
        return
    bad_key = next((k for k in (matrix or {}) if not (isinstance(k, str) and _DOTTED.match(k))), None)
    if bad_key is not None:
        yield str(entry.get("id")), CaseError(file, _line_of(entry, ["matrix"]), str(entry.get("id")), "matrix",
                                              f"matrix key {bad_key!r} is not a dotted key such as optimizer.lr")
        return
    combos = math.prod(len(v) for v in (matrix or {}).values())
    if combos > MAX_MATRIX:
        yield str(entry.get("id")), CaseError(
            file, _line_of(entry, ["matrix"]), str(entry.get("id")), "matrix",
            f"the matrix expands into {combos} cases, over the limit of {MAX_MATRIX}; "
            "set CONFORMANCE_MAX_MATRIX to raise it deliberately")
        return
    try:
        expansions = list(expand_matrix(entry))
    except ValueError as exc:
        yield str(entry.get("id")), CaseError(file, _line_of(entry, ["matrix"]), str(entry.get("id")), "matrix",
                                              str(exc))
        return
    for case_id, expanded in expansions:
        if isinstance(expanded, dict) and not isinstance(expanded, _LineDict):
            wrapped = _LineDict(expanded)
            wrapped.line, wrapped.key_lines = entry.line, entry.key_lines
            expanded = wrapped
        yield case_id, expanded


def load_all(paths: list[Path], rootdir: Path) -> list[Case | CaseError]:
    """All cases of all files, with duplicate ids (within or across files, or made by a matrix) as errors."""
    results: list[Case | CaseError] = []
    for path in paths:
        results.extend(load_file(path, os.path.relpath(path, rootdir)))
    return mark_duplicates(results)


def mark_duplicates(results: list) -> list:
    """Replace every case whose id was seen before with an error naming the first occurrence."""
    seen: dict[str, Any] = {}
    out: list = []
    for result in results:
        if not isinstance(result, CaseError):
            first = seen.setdefault(result.id, result)
            if first is not result:
                result = CaseError(result.file, result.line, result.id, "id",
                                   f"duplicate case id; first defined at {first.file}:{first.line}. "
                                   "Ids must be unique across all case files")
        out.append(result)
    return out
