"""Matrix expansion: one case entry with `matrix:` becomes one entry per combination, each with its own id."""
from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from typing import Any

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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
