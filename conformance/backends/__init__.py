"""Registry of AdaMax implementations: every module `conformance/backends/<name>_backend.py`.

Each such module defines `BACKEND`, an instance of a backends.base.Backend subclass whose `name` is the
module's <name>. A new implementation is that one module plus its formula entry (numerics/formulas.py
FEATURES); nothing here changes. Adapter modules import their framework lazily, so listing names and
native-only options costs no framework import.
"""
from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from functools import cache

from conformance.backends.base import Backend
from conformance.numerics import formulas

SUFFIX = "_backend"
FIRST = ("torch", "mindspore")  # the suite's primary pair, listed first; the rest by name


@cache
def names() -> list[str]:
    """Every implementation's name: the primary pair, then the others alphabetically."""
    found = [m.name.removesuffix(SUFFIX) for m in pkgutil.iter_modules(__path__) if m.name.endswith(SUFFIX)]
    return [n for n in FIRST if n in found] + sorted(n for n in found if n not in FIRST)


def _module(name: str) -> str:
    return f"{__name__}.{name}{SUFFIX}"


@cache
def get(name: str) -> Backend:
    if name not in names():
        raise KeyError(f"no implementation named {name!r}: known are {', '.join(names())}")
    backend = importlib.import_module(_module(name)).BACKEND
    if backend.name != name:
        raise TypeError(f"{_module(name)}.BACKEND is named {backend.name!r}; it must be {name!r}")
    return backend


def extras() -> dict[str, dict[str, dict]]:
    """Framework name -> {native-only option its adapter accepts under `optimizer.<name>:` -> JSON Schema
    of the option's value}."""
    return {name: get(name).extra_options for name in names()}


def api_descriptions() -> dict[str, dict]:
    """Each installed framework's optimizer constructor (imports the frameworks; call once per run)."""
    out = {}
    for name in names():
        backend = get(name)
        if backend.unavailable("cpu", "float32") is None:
            out[name] = {**backend.api(), "formula": formulas.describe(backend.formula.name, backend.formula.features)}
    return out


def build_infos() -> dict[str, dict]:
    """Each installed framework's build fingerprint (imports the frameworks; call once per run)."""
    return {name: get(name).build_info() for name in names() if get(name).unavailable("cpu", "float32") is None}


def teardown_is_slow() -> bool:
    """Whether a framework this process imported takes seconds to tear down at exit: an adapter names
    such a framework's module in SLOW_TEARDOWN."""
    for module in map(_module, names()):
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
