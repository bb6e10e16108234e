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

import codecs
import copy
import itertools
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import backends, causes, models
from .case import (ApiCase, Bound, Case, DataSpec, GradientSpec, ModelSpec, OptimizerSpec, ProbeCase,
                   Tolerance)
from .errors import CaseError
from .schema import MAX_MATRIX, MAX_MEMORY_MB, MAX_PARAMS, validate

# Default bounds when a case gives none. Expressed in ULP of the case's dtype so one default serves
# every dtype; atol 0 keeps the bound strict. Cases that expect real agreement set their own.
DEFAULT_TOLERANCE = {"params": {"ulp": 4}, "state": {"ulp": 4}, "loss": {"ulp": 16}}
# A framework against a float64 oracle of its own formula, stepped from the framework's own state:
# one step's rounding, a few ULP. atol covers updates that cancel to ~0 (ULP explodes there); against an
# oracle it is not absolute but counts eps(dtype) x the magnitude of the terms that formed each element
# (runner._oracle_bounds applies it; oracles.Step says why the terms, not the result).
DEFAULT_ORACLE_TOLERANCE = {"params": {"ulp": 8, "atol": 8.0}, "state": {"ulp": 8, "atol": 8.0},
                            "loss": {"ulp": 16}}
# A case file is a few hundred nodes. Aliases can make a tiny file expand into billions of nodes
# ("billion laughs"); every later walk (defaults, matrix, schema, messages) would then hang.
MAX_YAML_NODES = 100_000
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _LineDict(dict):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no executable tags, ever) that records line numbers of mappings and keys."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value its explicit tag cannot build (`!!int x`, `!!bool maybe`) is a YAML error at its line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag}: {exc}", node.start_mark) from None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    """Line-aware mapping. A key written twice is refused (PyYAML would keep the last one silently);
    keys brought in by a `<<:` merge may be overridden, as YAML intends."""
    explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    written: set = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found a key that is a list or mapping; keys must be plain names", key_node.start_mark) from None
        if id(key_node) in explicit:
            if key in written:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} twice in one mapping; keep one", key_node.start_mark)
            written.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 (PyYAML) reads `1e-8` as a string; YAML 1.2 and every user read it as a number.
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _line_of(entry: Any, path: list) -> int | None:
    """Deepest known line for a key path inside an entry."""
    line = getattr(entry, "line", None)
    node = entry
    for key in path:
        if isinstance(node, dict):
            line = node.key_lines.get(key, line) if hasattr(node, "key_lines") else line
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            break
    return line


def expanded_size(doc: Any, limit: int = MAX_YAML_NODES) -> int:
    """Nodes in `doc` counting every alias use, computed per distinct node; stops early past `limit`."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else \
            (list(node) if isinstance(node, list) else [])
        if children_done or not children:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 1) for c in children))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes[id(doc)]


def _where(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column), 1-based, of a byte offset in valid UTF-8 `data[:offset]`; columns count characters
    as an editor shows them (a byte-order mark is not one)."""
    start = data.rfind(b"\n", 0, offset) + 1
    before = data[start:offset].decode("utf-8", "replace")
    return data.count(b"\n", 0, offset) + 1, len(before.removeprefix("\ufeff") if start == 0 else before) + 1


