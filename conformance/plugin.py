"""pytest plugin: YAML cases become test items; the controller alone writes the run's summary.

Collection: every `*.yaml` under a `cases/` folder. Each (case, device, dtype) is one item, id
`cases/<file>.yaml::<case id>[<device>-<dtype>]`; a broken case is one error item that says why.
Results: each item sends its summary entry through `user_properties` (pytest-xdist carries them to the
controller); the controller writes reports/<run-id>/summary.json and the HTML report at the end, so a
serial run and `-n 2` produce the same files. Workers only write their own items' JSONL files.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from . import loader, results
from .case import ApiCase, Item, ProbeCase
from .causes import REGISTRY_NAME
from .errors import CaseError

PROPERTY = "conformance"
PAGE_PROPERTY = "conformance-page"  # set by a worker that already wrote the item's HTML page
FRAMEWORKS_PROPERTY = "conformance-frameworks"  # run.api and run.build, sent once by each worker
_STATE = pytest.StashKey["RunState"]()
log = logging.getLogger("conformance")
# A run id names a folder directly under --reports-dir: no separators, no dot-dot, not `latest`.
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


class CaseFailure(Exception):
    """Raised by an item whose verdict is not its expectation; carries the case-language message."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "optimizer conformance suite")
    group.addoption("--reports-dir", default="reports", help="where run folders go (default: reports/)")
    group.addoption("--run-id", default=None, help="name of this run's folder (default: time + random)")
    group.addoption("--no-html", action="store_true", help="write summary.json but no HTML report")
    group.addoption("--run-context", default=None, metavar="FILE",
                    help="a JSON object stored as run.context in summary.json: where and why this run was made "
                         "(tools/gpu-run records the machine and what it cannot measure there)")


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
            self.run_id = config.getoption("run_id") or results.new_run_id()
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


def _quiet_frameworks(run_dir: Path, name: str) -> None:
    """Framework log noise goes to the run's log folder, never to the user's terminal or cwd."""
    logs = run_dir / "logs"
    os.environ.setdefault("GLOG_v", "2")  # warnings and up are recorded in the run's logs/ ...
    os.environ.setdefault("GLOG_logtostderr", "0")
    os.environ.setdefault("GLOG_stderrthreshold", "4")  # ... and only CRITICAL reaches the terminal
    os.environ.setdefault("GLOG_log_dir", str(logs))
    os.environ.setdefault("MS_OM_PATH", str(logs))
    logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(logs / f"{name}.log", encoding="utf-8", delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for old in list(log.handlers):  # one run, one log file (pytester runs several sessions in a process)
        log.removeHandler(old)
        old.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _pin_worker(config: pytest.Config) -> set[int] | None:
    """xdist worker i of n keeps to its own share of the CPUs, cpus[i::n]; the CPUs it got, or None.

    Why: MindSpore's CPU kernels hand part of each launch to a pool thread and spin with sched_yield
    until it is done. With two workers on two cores that hand-off waits for the other worker's time
    slice (0.4 to 2.5 million involuntary context switches per worker per suite run; six small items took
    9.3-10.6 s next to a busy core, 7.9-8.2 s pinned to one core, 7.7 s on an idle machine). Pinned, the
    pool thread shares its worker's core and the two workers stop preempting each other. Results do not
    change (same kernels, one runtime thread). Not done when there are more workers than CPUs, or with
    CONFORMANCE_PIN_WORKERS=0."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if os.environ.get("CONFORMANCE_PIN_WORKERS", "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if count < 2 or count > len(cpus):
        return None
    index = int(str(config.workerinput.get("workerid", "gw0")).removeprefix("gw") or 0)
    mine = set(cpus[index % count::count])
    os.sched_setaffinity(0, mine)  # this thread; threads the frameworks start later inherit it
    return mine


def _claim_run_dir(run_dir: Path) -> None:
    """Create this run's folder, failing if it exists: two runs never share (or overwrite) a folder,
    and nothing planted there beforehand (a symlink, old files) is written through."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise pytest.UsageError(f"{run_dir} already exists: another run used this --run-id; "
                                "choose a new one (or leave --run-id out for a fresh one)") from None


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C does: pytest finishes the session, the
    summary is written with complete=false and reports/latest keeps pointing at the last full run."""
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")


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
    for mark, text in (("cpu", "runs on the CPU"), ("gpu", "runs on a GPU"), ("float16", "half precision"),
                       ("float32", "single precision"), ("float64", "double precision"),
                       ("conform", "case expects agreement"), ("diverge", "case expects a divergence"),
                       ("error", "case expects a framework to raise"),
                       ("nonfinite", "case expects one side to turn NaN/Inf")):
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


class WorkerExit:
    """An xdist worker ends without interpreter teardown where a framework's is slow (MindSpore's: seconds
    per process, and the controller waits for every worker's exit; see backends.exit_now). Nothing is
    lost: the worker has sent its results ("workerfinished" goes out in sessionfinish, before
    unconfigure), every other plugin's unconfigure ran before this one (trylast), our files are closed."""

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from . import backends

        backends.exit_now(0)


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
        from .interface import run_probe
        return run_probe(spec)
    if isinstance(spec.case, ApiCase):
        from .interface import run_api_check
        return run_api_check(spec)
    from .runner import run_item
    return run_item(spec, steps_dir)


