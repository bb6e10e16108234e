"""Docstrings and comments that cite the package must cite what exists.

A docstring that no longer says what the code does is a bug; the part of that a machine can check is a
citation: a module path (`conformance/engine/runner.py`), a dotted name (`oracle_metrics.oracle_bounds`,
`conformance.results.storage.StepWriter`) or a command (`python -m conformance validate`). This test reads
every docstring and comment of the package and the tools, and fails naming each citation that resolves to
nothing, with the file and line it stands on.
"""
from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from pathlib import Path

import pytest

from tests.conftest import REPO

SOURCES = sorted([*REPO.glob("conformance/**/*.py"), REPO / "tools" / "gpu-run", REPO / "tools" / "gpu-unpack",
                  REPO / "conftest.py"])
CHECKED_ROOTS = ("conformance/", "cases/", "tests/", "tools/", "docs/", "evidence/")
FILE_SUFFIXES = {"py", "yaml", "yml", "json", "jsonl", "html", "md", "txt", "j2", "toml", "ini", "log", "svg", "png"}
PATH = re.compile(r"(?<![\w/.-])((?:conformance|cases|tests|tools|docs|evidence)/[\w./-]*\w)")
DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?")
COMMAND = re.compile(r"python3? -m conformance (\w+)")


def _modules() -> dict[str, list[str]]:
    """Every module and package of conformance by its last name (and its dotted names)."""
    out: dict[str, list[str]] = {}
    for path in REPO.glob("conformance/**/*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[1] == "commands":  # command names are also summary.json keys (run.api): cite them as commands
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        dotted = ".".join(parts)
        out.setdefault(parts[-1], []).append(dotted)
    return out


MODULES = _modules()


def _top_level_names() -> set[str]:
    """Every function, class and constant defined at the top level of a package module, or in a class."""
    out: set[str] = set()
    for path in REPO.glob("conformance/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Assign):
                out.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return out


DEFINED = _top_level_names()
CALL = re.compile(r"^([A-Za-z_]\w*)\(\)$")
# The frameworks' own private functions, cited as the sources a formula was read from.
FRAMEWORK_INTERNALS = {"_single_tensor_adamax", "_multi_tensor_adamax", "_apply_decay", "_apply_weight_decay"}
PRIVATE = re.compile(r"(?<![\w.`>}])(_[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b")  # a private helper named in prose


def _texts(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and comment in a Python file."""
    source = path.read_text(encoding="utf-8")
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and node.body and isinstance(node.body[0], ast.Expr):
                found.append((node.body[0].lineno, doc))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found.append((token.start[0], token.string))
    return found


def _resolves(dotted: str) -> bool | None:
    """True/False whether a dotted citation names something of the package; None: not a citation of it."""
    head, *rest = dotted.split(".")
    if rest and rest[-1] in FILE_SUFFIXES:
        return None  # a file name, e.g. summary.json
    if head == "conformance":
        candidates = ["conformance"]
        rest_names = rest
    elif head in MODULES:
        candidates = MODULES[head]
        rest_names = rest
    else:
        return None
    for module_name in candidates:
        obj = importlib.import_module(module_name)
        names = list(rest_names)
        while names:
            try:  # a submodule first (conformance.engine.runner), else an attribute
                obj = importlib.import_module(f"{obj.__name__}.{names[0]}") if hasattr(obj, "__path__") else obj
                if getattr(obj, "__name__", "").endswith(f".{names[0]}"):
                    names.pop(0)
                    continue
            except ModuleNotFoundError:
                pass
            if not hasattr(obj, names[0]):
                break
            obj = getattr(obj, names.pop(0))
        if not names:
            return True
    return False


def problems(where: str, texts: list[tuple[int, str]]) -> list[str]:
    """Each citation in `texts` ((line, text) pairs of the file `where`) that resolves to nothing."""
    from conformance.__main__ import COMMANDS

    out = []
    for first, block in texts:
        out += _line_problems(where, first, block, COMMANDS)
    return list(dict.fromkeys(out))


def _line_problems(where: str, first: int, block: str, commands: list[str]) -> list[str]:
    """The problems of one docstring or comment, each with the line it stands on."""
    out = []
    for line, text in enumerate(block.splitlines() or [""], start=first):
        for cited in PATH.findall(text):
            target = cited.rstrip(".")
            if "<" in target or "*" in target or not target.startswith(CHECKED_ROOTS):
                continue
            if not (REPO / target).exists():
                out.append(f"{where}:{line}: cites {target}, which does not exist")
        for span in re.findall(r"`([^`\n]+)`", text):
            call = CALL.match(span)
            if call and call.group(1) not in DEFINED and not hasattr(__builtins__, call.group(1)):
                out.append(f"{where}:{line}: cites {span}, which the package does not define")
        for name in PRIVATE.findall(text):
            if name not in DEFINED and name not in FRAMEWORK_INTERNALS:
                out.append(f"{where}:{line}: cites {name}, which the package does not define")
        for span in re.findall(r"`([^`\n]+)`", text) + [text]:
            for dotted in DOTTED.findall(span):
                if "/" in dotted:
                    continue
                if _resolves(dotted) is False:
                    out.append(f"{where}:{line}: cites {dotted}, which the package does not define")
        for command in COMMAND.findall(text):
            if command not in commands:
                out.append(f"{where}:{line}: cites the command `python -m conformance {command}`, which does not "
                           f"exist (commands: {', '.join(commands)})")
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_docstrings_and_comments_cite_what_exists(path):
    found = problems(str(path.relative_to(REPO)), _texts(path))
    assert not found, "stale citations:\n" + "\n".join(found)


def test_the_check_catches_each_kind_of_stale_citation():
    """The check itself: each kind of stale citation is caught; true ones pass."""
    text = ("Bounds come from `runner._oracle_bounds` and `oracle_metrics.oracle_bounds`; see "
            "conformance/loader.py and conformance/engine/runner.py; run `python -m conformance release`, "
            "or `python -m conformance validate`; summary.json, numbers.sig and "
            "conformance.results.storage.StepWriter exist; `write_index()` does, `_oracle_bounds()` does not; "
            "the runner applies it in _oracle_bounds.")
    found = problems("probe.py", [(1, text)])
    assert any("runner._oracle_bounds" in f for f in found), found
    assert any("conformance/loader.py" in f for f in found), found
    assert any("python -m conformance release" in f for f in found), found
    assert any("_oracle_bounds()" in f for f in found), found
    assert len(found) == 5, found
