"""The pytest run's processes: worker CPU pinning, framework logs into the run folder, SIGTERM as an
interrupt, the run folder claimed once, and slow framework teardown skipped."""
from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

log = logging.getLogger("conformance")



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


class WorkerExit:
    """An xdist worker ends without interpreter teardown where a framework's is slow (MindSpore's: seconds
    per process, and the controller waits for every worker's exit; see backends.exit_now). Nothing is
    lost: the worker has sent its results ("workerfinished" goes out in sessionfinish, before
    unconfigure), every other plugin's unconfigure ran before this one (trylast), our files are closed."""

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from conformance import backends

        backends.exit_now(0)