def _write_page(state: "RunState", payload: str) -> bool:
    """Under xdist each worker draws its own items' pages as they finish (plots are most of a report's
    cost, and so they run in parallel with other items); from the entry as the controller will read it,
    so the page is the one the controller would draw. False (the controller draws it) if that fails."""
    from .report import write_item_page

    try:
        write_item_page(state.run_dir, state.run_id, json.loads(payload))
    except Exception:  # the report is the controller's job too: it retries, and fails loudly there
        log.warning("item page left to the controller", exc_info=True)
        return False
    return True


class CaseItem(pytest.Item):
    def __init__(self, *, spec: Item, **kwargs: Any):
        super().__init__(**kwargs)
        self.spec = spec
        for mark in (spec.device, spec.dtype, spec.case.expect):
            self.add_marker(mark)

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

    def runtest(self) -> None:
        entry = {"nodeid": self.nodeid, "case": self.error.case_id, "file": self.error.file,
                 "line": self.error.line, "device": None, "dtype": None, "expect": None,
                 "observed": "error", "outcome": "error", "reason": str(self.error),
                 "error": self.error.as_dict(), "steps": 0, "first_divergent_step": None,
                 "final": None, "max": None, "pairs": {}}
        self.user_properties.append((PROPERTY, json.dumps(entry)))
        raise CaseFailure(str(self.error))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, (self.error.line or 1) - 1, f"case file error: {self.error.case_id or self.path.name}"


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


def _cost(item: pytest.Item) -> int:
    """A rough cost of running an item (steps x (parameters + per-step overhead)); 0 for others."""
    if not isinstance(item, CaseItem) or not hasattr(item.spec.case, "steps"):
        return 0
    return item.spec.case.steps * (loader.param_count(item.spec.case.model) + 2000)


class LongestFirst:
    """Runs after deselection (-k, -m): longest items first, stable otherwise, so `-n 2` does not end
    waiting on one long item handed out last. Order changes no result: summary.json is sorted by id."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list) -> None:
        items.sort(key=lambda item: -_cost(item))


def _versions() -> dict[str, str | None]:
    """Installed framework versions, read from package metadata (no framework import in the controller)."""
    from importlib import metadata

    from . import backends

    out: dict[str, str | None] = {}
    for name in backends.names():
        try:
            out[name] = metadata.version(name)
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
    return {"nodeid": nodeid, "file": file, **parts, "expect": None, "observed": "error", "outcome": "crashed",
            "reason": reason, "steps": 0, "first_divergent_step": None, "final": None, "max": None, "pairs": {}}


def _describe_frameworks() -> dict[str, Any]:
    """run.api and run.build: each framework's optimizer signature and build (imports the frameworks).
    A failure is recorded, never allowed to stop summary.json from being written."""
    from . import backends

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
               **results.environment(state.root, _versions()),
               **_framework_descriptions(complete, state.frameworks), **state.context}
        data = results.summary(run, list(state.entries.values()))
        results.write_json(state.run_dir / "summary.json", data)
        if not self.config.getoption("no_html"):
            from .report import write_report

            write_report(state.run_dir, data, drawn=state.pages)
        note = "" if complete else " (interrupted: marked incomplete; reports/latest unchanged)"
        if complete and not results.point_latest(state.reports, state.run_dir):
            note = f" ({state.reports / 'latest'} is not a link made by this suite; left as it is)"
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"conformance: {len(state.entries)} items -> {state.run_dir}{note}")
