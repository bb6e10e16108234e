"""Collection and execution: a case file becomes items, one per (case, device, dtype); each runs its
case and sends its summary entry to the controller (never writing the run's shared files itself)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.cases import loader
from conformance.cases.case import ApiCase, Item, ProbeCase
from conformance.errors import CaseError
from conformance.plugin.processes import log
from conformance.plugin.session import (
    _STATE,
    FRAMEWORKS_PROPERTY,
    PAGE_PROPERTY,
    PROPERTY,
    RunState,
    _describe_frameworks,
    _is_worker,
)
from conformance.results.entry import entry as results_entry


class CaseFailure(Exception):
    """Raised by an item whose verdict is not its expectation; carries the case-language message."""


class CaseFile(pytest.File):
    def collect(self):
        display = os.path.relpath(self.path, self.config.rootpath)
        for result in loader.mark_duplicates(loader.load_file(self.path, display)):
            if isinstance(result, CaseError):
                name = f"{result.case_id or 'file'}[error]" if result.case_id else "[error]"
                yield CaseErrorItem.from_parent(self, name=name, error=result)
                continue
            for device in result.devices:
                for dtype in result.dtypes:
                    spec = Item(result, device, dtype)
                    yield CaseItem.from_parent(self, name=spec.name, spec=spec)


def _execute(spec: Item, steps_dir: Path) -> dict[str, Any]:
    """Run one item by its kind (imports deferred: collection must not import the frameworks)."""
    if isinstance(spec.case, ProbeCase):
        from conformance.engine.probes import run_probe
        return run_probe(spec)
    if isinstance(spec.case, ApiCase):
        from conformance.engine.probes import run_api_check
        return run_api_check(spec)
    from conformance.engine.runner import run_item
    return run_item(spec, steps_dir)


def _write_page(state: RunState, payload: str) -> bool:
    """Under xdist each worker draws its own items' pages as they finish (plots are most of a report's
    cost, and so they run in parallel with other items); from the entry as the controller will read it,
    so the page is the one the controller would draw. False (the controller draws it) if that fails."""
    from conformance.report.run_report import write_item_page

    try:
        write_item_page(state.run_dir, state.run_id, json.loads(payload))
    except Exception:  # noqa: BLE001 - the controller draws it again, and fails loudly there
        log.warning("item page left to the controller", exc_info=True)
        return False
    return True


class CaseItem(pytest.Item):
    def __init__(self, *, spec: Item, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec
        for mark in ("case", spec.device, spec.dtype, spec.case.expect):
            self.add_marker(mark)
        if getattr(spec.case, "data", None) is not None and spec.case.data.dataset is not None:
            self.add_marker("slow")  # trains a real model on a real dataset: seconds, not milliseconds

    def runtest(self) -> None:
        state = self.config.stash[_STATE]
        entry = _execute(self.spec, state.run_dir / "steps")
        entry["nodeid"] = self.nodeid
        payload = json.dumps(entry, default=str)
        self.user_properties.append((PROPERTY, payload))
        if _is_worker(self.config):
            if not self.config.getoption("no_html") and _write_page(state, payload):
                self.user_properties.append((PAGE_PROPERTY, "1"))
            if not state.described:
                state.described = True
                self.user_properties.append((FRAMEWORKS_PROPERTY, json.dumps(_describe_frameworks(), default=str)))
        if entry["outcome"] == "skipped":
            pytest.skip(entry["reason"])
        if entry["outcome"] in ("failed", "error"):
            raise CaseFailure(entry["message"])

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, self.spec.case.line - 1, f"case {self.spec.case.id} [{self.spec.param_id}]"


class CaseErrorItem(pytest.Item):
    """A case (or file) that could not be loaded: fails alone, with file, line, case id, key and fix."""

    def __init__(self, *, error: CaseError, **kwargs: Any):
        super().__init__(**kwargs)
        self.error = error
        self.add_marker("case")

    def runtest(self) -> None:
        entry = results_entry(nodeid=self.nodeid, case=self.error.case_id, file=self.error.file,
                              line=self.error.line, observed="error", outcome="error", reason=str(self.error),
                              error=self.error.as_dict())
        self.user_properties.append((PROPERTY, json.dumps(entry)))
        raise CaseFailure(str(self.error))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, (self.error.line or 1) - 1, f"case file error: {self.error.case_id or self.path.name}"
