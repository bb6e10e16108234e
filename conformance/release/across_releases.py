"""AdaMax behaviour across framework releases, built from stored runs (one per release, same machine).

Rows are the known differences: one per cause when the items carry a `cause` (the cause registry), else
one per case that diverged in at least one release. For each release a row says whether the difference is
present (some item of it diverged or went non-finite), absent (its items ran and conformed) or not
measured (none ran), its size (the largest torch~mindspore params and state difference over its items)
and its first divergent step. Beside them, per release: the optimizer constructors as introspected
(signature, defaults, docstring warnings that announce changes) and the frameworks' build commits.

Between each release and the next, the two runs are also compared item by item as `compare` does
(conformance/release/comparison.py): on one machine the suite is bitwise deterministic, so an item whose
figures moved at all, even within the noise rule, changed because of the release; that catches what the
rows cannot (a framework departing from its own formula, a conform case whose last bits moved, a new
constructor parameter). The axis is the framework whose version varies across the runs (torch, MindSpore,
or both), and names the page and each release.
Nothing here re-runs or recomputes a verdict: every figure is the run's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.cases import causes as registry
from conformance.release import baseline, comparison
from conformance.results import storage
from conformance.results.entry import RAN

DIVERGED = ("diverge", "nonfinite")


@dataclass
class ReleaseRun:
    """One release's stored run: its summary.json and where it lies."""

    run_dir: Path
    summary: dict[str, Any]

    @property
    def run(self) -> dict[str, Any]:
        return self.summary["run"]

    def label(self, axis: str = "mindspore") -> str:
        """The release's name, the framework that varies first."""
        torch, mindspore = f"torch {self.run.get('torch')}", f"MindSpore {self.run.get('mindspore')}"
        return f"{torch} / {mindspore}" if axis == "torch" else f"{mindspore} / {torch}"


def axis(runs: list[ReleaseRun]) -> str:
    """Which framework's release varies across the runs: "torch", "mindspore" or "both"."""
    varies = [name for name in ("torch", "mindspore") if len({r.run.get(name) for r in runs}) > 1]
    return varies[0] if len(varies) == 1 else "both" if varies else "mindspore"


def load_runs(run_dirs: list[Path]) -> list[ReleaseRun]:
    """Stored runs in the order given (oldest release first is the reader's order); a folder named twice
    (a run and a `latest` link to it) counts once."""
    out, seen = [], set()
    for run_dir in run_dirs:
        if run_dir.resolve() in seen:
            continue
        seen.add(run_dir.resolve())
        out.append(ReleaseRun(run_dir, storage.load_summary(run_dir)))
    return out


def causes_of(entry: dict[str, Any]) -> list[str]:
    """The cause ids of an item: attributed by computation where the run attributed it, else declared."""
    ids = (entry.get("attribution") or {}).get("causes") or entry.get("cause") or []
    return [ids] if isinstance(ids, str) else list(ids)


def group_key(entry: dict[str, Any], by_cause: bool) -> str:
    """A row: the item's causes (joined by '+'); a case without one (a conform case that diverged in some
    release) keeps its own row."""
    ids = causes_of(entry)
    if by_cause and ids:
        return "+".join(ids)
    return f"{entry.get('file')}::{entry.get('case')}"


