"""pytest plugin: YAML cases become test items; the controller alone writes the run's summary.

Collection: every `*.yaml` under a `cases/` folder. Each (case, device, dtype) is one item, id
`cases/<file>.yaml::<case id>[<device>-<dtype>]`; a broken case is one error item that says why.
Results: each item sends its summary entry through `user_properties` (pytest-xdist carries them to the
controller); the controller writes reports/<run-id>/summary.json and the HTML report at the end, so a
serial run and `-n 2` produce the same files. Workers only write their own items' JSONL files.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from conformance.cases.causes import REGISTRY_NAME
from conformance.errors import CaseError
from conformance.plugin.items import CaseErrorItem, CaseFile, CaseItem
from conformance.plugin.processes import (
    WorkerExit,
    _claim_run_dir,
    _pin_worker,
    _quiet_frameworks,
    _sigterm_as_interrupt,
    log,
)
from conformance.plugin.scheduling import LongestFirst, one_ahead_scheduler
from conformance.plugin.session import (
    _STATE,
    Controller,
    RunState,
    _is_worker,
    _run_context,
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "optimizer conformance suite")
    group.addoption("--reports-dir", default="reports", help="where run folders go (default: reports/)")
    group.addoption("--run-id", default=None, help="name of this run's folder (default: time + random)")
    group.addoption("--no-html", action="store_true", help="write summary.json but no HTML report")
    group.addoption("--run-context", default=None, metavar="FILE",
                    help="a JSON object stored as run.context in summary.json: where and why this run was made "
                         "(tools/gpu-run records the machine and what it cannot measure there)")


def pytest_configure(config: pytest.Config) -> None:
    state = RunState(config)
    config.stash[_STATE] = state
    if not _is_worker(config):
        state.context = _run_context(config)  # read before anything runs: a bad file stops the run here
        _claim_run_dir(state.run_dir)
        if threading.current_thread() is threading.main_thread():
            state.previous_sigterm = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    worker = config.workerinput.get("workerid", "gw") if _is_worker(config) else "controller"
    _quiet_frameworks(state.run_dir, worker)
    if _is_worker(config):
        pinned = _pin_worker(config)
        log.info("%s pinned to CPUs %s", worker, pinned)
    for mark, text in (("case", "an item of a YAML case file"),
                       ("cpu", "runs on the CPU"), ("gpu", "runs on a GPU"), ("float16", "half precision"),
                       ("float32", "single precision"), ("float64", "double precision"),
                       ("conform", "case expects agreement"), ("diverge", "case expects a divergence"),
                       ("error", "case expects a framework to raise"),
                       ("nonfinite", "case expects one side to turn NaN/Inf"),
                       ("slow", "trains a real model on a real dataset (data.dataset): seconds per item")):
        config.addinivalue_line("markers", f"{mark}: {text}")
    config.pluginmanager.register(LongestFirst(), "conformance-longest-first")
    if not _is_worker(config):
        config.pluginmanager.register(Controller(config, state), "conformance-controller")
    else:
        config.pluginmanager.register(WorkerExit(), "conformance-worker-exit")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and state.previous_sigterm is not None:
        signal.signal(signal.SIGTERM, state.previous_sigterm)
        state.previous_sigterm = None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's default distribution (`load`) hands out items one at a time, longest first, so workers end
    together (plugin/scheduling.py); another `--dist` is left to xdist."""
    if config.getoption("dist", "load") != "load":
        return None
    return one_ahead_scheduler(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand every worker the controller's run id, so all items land in one run folder."""
    node.workerinput["conformance_run_id"] = node.config.stash[_STATE].run_id


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    # cases/causes.yaml is the cause registry, not cases: the loader checks every `cause:` against it
    if file_path.name == REGISTRY_NAME:
        return None
    if file_path.suffix in (".yaml", ".yml") and "cases" in file_path.parent.parts:
        return CaseFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    """Ids must be unique across files: a later duplicate becomes an error item naming the first."""
    first: dict[str, CaseItem] = {}
    for index, item in enumerate(items):
        if not isinstance(item, CaseItem):
            continue
        case = item.spec.case
        seen = first.setdefault(case.id, item)
        if seen.spec.case is not case and seen.spec.case.file != case.file:
            error = CaseError(case.file, case.line, case.id, "id",
                              f"duplicate case id; first defined at {seen.spec.case.file}:{seen.spec.case.line}. "
                              "Ids must be unique across all case files")
            items[index] = CaseErrorItem.from_parent(item.parent, name=f"{item.name}[duplicate]", error=error)
    config.stash[_STATE].case_items = sum(isinstance(i, (CaseItem, CaseErrorItem)) for i in items)


