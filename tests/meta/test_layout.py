"""The package's shape, checked: the folder tree reads as the pipeline, and nothing reaches back up.

- the import graph of the package's modules (top-level imports) has no cycle;
- no module name is used twice, except in the command layer (a command may carry the name of what it runs);
- the command modules never import each other, and only the backends import a framework (and the trace
  recorder imports torch: it runs inside a user's own torch loop, see RECORDER);
- a handful of flat modules at most in conformance/, and no module over MAX_LINES lines.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "conformance"
MAX_LINES = 400
FLAT = {"__init__", "__main__", "errors", "numbers"}  # shared by every stage
FRAMEWORKS = {"torch", "mindspore", "keras", "jax", "optax", "paddle"}
# The one module outside backends/ that imports a framework: `conformance.record` hooks the step of a user's
# torch.optim.Adamax inside the user's own loop (the suite itself never imports it), so it may import torch,
# and nothing else.
RECORDER = ("conformance.traces.record", {"torch"})


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_module_import_graph_has_no_cycle():
    graph = {name: {m for m in _imports(path, True) if m in MODULES and m != name} for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(name):] + [name]))
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, trail + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_module_names_are_unique_outside_the_command_layer():
    names = Counter(path.stem for name, path in MODULES.items()
                    if ".commands." not in name and path.stem not in ("__init__", "__main__"))
    assert [n for n, count in names.items() if count > 1] == []


def test_commands_never_import_each_other():
    for name, path in MODULES.items():
        if name.startswith("conformance.commands."):
            imported = {m for m in _imports(path, False) if m.startswith("conformance.commands")}
            assert not imported, f"{name} imports {sorted(imported)}: shared logic belongs in its stage's package"


def test_only_the_backends_import_a_framework():
    for name, path in MODULES.items():
        frameworks = {m.split(".")[0] for m in _imports(path, False)} & FRAMEWORKS
        allowed = RECORDER[1] if name == RECORDER[0] else set()
        if frameworks - allowed:
            assert name.startswith("conformance.backends."), f"{name} imports {sorted(frameworks - allowed)}"


def test_the_recorder_is_imported_by_nothing_in_the_suite():
    """Only `conformance.record` (conformance/__init__.py, when called) reaches the recorder: a suite module
    importing it would import torch outside the backends."""
    for name, path in MODULES.items():
        if name not in (RECORDER[0], "conformance"):
            assert RECORDER[0] not in _imports(path, False), f"{name} imports {RECORDER[0]}"


def test_few_flat_modules_and_none_over_the_size_limit():
    flat = {path.stem for path in PACKAGE.glob("*.py")}
    assert flat <= FLAT, f"flat modules beyond the shared ones: {sorted(flat - FLAT)}"
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split by job): {long}"