def read_text(path: Path, file: str) -> str:
    """The text of a case file, which must be UTF-8 (a leading byte-order mark is dropped, CRLF line ends
    read as LF). Anything else becomes a CaseError that says where and what to do, never an exception
    from the decoder: a stray Latin-1 or binary file in cases/ must not stop the other files' cases."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CaseError(file, None, None, None, "this is a folder, not a case file; rename it "
                        "(only case files may end in .yaml or .yml)") from None
    except OSError as exc:
        raise CaseError(file, None, None, None, f"cannot read the file ({exc.strerror or exc}); "
                        "check that it exists and that its permissions let this user read it") from None
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CaseError(file, 1, None, None, "the file is UTF-16 or UTF-32 text (it starts with that "
                        "byte-order mark); save it as UTF-8", column=1)
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text, undecodable = data[skip:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        text, undecodable = "", exc
    nul = data.find(b"\0")  # whichever problem comes first is reported: a NUL early on says "UTF-16"
    if nul >= 0 and (undecodable is None or nul < skip + undecodable.start):
        line, column = _where(data, nul)
        raise CaseError(file, line, None, None, f"a NUL byte at byte offset {nul}: a case file is text, and "
                        "NUL appears only in binary or UTF-16 files; save it as UTF-8", column=column)
    if undecodable is not None:
        offset = skip + undecodable.start
        line, column = _where(data, offset)
        raise CaseError(file, line, None, None, f"not UTF-8 text: byte 0x{data[offset]:02x} at byte offset "
                        f"{offset} cannot be decoded ({undecodable.reason}); a case file is UTF-8 text: save it "
                        "as UTF-8, or move a file that is not a case file out of cases/", column=column)
    return text.replace("\r\n", "\n")


def parse_text(text: str, file: str) -> Any:
    """Parse YAML safely; syntax errors and executable tags become a CaseError with line and column."""
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except RecursionError:
        raise CaseError(file, None, None, None, "invalid YAML: nested too deeply for a case file") from None
    except yaml.reader.ReaderError as exc:  # a control character; the reader gives a position, no line
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise CaseError(file, line, None, None, f"invalid YAML: character U+{exc.character:04X} is not allowed "
                        "(YAML text has no control characters); remove it", column=column) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        if "could not determine a constructor" not in str(exc.problem):
            raise CaseError(file, mark.line + 1 if mark else None, None, None, f"invalid YAML: {exc.problem}",
                            column=mark.column + 1 if mark else None) from None
        raise CaseError(file, mark.line + 1 if mark else None, None, None,
                        f"refused: {exc.problem}. Case files are plain data; tags that build Python "
                        "objects are not allowed", column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CaseError(file, mark.line + 1 if mark else None, None, None,
                        f"invalid YAML: {problem}", column=mark.column + 1 if mark else None) from None
    if expanded_size(doc) > MAX_YAML_NODES:
        raise CaseError(file, None, None, None,
                        f"refused: the document expands to more than {MAX_YAML_NODES} values (through YAML "
                        "aliases?); a case file is small plain data: split it or drop the aliases")
    return doc


def _set_dotted(entry: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` inside entry; ValueError if a step on the way is not a mapping."""
    node = entry
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"matrix key '{dotted}': '{key}' is not a mapping in this case")
    node[keys[-1]] = value


def _label(value: Any) -> str:
    """A matrix value as an id fragment: lists joined by '_', mappings as k-v pairs joined by '+'."""
    if isinstance(value, (list, tuple)):
        return "_".join(_label(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}-{_label(v)}" for k, v in value.items())
    return str(value)


def expand_matrix(entry: dict) -> Iterator[tuple[str, dict]]:
    """(case id, entry) for each combination of the entry's matrix; the entry itself if none."""
    matrix = entry.get("matrix") or {}
    base = {k: v for k, v in entry.items() if k != "matrix"}
    if not matrix:
        yield str(entry.get("id")), base
        return
    keys = list(matrix)
    for combo in itertools.product(*(matrix[k] for k in keys)):
        expanded = copy.deepcopy(base)
        suffix = []
        for key, value in zip(keys, combo):
            _set_dotted(expanded, key, value)
            if key not in ("dtype", "devices"):  # those are already in the item id
                suffix.append(f"{key.split('.')[-1]}={_label(value)}")
        case_id = ".".join([str(base.get("id")), *suffix])
        expanded["id"] = case_id
        yield case_id, expanded


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
                     init_seed=int(raw.get("init_seed", 0)), init_scale=raw.get("init_scale"), names=names)