def _size(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The largest params and state difference (abs, with its ULP) over the diverging items."""
    out: dict[str, Any] = {}
    for quantity in ("params", "state"):
        figures = [(e.get("max") or {}).get(quantity) for e in entries]
        figures = [f for f in figures if f]
        if figures:
            worst = max(figures, key=lambda f: (f["abs"] != f["abs"], f["abs"]))  # NaN counts as largest
            out[quantity] = {"abs": worst["abs"], "ulp": worst["ulp"]}
    return out or None


def cell(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One row's state in one release: present/absent/not measured, size, first divergent step."""
    ran = [e for e in entries if e.get("outcome") in RAN]
    diverged = [e for e in ran if e.get("observed") in DIVERGED]
    if not ran:
        return {"status": "not measured", "ran": 0, "diverged": 0, "size": None, "first_step": None}
    steps = [e["first_divergent_step"] for e in diverged if e.get("first_divergent_step") is not None]
    return {"status": "present" if diverged else "absent", "ran": len(ran), "diverged": len(diverged),
            "size": _size(diverged), "first_step": min(steps) if steps else None,
            "nonfinite": any(e.get("observed") == "nonfinite" for e in diverged)}


def _same(cells: list[dict[str, Any]]) -> bool:
    keys = ("status", "diverged", "size", "first_step")
    return all({k: c[k] for k in keys} == {k: cells[0][k] for k in keys} for c in cells)


def titles(key: str) -> str | None:
    """The registry titles of a row's causes ('+'-joined ids), or None for a case row or an unknown id."""
    try:
        known = registry.load()
    except registry.RegistryError:
        return None
    found = [known[i].title for i in key.split("+") if i in known]
    return "; ".join(found) if found and "::" not in key else None


def rows(runs: list[ReleaseRun]) -> tuple[list[dict[str, Any]], bool]:
    """(rows, grouped by cause?) over every group that diverged in at least one release."""
    by_cause = any(causes_of(e) for r in runs for e in r.summary["items"])
    groups: dict[str, list[list[dict[str, Any]]]] = {}
    described: dict[str, dict[str, Any]] = {}
    for index, run in enumerate(runs):
        for entry in run.summary["items"]:
            key = group_key(entry, by_cause)
            groups.setdefault(key, [[] for _ in runs])[index].append(entry)
            described.setdefault(key, entry)
    out = []
    for key, per_release in sorted(groups.items()):
        cells = [cell(entries) for entries in per_release]
        if not any(c["status"] == "present" for c in cells):
            continue
        first = described[key]
        out.append({"key": key, "title": titles(key) if by_cause else None, "case": first.get("case"),
                    "file": first.get("file"),
                    "reason": first.get("reason") if first.get("expect") in DIVERGED else None,
                    "cells": cells, "same": _same(cells)})
    return out, by_cause


def signature(api: dict[str, Any]) -> str:
    params = ", ".join(f"{name}={p['default']}" if p.get("default") is not None else name
                       for name, p in (api.get("params") or {}).items())
    return f"{api.get('class')}(params, {params})"


def release_facts(run: ReleaseRun, varies: str) -> dict[str, Any]:
    """A release's column header: versions, build commits, constructors, counts."""
    build = run.run.get("build") or {}
    apis = run.run.get("api") or {}
    return {"label": run.label(varies), "mindspore": run.run.get("mindspore"), "torch": run.run.get("torch"),
            "run_id": run.run.get("id"), "run_dir": str(run.run_dir), "start": run.run.get("start"),
            "platform": run.run.get("platform"), "counts": run.run.get("counts") or {},
            "commits": {name: info.get("commit") or info.get("git_version") for name, info in sorted(build.items())},
            "apis": {name: {"class": api.get("class"), "signature": signature(api),
                            "notices": api.get("notices") or []} for name, api in sorted(apis.items())}}


def step(before: ReleaseRun, after: ReleaseRun, varies: str) -> dict[str, Any]:
    """One release against the next, item by item and API by API, as `compare` sees them."""
    result = comparison.compare(baseline.from_summary(before.summary), baseline.from_summary(after.summary))
    entries = {e["nodeid"]: e for run in (before, after) for e in run.summary["items"]}
    moved = []
    for c in result.items:
        if c.kind != "unchanged" or c.how == "within the noise rule":
            ids = causes_of(entries.get(c.nodeid, {}))  # the item's causes (of its first pair), with their titles
            moved.append({"label": c.label, "nodeid": c.nodeid, "details": c.details,
                          "causes": f"{', '.join(ids)}: {titles('+'.join(ids))}" if ids else ""})
    return {"from": before.label(varies), "to": after.label(varies), "counts": result.label_counts(),
            "changed": sum(c.kind != "unchanged" for c in result.items),
            "how": result.unchanged_counts(), "changes": moved, "api": result.api, "notices": result.notices,
            "environment": result.environment.material}


def history(runs: list[ReleaseRun]) -> dict[str, Any]:
    """Everything the history page shows, from stored runs alone."""
    if not runs:
        raise ValueError("no runs: pass one stored run per release")
    table, by_cause = rows(runs)
    varies = axis(runs)
    return {"axis": varies, "releases": [release_facts(r, varies) for r in runs], "rows": table,
            "by_cause": by_cause, "changed_rows": [r["key"] for r in table if not r["same"]],
            "steps": [step(a, b, varies) for a, b in zip(runs, runs[1:])]}
