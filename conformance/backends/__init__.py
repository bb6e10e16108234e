"""Registry of framework adapters.

Each adapter module defines `BACKEND` (an object satisfying backends.base.Backend). Adapter modules
import their framework lazily, so listing names and native-only options costs no framework import.
A third framework means one new module and one line here.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from .base import Backend

_MODULES = {
    "torch": "conformance.backends.torch_backend",
    "mindspore": "conformance.backends.mindspore_backend",
    "mindspore_experimental": "conformance.backends.mindspore_experimental_backend",
}


def names() -> list[str]:
    return list(_MODULES)


@lru_cache(maxsize=None)
def get(name: str) -> Backend:
    return importlib.import_module(_MODULES[name]).BACKEND


def extras() -> dict[str, frozenset[str]]:
    """Framework name -> native-only optimizer options its adapter accepts under `optimizer.<name>:`."""
    return {name: get(name).extra_options for name in _MODULES}


def api_descriptions() -> dict[str, dict]:
    """Each installed framework's optimizer constructor (imports the frameworks; call once per run)."""
    out = {}
    for name in _MODULES:
        backend = get(name)
        if backend.unavailable("cpu", "float32") is None:
            out[name] = backend.api()
    return out


def build_infos() -> dict[str, dict]:
    """Each installed framework's build fingerprint (imports the frameworks; call once per run)."""
    return {name: get(name).build_info() for name in _MODULES if get(name).unavailable("cpu", "float32") is None}
