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
  error / skip        the item newly errors or is skipped (or stopped erroring / being skipped)
  new / removed       the item exists on one side only (the case library changed)

Noise rule: on one machine with the same versions the suite is bitwise deterministic (fixed seeds,
neutral float64 data, serial or parallel runs give identical figures), so every change there is real.
Across machines, last-bit differences (ISA-specific kernels, thread count, reduction order) enter the
trajectories and can grow over many steps, so a figure counts as moved only when it changed by more
than `factor` (either direction) and is not within `min_ulp` ULP on both sides. Comparing runs from
different machines, or with different device/dtype coverage, is refused unless the caller accepts it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .case import QUANTITIES
from .compare import fmt

FORMAT = "conformance-baseline/1"
METRICS = ("abs", "rel", "ulp")
FIGURES = ("final", "max")
ITEM_KEYS = ("case", "file", "device", "dtype", "expect", "observed", "outcome", "steps", "first_divergent_step")
RAN = ("passed", "failed")  # outcomes of items that produced figures


class BaselineError(Exception):
    """A baseline or run cannot be read or compared; the message says what to pass instead."""


# ---------------------------------------------------------------- baseline from a run's summary.json

def machine(run: dict[str, Any]) -> dict[str, Any]:
    """The machine a run used: what makes last-bit results differ though the versions are the same."""
    build = run.get("build") or {}
    torch, ms = build.get("torch") or {}, build.get("mindspore") or {}
    return {"cpu": run.get("cpu"), "cpu_count": run.get("cpu_count"), "os": run.get("platform"),
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


# ---------------------------------------------------------------- the noise rule

@dataclass(frozen=True)
class NoiseRule:
    """When a figure counts as moved: changed by more than `factor`, and not within `min_ulp` on both sides."""

    factor: float = 2.0
    min_ulp: float = 4.0

    def describe(self) -> str:
        return (f"a figure moved if it changed by more than x{self.factor:g} (either direction) and the "
                f"quantity is not within {self.min_ulp:g} ULP on both sides; any change of the first "
                "divergent step counts")

    def moved(self, old: float, new: float) -> bool:
        if old == new:
            return False
        if not (math.isfinite(old) and math.isfinite(new)):
            return True
        low, high = sorted((abs(old), abs(new)))
        return high > self.factor * low


def _ratio(old: float, new: float) -> str:
    if old == 0 or not (math.isfinite(old) and math.isfinite(new)):
        return "new" if old == 0 else "non-finite"
    return f"x{new / old:.3g}"


def figure_moves(old: dict[str, Any], new: dict[str, Any], rule: NoiseRule) -> tuple[list[str], list[str]]:
    """(figures that moved beyond the rule, figures that changed within it); both empty: bitwise identical."""
    moved: list[str] = []
    within: list[str] = []
    if old.get("first_divergent_step") != new.get("first_divergent_step"):
        moved.append(f"first divergent step {old.get('first_divergent_step')} -> {new.get('first_divergent_step')}")
    for kind in FIGURES:
        for quantity in QUANTITIES:
            before = (old.get(kind) or {}).get(quantity)
            after = (new.get(kind) or {}).get(quantity)
            if before is None or after is None:
                if (before is None) != (after is None):
                    moved.append(f"{kind} {quantity}: {'recorded' if after else 'no longer recorded'}")
                continue
            noise = max(before["ulp"], after["ulp"]) <= rule.min_ulp
            for metric in METRICS:
                if before[metric] == after[metric]:
                    continue
                line = (f"{kind} {quantity} {metric}: {fmt(before[metric])} -> {fmt(after[metric])} "
                        f"({_ratio(before[metric], after[metric])})")
                (moved if not noise and rule.moved(before[metric], after[metric]) else within).append(line)
    return moved, within


# ---------------------------------------------------------------- item and API comparison

KINDS = ("new divergence", "vanished divergence", "error/skip", "moved", "new item", "removed item", "unchanged")


@dataclass
class ItemChange:
    nodeid: str
    kind: str  # one of KINDS
    label: str  # the verdict in words, e.g. "REGRESSION", "STALE EXPECTATION"
    details: list[str] = field(default_factory=list)


def _did_not_run(item: dict[str, Any]) -> bool:
    return item.get("outcome") not in RAN


def _state(item: dict[str, Any]) -> str:
    if item.get("outcome") in RAN:
        step = item.get("first_divergent_step")
        return f"{item.get('observed')}" + (f" from step {step}" if step else "")
    return f"{item.get('outcome')}: {item.get('reason') or 'no reason recorded'}"


def _max_line(item: dict[str, Any]) -> str:
    parts = [f"{q} abs={fmt(v['abs'])} ulp={fmt(v['ulp'])}" for q, v in (item.get("max") or {}).items() if v]
    return "max " + "; ".join(parts) if parts else "no figures"


def compare_item(nodeid: str, old: dict[str, Any], new: dict[str, Any], rule: NoiseRule) -> ItemChange:
    """Sort one item present on both sides into exactly one kind of change."""
    expect = new.get("expect")
    notes = [f"case expectation changed: {old.get('expect')} -> {expect}"] if old.get("expect") != expect else []
    if _did_not_run(old) or _did_not_run(new):
        if old.get("outcome") == new.get("outcome") and old.get("reason") == new.get("reason"):
            return ItemChange(nodeid, "unchanged", "UNCHANGED", [_state(new), *notes])
        if _did_not_run(new):
            label = "NEW ERROR" if new.get("outcome") in ("error", "crashed") else "NEW SKIP"
        else:
            label = "RUNS AGAIN"
        return ItemChange(nodeid, "error/skip", label, [f"baseline: {_state(old)}", f"now: {_state(new)}", *notes])
    was, now = old.get("observed"), new.get("observed")
    if was == "conform" and now == "diverge":
        label = "REGRESSION" if expect == "conform" else "INTENDED CHANGE (case expects diverge)"
        return ItemChange(nodeid, "new divergence", label, [f"now: {_state(new)}; {_max_line(new)}", *notes])
    if was == "diverge" and now == "conform":
        if expect == "diverge":
            return ItemChange(nodeid, "vanished divergence", "STALE EXPECTATION", [
                f"baseline: {_state(old)}; now conforms: {_max_line(new)}",
                f"update {new.get('file')}: case '{new.get('case')}' says expect: diverge; set expect: conform "
                "(or tighten its tolerance if the difference is real but now smaller)", *notes])
        return ItemChange(nodeid, "vanished divergence", "FIXED (case expects conform)",
                          [f"baseline: {_state(old)}; now conforms: {_max_line(new)}", *notes])
    moved, within = figure_moves(old, new, rule)
    if moved:
        return ItemChange(nodeid, "moved", "MOVED", [f"still {_state(new)}", *moved,
                                                     *(f"{line}, within the rule" for line in within), *notes])
    if within:
        return ItemChange(nodeid, "unchanged", "UNCHANGED", [f"{_state(new)}, figures within the noise rule:",
                                                             *(f"  {line}" for line in within), *notes])
    return ItemChange(nodeid, "unchanged", "UNCHANGED", [f"{_state(new)}, bitwise identical", *notes])


def compare_api(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Constructor changes per framework: class, removed/added/renamed parameters, new defaults, mapping."""
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before is None or after is None:
            lines.append(f"{name}: optimizer API {'not recorded in the baseline' if before is None else 'missing now'}")
            continue
        if before.get("class") != after.get("class"):
            lines.append(f"{name}: class {before.get('class')} -> {after.get('class')}")
        cls = after.get("class")
        p_old, p_new = before.get("params", {}), after.get("params", {})
        removed = [p for p in p_old if p not in p_new]
        added = [p for p in p_new if p not in p_old]
        for gone in list(removed):
            twin = next((a for a in added if p_new[a]["default"] == p_old[gone]["default"]), None)
            if twin is not None:
                lines.append(f"{cls}: parameter renamed? {gone} -> {twin} (same default {p_old[gone]['default']})")
                removed.remove(gone)
                added.remove(twin)
        lines += [f"{cls}: parameter removed: {p} (default was {p_old[p]['default']})" for p in removed]
        lines += [f"{cls}: new parameter: {p} (default {p_new[p]['default']})" for p in added]
        for p in p_old:
            if p in p_new and p_old[p]["default"] != p_new[p]["default"]:
                lines.append(f"{cls}: default of {p} changed: {p_old[p]['default']} -> {p_new[p]['default']}")
            if p in p_new and p_old[p].get("neutral") != p_new[p].get("neutral"):
                lines.append(f"{cls}: {p} maps to neutral {p_old[p].get('neutral')} -> {p_new[p].get('neutral')}")
    return lines


# ---------------------------------------------------------------- environment check and the whole compare

def coverage(items: dict[str, dict[str, Any]], common: set[str]) -> set[tuple[str, str]]:
    """(device, dtype) pairs that actually ran among the items both sides have."""
    return {(items[n].get("device"), items[n].get("dtype")) for n in common if items[n].get("outcome") in RAN}


def environment_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why figures of these two sides may differ for reasons other than the release: machine, coverage."""
    lines = []
    m_old, m_new = old["source"].get("machine") or {}, new["source"].get("machine") or {}
    for key in sorted(set(m_old) | set(m_new)):
        if m_old.get(key) != m_new.get(key):
            lines.append(f"machine {key}: {m_old.get(key)!r} -> {m_new.get(key)!r}")
    common = set(old["items"]) & set(new["items"])
    c_old, c_new = coverage(old["items"], common), coverage(new["items"], common)
    if c_old != c_new:
        fmt_cov = lambda pairs: ", ".join(f"{d}-{t}" for d, t in sorted(pairs)) or "none"  # noqa: E731
        lines.append(f"devices/dtypes that ran: {fmt_cov(c_old)} -> {fmt_cov(c_new)}")
    return lines


def build_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """How the frameworks' builds differ (commit, CUDA, build flags): expected across releases, shown as facts."""
    lines = []
    b_old, b_new = old["source"].get("build") or {}, new["source"].get("build") or {}
    for name in sorted(set(b_old) | set(b_new)):
        before, after = b_old.get(name) or {}, b_new.get(name) or {}
        for key in sorted(set(before) | set(after)):
            if key == "config":
                if before.get(key) != after.get(key):
                    lines.append(f"{name} build configuration differs (see run.build.{name}.config in summary.json)")
            elif before.get(key) != after.get(key):
                lines.append(f"{name} {key}: {before.get(key)!r} -> {after.get(key)!r}")
    return lines


@dataclass
class Comparison:
    old_source: dict[str, Any]
    new_source: dict[str, Any]
    rule: NoiseRule
    environment: list[str]
    builds: list[str]
    api: list[str]
    items: list[ItemChange]

    @property
    def changed(self) -> bool:
        return bool(self.api) or any(i.kind != "unchanged" for i in self.items)

    def counts(self) -> dict[str, int]:
        return {kind: sum(i.kind == kind for i in self.items) for kind in KINDS}

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.old_source, "run": self.new_source, "noise_rule": self.rule.describe(),
                "environment_differences": self.environment, "build_differences": self.builds, "api_changes": self.api, "counts": self.counts(),
                "changed": self.changed,
                "items": [{"nodeid": i.nodeid, "kind": i.kind, "label": i.label, "details": i.details}
                          for i in self.items]}


def compare(old: dict[str, Any], new: dict[str, Any], rule: NoiseRule = NoiseRule()) -> Comparison:
    """Every item of both sides in one kind of change; API and environment differences beside them."""
    changes = []
    for nodeid in sorted(set(old["items"]) | set(new["items"])):
        before, after = old["items"].get(nodeid), new["items"].get(nodeid)
        if before is None:
            changes.append(ItemChange(nodeid, "new item", "NEW ITEM", [_state(after)]))
        elif after is None:
            changes.append(ItemChange(nodeid, "removed item", "REMOVED ITEM", [f"baseline: {_state(before)}"]))
        else:
            changes.append(compare_item(nodeid, before, after, rule))
    return Comparison(old["source"], new["source"], rule, environment_differences(old, new),
                      build_differences(old, new), compare_api(old.get("api") or {}, new.get("api") or {}), changes)


def _side(source: dict[str, Any]) -> str:
    v = source.get("versions") or {}
    return f"torch {v.get('torch')}, mindspore {v.get('mindspore')} (run {source.get('run_id')})"


def render(result: Comparison, accepted_environment: bool) -> str:
    """The compare as text: header, environment, API changes, then items grouped by kind, changes first."""
    v_old, v_new = result.old_source.get("versions") or {}, result.new_source.get("versions") or {}
    lines = [f"baseline: {_side(result.old_source)}", f"run:      {_side(result.new_source)}"]
    moved_versions = [f"{k} {v_old.get(k)} -> {v_new.get(k)}" for k in v_old if v_old.get(k) != v_new.get(k)]
    lines.append("versions: " + ("; ".join(moved_versions) or "identical"))
    if result.environment:
        head = "WARNING: different environment (accepted with --accept-environment)" if accepted_environment \
            else "different environment"
        lines += [f"{head}:", *(f"  {line}" for line in result.environment)]
    else:
        lines.append("machine: same fingerprint (CPU, OS, threads, GPUs, devices/dtypes that ran)")
    lines += [f"build: {line}" for line in result.builds]
    lines.append(f"noise rule: {result.rule.describe()}")
    lines.append("API changes:" if result.api else "API changes: none")
    lines += [f"  {line}" for line in result.api]
    counts = result.counts()
    lines.append(f"items: {len(result.items)}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    for kind in KINDS:
        for change in (c for c in result.items if c.kind == kind):
            lines.append(f"  {change.label:<10} {change.nodeid}")
            lines += [f"      {d}" for d in change.details]
    lines.append("result: " + ("CHANGED (exit 1)" if result.changed else "no change (exit 0)"))
    return "\n".join(lines)
