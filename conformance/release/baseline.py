"""Release validation: a reviewed baseline of the pinned versions' results, and what a new run changed.

A baseline (cases/baseline.json) keeps, per item, the verdict and key figures of one run of the pinned
framework versions plus that run's environment fingerprint and optimizer APIs. `compare` sets a new
run (or another baseline) against it and sorts every item into one kind of change:

  unchanged           same verdict, figures within the noise rule (or bitwise identical)
  moved               same verdict, a figure moved beyond the noise rule, or the first divergent step moved
  new divergence      baseline conformed, run diverges: a regression if the case expects conform,
                      an intended change if the case file already says diverge
  vanished divergence baseline diverged, run conforms: a stale expectation if the case says diverge
                      (the case file must be updated), a fix if the case says conform
  pair changed        same first-pair verdict, but the item's outcome changed (a new failure, or a
                      failure gone) or another pair's observation did: an N-way item's other
                      frameworks, a framework against its own oracle
  error / skip        the item newly errors or is skipped (or stopped erroring / being skipped)
  new / removed       the item exists on one side only (the case library changed)

Noise rule: on one machine with the same versions the suite is bitwise deterministic (fixed seeds,
neutral float64 data, serial or parallel runs give identical figures), so every change there is real.
Across machines, last-bit differences (ISA-specific kernels, thread count, reduction order) enter the
trajectories and can grow over many steps, so a figure counts as moved only when it changed by more
than `factor` (either direction) and its quantity is not within `min_ulp` ULP on both sides.

Environment rule: what differs between the two sides' machines is sorted by whether it can change bits.
A kernel build string or a host name cannot (ignored, and said so); the CPU ISA level, the CPU model,
thread counts, the C library, numpy or Python can (named, and the comparison goes on under the noise
rule). A comparison is refused only where it would mislead: an interrupted run (its missing items would
read as removed), or no device/dtype that ran on both sides (every item would read as changed).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.results.entry import RAN

FORMAT = "conformance-baseline/1"
FIGURES = ("final", "max")
ITEM_KEYS = ("case", "file", "device", "dtype", "expect", "observed", "outcome", "steps", "first_divergent_step")


class BaselineError(Exception):
    """A baseline or run cannot be read or compared; the message says what to pass instead."""


def machine(run: dict[str, Any]) -> dict[str, Any]:
    """The machine a run used: what makes last-bit results differ though the versions are the same."""
    build = run.get("build") or {}
    torch, ms = build.get("torch") or {}, build.get("mindspore") or {}
    return {"cpu": run.get("cpu"), "cpu_isa": run.get("cpu_isa"), "cpu_count": run.get("cpu_count"),
            "os": run.get("platform"),
            "cpu_capability": torch.get("cpu_capability"), "torch_threads": torch.get("threads"),
            "mindspore_threads": ms.get("threads"), "gpus": torch.get("gpus"),
            "thread_env": run.get("thread_env")}


def versions(run: dict[str, Any]) -> dict[str, Any]:
    return {name: run.get(name) for name in ("torch", "mindspore", "numpy", "python")}


def _item(entry: dict[str, Any]) -> dict[str, Any]:
    out = {key: entry.get(key) for key in ITEM_KEYS}
    if entry.get("outcome") not in RAN:
        out["reason"] = entry.get("reason")
    out["final"] = entry.get("final")
    out["max"] = entry.get("max")
    # every pair's verdict (other frameworks, oracles, devices): a release can change one of them alone
    out["pairs"] = {label: {"observed": pair.get("observed"), "first_divergent_step": pair.get("first_divergent_step")}
                    for label, pair in sorted((entry.get("pairs") or {}).items())}
    return out


def from_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The baseline form of a run: fingerprint, APIs, and one entry per item keyed by node id."""
    run = summary["run"]
    return {"format": FORMAT,
            "note": "Reviewed results of the pinned framework versions. Refresh on purpose only: "
                    "python -m conformance baseline reports/<run-id> --write cases/baseline.json",
            "source": {"run_id": run.get("id"), "start": run.get("start"), "git_commit": run.get("git_commit"),
                       "complete": run.get("complete"), "versions": versions(run), "machine": machine(run),
                       "build": run.get("build")},
            "api": run.get("api") or {},
            "items": {entry["nodeid"]: _item(entry) for entry in sorted(summary["items"], key=lambda e: e["nodeid"])}}


def load(path: str | Path) -> dict[str, Any]:
    """A baseline file, a run folder or a summary.json, always returned in baseline form."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.exists():
        raise BaselineError(f"{path}: not found; pass a baseline file (cases/baseline.json) or a run folder "
                            "such as reports/latest")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return data
    if isinstance(data, dict) and isinstance(data.get("run"), dict) and isinstance(data.get("items"), list):
        return from_summary(data)
    raise BaselineError(f"{path}: neither a baseline ({FORMAT}) nor a run's summary.json")


