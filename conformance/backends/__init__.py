"""Registry of framework adapters.

Each adapter module defines `BACKEND` (an object satisfying backends.base.Backend). Adapter modules
import their framework lazily, so listing names and native-only options costs no framework import.
A third framework means one new module and one line here.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from functools import lru_cache

from conformance.backends.base import Backend
from conformance.numerics import oracles

_MODULES = {
    "torch": "conformance.backends.torch_backend",
    "mindspore": "conformance.backends.mindspore_backend",
    "mindspore_experimental": "conformance.backends.mindspore_experimental_backend",
    "mindspore_graph": "conformance.backends.mindspore_graph_backend",
    "torch_compile": "conformance.backends.torch_compile_backend",
    "keras": "conformance.backends.keras_backend",
    "optax": "conformance.backends.optax_backend",
    "paddle": "conformance.backends.paddle_backend",
}


def names() -> list[str]:
    return list(_MODULES)


@lru_cache(maxsize=None)
def get(name: str) -> Backend:
    return importlib.import_module(_MODULES[name]).BACKEND


def extras() -> dict[str, dict[str, dict]]:
    """Framework name -> {native-only option its adapter accepts under `optimizer.<name>:` -> JSON Schema
    of the option's value}."""
    return {name: get(name).extra_options for name in _MODULES}


def api_descriptions() -> dict[str, dict]:
    """Each installed framework's optimizer constructor (imports the frameworks; call once per run)."""
    out = {}
    for name in _MODULES:
        backend = get(name)
        if backend.unavailable("cpu", "float32") is None:
            out[name] = {**backend.api(), "formula": oracles.describe(backend.formula)}
    return out


def build_infos() -> dict[str, dict]:
    """Each installed framework's build fingerprint (imports the frameworks; call once per run)."""
    return {name: get(name).build_info() for name in _MODULES if get(name).unavailable("cpu", "float32") is None}


def teardown_is_slow() -> bool:
    """Whether a framework this process imported takes seconds to tear down at exit: an adapter names
    such a framework's module in SLOW_TEARDOWN."""
    for module in _MODULES.values():
        adapter = sys.modules.get(module)
        if adapter is not None and getattr(adapter, "SLOW_TEARDOWN", None) in sys.modules:
            return True
    return False


def exit_now(code: int) -> None:
    """End the process with `code` without interpreter teardown when that teardown is slow (see
    teardown_is_slow); callers have written and closed their files. CONFORMANCE_TEARDOWN=1 keeps the
    normal exit."""
    if teardown_is_slow() and os.environ.get("CONFORMANCE_TEARDOWN") != "1":
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
