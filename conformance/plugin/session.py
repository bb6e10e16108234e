"""The run's state and its single writer: the controller gathers every item's entry (workers' too) and
writes summary.json and the HTML report, so a serial run and `-n 2` write the same files."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.results import storage
from conformance.results.entry import entry

PROPERTY = "conformance"


PAGE_PROPERTY = "conformance-page"  # set by a worker that already wrote the item's HTML page


FRAMEWORKS_PROPERTY = "conformance-frameworks"  # run.api and run.build, sent once by each worker


_STATE = pytest.StashKey["RunState"]()




# A run id names a folder directly under --reports-dir: no separators, no dot-dot, not `latest`.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class RunState:
    """Where this run writes, and (controller only) the entries collected so far."""

    def __init__(self, config: pytest.Config):
        root = Path(config.rootpath)
        reports = Path(config.getoption("reports_dir"))
        self.reports = reports if reports.is_absolute() else root / reports
        if _is_worker(config):
            self.run_id = config.workerinput["conformance_run_id"]
        else:
            self.run_id = config.getoption("run_id") or storage.new_run_id()
            if not RUN_ID.match(self.run_id) or self.run_id == "latest":
                raise pytest.UsageError(f"--run-id {self.run_id!r}: use letters, digits and _.=+- only "
                                        "(it names one folder under the reports directory), and not 'latest'")
        self.run_dir = self.reports / self.run_id
        self.root = root
        self.entries: dict[str, dict[str, Any]] = {}
        self.started = time.time()
        self.case_items = 0
        self.cwd_before = set(os.listdir(os.getcwd()))
        self.expected: set[str] = set()  # case item node ids this run should report (controller)
        self.pages: set[str] = set()  # node ids whose item page a worker already wrote (controller)
        self.frameworks: dict[str, Any] | None = None  # run.api / run.build as a worker described them
        self.described = False  # (worker) this process has sent its description
        self.previous_sigterm: Any = None
        self.context: dict[str, Any] = {}  # (controller) {"context": --run-context's object}, or {}


def _versions() -> dict[str, str | None]:
    """Installed framework versions, read from package metadata (no framework import in the controller)."""
    from importlib import metadata

    from conformance import backends

    out: dict[str, str | None] = {}
    for name in backends.names():
        try:
            out[name] = metadata.version(backends.get(name).distribution())  # e.g. paddlepaddle
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _is_case_nodeid(nodeid: str) -> bool:
    return nodeid.split("::")[0].endswith((".yaml", ".yml"))


def _crashed_entry(nodeid: str, reason: str) -> dict[str, Any]:
    """An item whose result never arrived, described from its node id alone (`file::case[device-dtype]`)."""
    file, _, name = nodeid.partition("::")
    match = re.match(r"^(?P<case>.*?)\[(?P<device>[a-z]+)-(?P<dtype>float\d+)\]$", name)
    parts = match.groupdict() if match else {"case": name, "device": None, "dtype": None}
    return entry(nodeid=nodeid, file=file, **parts, observed="error", outcome="crashed", reason=reason)


def _describe_frameworks() -> dict[str, Any]:
    """run.api and run.build: each framework's optimizer signature and build (imports the frameworks).
    A failure is recorded, never allowed to stop summary.json from being written."""
    from conformance import backends

    try:
        return {"api": backends.api_descriptions(), "build": backends.build_infos()}
    except Exception as exc:  # noqa: BLE001 - the summary must still be written
        return {"api": {}, "build": {}, "api_note": f"not recorded: {type(exc).__name__}: {exc}"}


def _framework_descriptions(complete: bool, from_worker: dict[str, Any] | None) -> dict[str, Any]:
    """What a worker described (it has the frameworks imported already), else described here: a
    serial run has them imported too; an xdist controller would spend seconds importing them, which
    an interrupted run (the user wants it to stop) skips."""
    if from_worker is not None:
        return from_worker
    if not complete:
        return {"api": {}, "build": {}, "api_note": "not recorded: the run was interrupted"}
    return _describe_frameworks()


def _run_context(config: pytest.Config) -> dict[str, Any]:
    """{"context": the --run-context file's object}, or {} without the option."""
    path = config.getoption("run_context")
    if not path:
        return {}
    try:
        context = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"--run-context {path}: cannot read a JSON object there: {exc}") from None
    if not isinstance(context, dict):
        raise pytest.UsageError(f"--run-context {path}: holds {type(context).__name__}, not a JSON object")
    return {"context": context}


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class Controller:
    """The single writer: gathers every item's entry (from workers too) and writes the run's files."""

    def __init__(self, config: pytest.Config, state: RunState):
        self.config, self.state = config, state

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.state.expected.update(i.nodeid for i in session.items if _is_case_nodeid(i.nodeid))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """Under xdist the controller collects nothing itself: the workers' collections say what to expect."""
        self.state.expected.update(i for i in ids if _is_case_nodeid(i))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if PROPERTY in properties:
            self.state.entries[report.nodeid] = json.loads(properties[PROPERTY])
            if PAGE_PROPERTY in properties:
                self.state.pages.add(report.nodeid)
            if FRAMEWORKS_PROPERTY in properties and self.state.frameworks is None:
                self.state.frameworks = json.loads(properties[FRAMEWORKS_PROPERTY])
            return
        if report.failed and _is_case_nodeid(report.nodeid) and report.nodeid not in self.state.entries:
            # xdist reports a dead worker's item as a failure with no properties ("worker 'gw0' crashed")
            last = str(report.longrepr).strip().splitlines()[-1:] or ["no message"]
            self.state.entries[report.nodeid] = _crashed_entry(
                report.nodeid, f"the item's process died before it returned a result: {last[0]}")

    def _tidy_cwd(self) -> None:
        """Move framework compile artefacts that appeared in the working directory into the run's logs."""
        for name in ("rank_0", "kernel_meta"):
            if name not in self.state.cwd_before and os.path.exists(name):
                shutil.move(name, self.state.run_dir / "logs" / name)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Write the run's files before other plugins tear down (xdist's node teardown after an
        interrupt may raise, and must not cost the summary); every report has arrived by now."""
        state = self.state
        if not (state.case_items or state.entries or state.expected):
            return  # a harness-only test run: no conformance report
        # (under xdist the controller collects nothing: a run interrupted before any result came back
        # is still a conformance run if a worker reported case items in its collection)
        self._tidy_cwd()
        complete = exitstatus not in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        unfinished = sorted(state.expected - set(state.entries))
        if complete:  # every collected item ran; one with no result lost its process
            for nodeid in unfinished:
                state.entries[nodeid] = _crashed_entry(nodeid, "no result came back for this item "
                                                               "(its process died or never ran it)")
            unfinished = []
        run = {"id": state.run_id, "start": _iso(state.started), "end": _iso(time.time()),
               "argv": list(self.config.invocation_params.args), "complete": complete,
               "exitstatus": int(exitstatus), "unfinished": unfinished,
               **storage.environment(state.root, _versions()),
               **_framework_descriptions(complete, state.frameworks), **state.context}
        data = storage.summary(run, list(state.entries.values()))
        storage.write_json(state.run_dir / "summary.json", data)
        if not self.config.getoption("no_html"):
            from conformance.report.run_report import write_report

            write_report(state.run_dir, data, drawn=state.pages)
        note = "" if complete else " (interrupted: marked incomplete; reports/latest unchanged)"
        if complete and not storage.point_latest(state.reports, state.run_dir):
            note = f" ({state.reports / 'latest'} is not a link made by this suite; left as it is)"
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"conformance: {len(state.entries)} items -> {state.run_dir}{note}")
