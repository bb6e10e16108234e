"""Run folders, streamed JSONL, summary.json: how a run is stored and read back.

Layout: reports/<run-id>/{summary.json, steps/<item>.jsonl, index.html, items/<item>.html, logs/} and
reports/latest, a symlink replaced atomically once a run has finished, so it always points at a complete
run. logs/ (made by the plugin) holds each process's own log, controller.log and gw<N>.log, created
only when something is logged (framework warnings, worker CPU pins), MindSpore's glog files, and the
compile artefacts (rank_0/, kernel_meta/) a run left in the working directory.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any


def new_run_id() -> str:
    """Sortable and collision-free across concurrent runs (time + random suffix)."""
    now = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{secrets.token_hex(3)}"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class RunDirError(Exception):
    """A folder is not a run folder (or its summary.json is unreadable); the message says what to pass."""


def load_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json, from its folder (or the file itself): the one reader of stored runs."""
    run_dir = Path(run_dir)
    path = run_dir if run_dir.name == "summary.json" else run_dir / "summary.json"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no summary.json here; pass a run folder such as reports/latest "
                          "or reports/<run-id>")
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path}: not a readable summary.json ({exc})") from exc
    if not (isinstance(data, dict) and isinstance(data.get("run"), dict) and isinstance(data.get("items"), list)):
        raise RunDirError(f"{path}: not a run's summary.json (no run and items)")
    return data


def point_latest(reports: Path, run_dir: Path) -> bool:
    """Replace reports/latest by a link to run_dir in one rename (never a half-updated link).

    False, touching nothing, when `latest` exists and is not a symlink (a user's own folder or file).
    """
    latest = reports / "latest"
    if latest.exists() and not latest.is_symlink():
        return False
    tmp = reports / f".latest.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, latest)
    return True


class StepWriter:
    """Appends one JSON line per step and flushes, so a crash keeps every finished step on disk."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> StepWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.path.open("w", encoding="utf-8")
        return self

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.handle.flush()

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def read_steps(path: Path):
    """Yield the records of a JSONL file one at a time (flat memory for long runs)."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# CPU feature flags that decide which vector kernels MKL, oneDNN and MindSpore's CPU ops run: machines
# sold under one model string ("Intel(R) Xeon(R) Processor") and one torch capability (AVX512) differ here.
VECTOR_FLAGS = ("sse", "ssse3", "avx", "amx", "fma", "f16c", "asimd", "sve", "neon")


def cpu_flags() -> list[str]:
    """The CPU's feature flags (/proc/cpuinfo `flags`, or `Features` on ARM), sorted; empty if unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted(set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def cpu_isa() -> list[str]:
    """The vector extensions among the CPU's flags (AVX-512 subsets, AMX, VNNI, FMA...)."""
    return [flag for flag in cpu_flags() if flag.startswith(VECTOR_FLAGS)]


def environment(root: Path, versions: dict[str, str | None]) -> dict[str, Any]:
    """Fingerprint of where a run happened: versions, platform, CPU and its vector extensions, thread
    count, git commit."""
    import numpy

    return {"python": platform.python_version(), "numpy": numpy.__version__, **versions,
            "platform": platform.platform(), "cpu": _cpu_model(), "cpu_isa": cpu_isa(), "cpu_count": os.cpu_count(),
            "git_commit": _git_commit(root), "executable": sys.executable,
            "thread_env": {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}


def summary(run: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["outcome"]] = counts.get(item["outcome"], 0) + 1
    items = sorted(items, key=lambda i: i["nodeid"])
    return {"run": {**run, "counts": counts}, "items": items}
