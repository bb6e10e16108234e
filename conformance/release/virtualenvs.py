"""Framework releases in virtualenvs of their own, and suite runs in them reused while nothing changed.

Release validation (`python -m conformance validate`) and the history across releases
(`python -m conformance history`) run the same suite under
several (torch, MindSpore) pairs on this machine. Two MindSpore releases cannot share one environment,
so each pair gets a virtualenv, `<envs-dir>/torch<T>-mindspore<M>/` (default `.tox/releases/`, removed
with the rest of `.tox/`), holding those two releases and the harness (pyproject.toml's `harness` extra).
A stamp file in
the virtualenv records what was installed; it is rebuilt only when that changes.

pip installs into it with its configured indexes and wheel folders but without its configured constraints
(`PIP_CONSTRAINT` set to an empty file for that call only): an environment holds exactly the releases asked
for, and a site-wide cap (a machine whose pip configuration caps torch at 2.14.1) would otherwise make
a newer release impossible to install. The stamp and the run's `pip freeze` record what was installed.

A run made in such an environment is kept under `<reports>/<pair>/<run-id>/` with the fingerprint of what
decides its figures: the exact packages installed (pip freeze), the suite's own files (cases and harness
code, hashed), this machine (platform, CPU model and flags, CPU count) and the settings that change
threads or dispatch. A later request for the same pair reuses the newest complete run whose fingerprint
is equal, and runs the suite again otherwise: the reused run is what a fresh run would give, because
on one machine with the same binaries and inputs the suite is bitwise deterministic.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.results import storage

ENVS_DIR = Path(".tox") / "releases"
STAMP = "conformance-env.json"
FINGERPRINT = "fingerprint.json"
# Settings a run reads from the environment that can change its figures or its threads.
SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MS_DEV_HOST_BLOCKING_RUN", "GLOG_v")
SUITE_FILES = (("cases", "*.yaml"), ("conformance", "*.py"), (".", "conftest.py"))
# Presentation, and tools that read runs without making them: editing them changes no figure, so stored
# runs stay reusable.
PRESENTATION = ("commands", "report", "release", "bench")
VERSION = re.compile(r"^[0-9][0-9A-Za-z.+-]*$")


def progress(line: str) -> None:
    """Progress on stdout, flushed: it comes before the output of the suite run that follows it."""
    print(line, flush=True)


class ReleaseEnvError(Exception):
    """A release environment or its run could not be made; the message says what failed and what to do."""


@dataclass(frozen=True)
class Release:
    """One (torch, MindSpore) pair, installed from PyPI (or pip's configured local wheels)."""

    torch: str
    mindspore: str

    def __post_init__(self) -> None:
        for name in ("torch", "mindspore"):
            if not VERSION.match(getattr(self, name)):
                raise ReleaseEnvError(f"{name} version {getattr(self, name)!r}: give a release number such as 2.9.0")

    @property
    def name(self) -> str:
        return f"torch{self.torch}-mindspore{self.mindspore}"

    def requirements(self) -> list[str]:
        return [f"torch=={self.torch}", f"mindspore=={self.mindspore}"]


def _digest(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _presentation(relative: Path) -> bool:
    return relative.parts[0] == "conformance" and relative.parts[1] in PRESENTATION


def suite_digest(root: Path) -> str:
    """Hash of the files that decide what the suite runs and its results (cases and harness code, not
    the report or the command line)."""
    if missing := [f for f, _ in SUITE_FILES if not (root / f).exists()]:
        raise ReleaseEnvError(f"{root}: not the suite's folder (missing {', '.join(missing)})")
    found = [(root / folder).glob(pattern) if folder == "." else (root / folder).rglob(pattern)
             for folder, pattern in SUITE_FILES]  # "." is the root alone: never .tox/ or reports/
    paths = [p for group in found for p in group
             if p.is_file() and "__pycache__" not in p.parts and not _presentation(p.relative_to(root))]
    return _digest(paths, root)


def _cpu_flags() -> str | None:
    """Hash of the CPU's feature flags (its ISA extensions), which decide the kernels libraries pick."""
    flags = storage.cpu_flags()
    return hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16] if flags else None


def machine() -> dict[str, Any]:
    """This machine and the settings that change threads or dispatch, as a run's fingerprint sees them."""
    return {"platform": platform.platform(), "cpu": storage._cpu_model(), "cpu_flags": _cpu_flags(),
            "cpu_count": os.cpu_count(),
            "settings": {k: v for k, v in sorted(os.environ.items())
                         if k in SETTINGS or k.startswith("CONFORMANCE_")}}


# ---------------------------------------------------------------- virtualenvs

def _python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pip_environment() -> dict[str, str]:
    """The environment pip installs a release with: this one, minus configured constraints (an empty
    constraints file overrides pip's configuration files; an empty value would be ignored by pip)."""
    return {**os.environ, "PIP_CONSTRAINT": os.devnull}


def _call(command: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess:
    done = subprocess.run(command, text=True, **kwargs)
    if done.returncode != 0:
        tail = ((done.stdout or "") + (done.stderr or ""))[-2000:] if kwargs.get("capture_output") else ""
        raise ReleaseEnvError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}".rstrip())
    return done


def harness_requirements(root: Path) -> list[str]:
    """The harness extra of the suite's pyproject.toml: what a release's virtualenv holds besides the two
    releases (numpy below 2 as well: every release pair holds a MindSpore)."""
    import tomllib

    extras = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    return [*extras["harness"], "numpy<2"]


def stamp(release: Release, root: Path) -> dict[str, Any]:
    """What a release's virtualenv should hold: its two releases, the harness requirements, the Python."""
    return {"requirements": release.requirements(), "harness": harness_requirements(root),
            "base_python": platform.python_version()}


def ensure_env(release: Release, root: Path, envs_dir: Path, say: Callable[[str], None] = progress) -> Path:
    """The python of `release`'s virtualenv, built (or rebuilt) when what it should hold changed."""
    env = envs_dir / release.name
    wanted = stamp(release, root)
    stamp_file = env / STAMP
    if stamp_file.exists() and _python(env).exists():
        try:
            if json.loads(stamp_file.read_text(encoding="utf-8")) == wanted:
                return _python(env)
        except json.JSONDecodeError:
            pass
    if env.exists():
        say(f"rebuilding {env}: it holds something other than {' '.join(release.requirements())}")
        shutil.rmtree(env)
    say(f"creating {env} with {' '.join(release.requirements())} and the harness (once; 4-9 GB, docs/releases.md)")
    _call([sys.executable, "-m", "venv", str(env)], f"creating the virtualenv {env}")
    _call([str(_python(env)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           *wanted["harness"], *release.requirements()],
          f"installing {' '.join(release.requirements())} into {env} (is the release on PyPI for this Python?)",
          capture_output=True, env=pip_environment())
    storage.atomic_write_text(stamp_file, json.dumps(wanted, indent=1) + "\n")
    return _python(env)


def installed(python: Path) -> list[str]:
    """`pip freeze` of an environment: the exact builds a run there uses."""
    done = _call([str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                 f"listing the packages of {python}", capture_output=True)
    return sorted(line for line in done.stdout.splitlines() if line.strip())


# ---------------------------------------------------------------- runs, reused by fingerprint

def fingerprint(python: Path, root: Path, run_args: list[str]) -> dict[str, Any]:
    return {"packages": installed(python), "suite": suite_digest(root), "machine": machine(),
            "run_args": list(run_args)}


def reusable_run(folder: Path, wanted: dict[str, Any]) -> Path | None:
    """The newest complete run under `folder` whose fingerprint equals `wanted`, or None."""
    candidates = []
    for run_dir in folder.glob("*/"):
        stored, summary = run_dir / FINGERPRINT, run_dir / "summary.json"
        if run_dir.is_symlink() or not (stored.exists() and summary.exists()):
            continue
        try:
            if json.loads(stored.read_text(encoding="utf-8")) != wanted:
                continue
            run = storage.load_summary(summary)["run"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        if run.get("complete"):
            candidates.append((str(run.get("start")), run_dir))
    return max(candidates)[1] if candidates else None


def run_suite(python: Path, release: Release, root: Path, reports: Path, run_args: list[str], reuse: bool = True,
              say: Callable[[str], None] = progress) -> Path:
    """A complete run of the suite in `python`'s environment: reused when its fingerprint matches, else made."""
    folder = reports / release.name
    wanted = fingerprint(python, root, run_args)
    if reuse and (found := reusable_run(folder, wanted)) is not None:
        say(f"{release.name}: reusing run {found} (same packages, suite files, machine and settings)")
        return found
    run_id = f"{release.name}-{storage.new_run_id()}"
    say(f"{release.name}: running the suite into {folder / run_id}")
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(python), "-m", "conformance", "run", f"--reports-dir={folder}",
                           f"--run-id={run_id}", *run_args], cwd=root, env=env)
    run_dir = folder / run_id
    summary = run_dir / "summary.json"
    if done.returncode not in (0, 1) or not summary.exists():
        raise ReleaseEnvError(f"the suite run in {python} ended with exit {done.returncode} "
                                f"{'and no' if not summary.exists() else 'with a'} summary in {run_dir}; "
                                "its output above says why")
    if not storage.load_summary(summary)["run"].get("complete"):
        raise ReleaseEnvError(f"{run_dir}: the run was interrupted; run the command again")
    storage.write_json(run_dir / FINGERPRINT, wanted)
    return run_dir