def _gradients(raw: Any) -> GradientSpec:
    if raw is None or isinstance(raw, str):
        return GradientSpec(mode=raw or "autograd")
    plain = {k: raw[k] for k in ("mode", "source", "seed", "distribution", "scale", "zero_fraction",
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
    hparams = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}
    if schedule is not None:
        hparams["lr"] = float(schedule["max_lr"])
        schedule = {"min_lr": 0.0, **schedule}
    return OptimizerSpec(defaults=defaults, hparams=hparams, extras=extras, schedule=schedule)


def param_count(model: ModelSpec) -> int:
    sizes = model.sizes
    count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if model.kind == "layernorm_mlp":
        count += 2 * sum(sizes[1:-1])
    return count


_REPLAY_ONLY = {"zero_fraction", "sign_flip", "spikes", "nonfinite", "prescale", "source", "missing", "missing_until"}


def memory_estimate(model: ModelSpec, batch: int, devices: list[str], frameworks: int = 2) -> int:
    """Rough peak bytes of one item, counted in float64 words so one figure serves every dtype.

    Per parameter: the float64 init and replayed gradient (2); per side, the framework's params, grads,
    m, u (4), their host copies and received gradients (4), the oracle's results, scales and temporaries
    (10). Per sample: inputs and targets (in + out), and per side forward/backward activations (3 x width).
    A GPU item adds a CPU twin per framework. Over-estimates rather than under-: it guards the machine.
    """
    sides = frameworks * (2 if "gpu" in devices else 1)
    params = param_count(model)
    width = sum(model.sizes)
    words = params * (2 + 18 * sides) + batch * (model.sizes[0] + model.sizes[-1] + 3 * sides * width)
    return 8 * words


def _semantic_checks(entry: dict, model: ModelSpec) -> list[tuple[list, str]]:
    """Checks a schema cannot express: sizes by kind, layer names, the parameter limit."""
    problems: list[tuple[list, str]] = []
    if model.kind == "linear" and "sizes" in entry["model"]:
        problems.append((["model", "sizes"], "a linear model takes 'in' and 'out', not 'sizes'"))
    if model.kind == "layernorm_mlp" and len(model.sizes) < 3:
        problems.append((["model", "sizes"], "layernorm_mlp needs at least one hidden size: [in, hidden, out]"))
    layers = len(model.sizes) - 1 + (len(model.sizes) - 2 if model.kind == "layernorm_mlp" else 0)
    if model.names is not None and len(model.names) != layers:
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
    if entry.get("expect") != "error" and "error_contains" in entry:
        problems.append((["error_contains"], "error_contains goes with expect: error"))
    count = param_count(model)
    if count > MAX_PARAMS:
        problems.append((["model"], f"{count} parameters exceeds the limit of {MAX_PARAMS}; "
                                    "set CONFORMANCE_MAX_PARAMS to raise it deliberately"))
        return problems
    devices = entry.get("devices", ["cpu", "gpu"])
    batch = int(entry.get("data", {}).get("batch", 4))
    need = memory_estimate(model, batch, [devices] if isinstance(devices, str) else devices)
    if need > MAX_MEMORY_MB * 2**20:
        problems.append((["data", "batch"] if "batch" in entry.get("data", {}) else ["model"],
                         f"this item would need about {need / 2**20:,.0f} MiB (model {count} parameters, batch "
                         f"{batch}), over the limit of {MAX_MEMORY_MB} MiB; set CONFORMANCE_MAX_MEMORY_MB "
                         "to raise it deliberately"))
    return problems


def _causes(entry: dict) -> tuple[str, ...]:
    cause = entry.get("cause", ())
    return (cause,) if isinstance(cause, str) else tuple(cause)


def _cause_problems(entry: dict) -> list[tuple[list, str]]:
    """Every declared cause must be an id of the registry (cases/causes.yaml) or `unknown` alone."""
    declared = _causes(entry)
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


def _interface_case(entry: dict, file: str, line: int, text: str) -> ProbeCase | ApiCase:
    common = {"id": str(entry["id"]), "description": entry.get("description", ""), "file": file, "line": line,
              "reason": entry.get("reason"), "source_text": text, "causes": _causes(entry)}
    if "probe" in entry:
        return ProbeCase(**common, probe=dict(entry["probe"]), behaviour=dict(entry["behaviour"]),
                         frameworks=tuple(entry["behaviour"]))
    return ApiCase(**common, framework=entry["api"], cls=entry["class"], params=dict(entry["params"]))


def build_case(entry: dict, file: str, line: int, text: str) -> Case | ProbeCase | ApiCase:
    """A validated entry -> Case (or an interface case). Raises CaseError naming the first problem."""
    frameworks = backends.names()
    problems = validate(entry, backends.extras())
    case_id = str(entry.get("id")) if isinstance(entry, dict) and "id" in entry else None
    if not problems:
        problems = _cause_problems(entry)
    if not problems and ("probe" in entry or "api" in entry):
        return _interface_case(entry, file, line, text)
    if not problems:
        model = _model(entry["model"])
        problems = _semantic_checks(entry, model)
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
        expect=entry.get("expect", "conform"), reason=entry.get("reason"),
        frameworks=tuple(entry.get("frameworks", ("torch", "mindspore"))), source_text=text,
        oracle_expect=dict(entry.get("oracle_expect", {})), error_contains=entry.get("error_contains"),
        oracle_stride=entry.get("oracle_stride", "auto"), causes=_causes(entry),
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
    unknown = sorted(set(doc) - {"cases", "defaults"})
    if unknown:
        return [CaseError(file, doc.key_lines.get(unknown[0]), None, unknown[0],
                          "unknown top-level key; allowed: cases, defaults")]
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
        for case_id, expanded in _expand_checked(merged, file, line):
            if isinstance(expanded, CaseError):
                results.append(expanded)
                continue
            try:
                results.append(build_case(expanded, file, line, text))
            except CaseError as exc:
                results.append(exc)
    return results


def _expand_checked(entry: _LineDict, file: str, line: int) -> Iterator[tuple[str, Any]]:
    matrix = entry.get("matrix")
    if matrix is not None and not (isinstance(matrix, dict) and all(isinstance(v, list) and v for v in matrix.values())):
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
