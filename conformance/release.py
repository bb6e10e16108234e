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
than `factor` (either direction) and its quantity is not within `min_ulp` ULP on both sides.

Environment rule: what differs between the two sides' machines is sorted by whether it can change bits.
A kernel build string or a host name cannot (ignored, and said so); the CPU ISA level, the CPU model,
thread counts, the C library, numpy or Python can (named, and the comparison goes on under the noise
rule). A comparison is refused only where it would mislead: an interrupted run (its missing items would
read as removed), or no device/dtype that ran on both sides (every item would read as changed).
"""
from __future__ import annotations

import json
import math
import re
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

    def moved(self, old: float, new: float, old_ulp: float | None, new_ulp: float | None) -> bool:
        """Whether one figure moved from `old` to `new`; `*_ulp` are the same quantity's ULP figures
        (NaN or missing never counts as within the ULP floor)."""
        if old == new:
            return False
        if all(ulp is not None and ulp <= self.min_ulp for ulp in (old_ulp, new_ulp)):
            return False  # the quantity is within a few ULP on both sides: last-bit noise however large the ratio
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
            for metric in METRICS:
                if before[metric] == after[metric]:
                    continue
                line = (f"{kind} {quantity} {metric}: {fmt(before[metric])} -> {fmt(after[metric])} "
                        f"({_ratio(before[metric], after[metric])})")
                beyond = rule.moved(before[metric], after[metric], before["ulp"], after["ulp"])
                (moved if beyond else within).append(line)
    return moved, within


# ---------------------------------------------------------------- item and API comparison

KINDS = ("new divergence", "vanished divergence", "error/skip", "moved", "new item", "removed item", "unchanged")


@dataclass
class ItemChange:
    nodeid: str
    kind: str  # one of KINDS
    label: str  # the verdict in words, e.g. "REGRESSION", "STALE EXPECTATION"
    details: list[str] = field(default_factory=list)
    how: str = ""  # for unchanged items: "bitwise identical", "within the noise rule" or "not run on either side"


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
            return ItemChange(nodeid, "unchanged", "UNCHANGED", [_state(new), *notes], "not run on either side")
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
                                                             *(f"  {line}" for line in within), *notes],
                          "within the noise rule")
    return ItemChange(nodeid, "unchanged", "UNCHANGED", [f"{_state(new)}, bitwise identical", *notes],
                      "bitwise identical")


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


def compare_notices(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Warnings in the optimizers' docstrings (announced changes) that appeared or went: facts, not changes
    of behaviour, so they never make a compare 'changed'."""
    lines = []
    for name in sorted(set(old) & set(new)):
        before, after = (old[name].get("notices") or []), (new[name].get("notices") or [])
        if "notices" not in old[name] or "notices" not in new[name]:
            continue  # recorded on one side only (an older baseline): nothing to say
        cls = new[name].get("class")
        lines += [f"{cls}: docstring warning no longer there: {n}" for n in before if n not in after]
        lines += [f"{cls}: new docstring warning: {n}" for n in after if n not in before]
    return lines


# ---------------------------------------------------------------- environment rule and the whole compare

# Machine fingerprint keys that cannot change a float's bits: the same binaries on the same ISA give the
# same results whatever the kernel build or host is called (a different kernel build string alone gave
# 105 of 105 items bitwise identical). `cpu_count` is here because the thread counts, which do change
# reduction order, are compared on their own (torch_threads, mindspore_threads, thread_env).
IGNORED = {"host": "host name", "hostname": "host name", "cpu_count": "CPU count (threads are compared on their own)"}
# Keys that can change bits, and why.
MATERIAL = {"cpu": "CPU model: libraries choose kernels per CPU",
            "cpu_capability": "CPU ISA level torch dispatches to (e.g. AVX2 vs AVX512 kernels)",
            "torch_threads": "torch thread count: changes reduction order",
            "mindspore_threads": "MindSpore runtime thread count: may change reduction order",
            "thread_env": "OMP/MKL thread settings: change reduction order",
            "gpus": "GPUs: decide which GPU items run"}
OS = re.compile(r"^(?P<system>[^-]+)-(?P<kernel>.+)-(?P<arch>[^-]+)$")


def os_parts(value: Any) -> dict[str, str | None]:
    """platform.platform() ('Linux-6.18.44-fc-v769-x86_64-with-glibc2.36') split into system, kernel
    build, architecture and C library."""
    text, _, libc = str(value or "").partition("-with-")
    match = OS.match(text)
    parts = match.groupdict() if match else {"system": text, "kernel": None, "arch": None}
    return {**parts, "libc": libc or None}


@dataclass
class Environment:
    """How the two sides' environments differ, sorted by whether that can change bits, and whether the
    comparison would mislead (then it is refused unless accepted)."""

    ignored: list[str] = field(default_factory=list)  # differences that do not change bits
    material: list[str] = field(default_factory=list)  # differences that can change bits, each with why
    refusals: list[str] = field(default_factory=list)  # why comparing would mislead, each with what to do

    def describe(self) -> list[str]:
        if self.material:
            head = ("environment: differs in what can change bits, so figures may move within the noise rule "
                    "for reasons other than the frameworks:")
        else:
            head = ("environment: equivalent for bits (same CPU ISA, thread counts, libraries): figures "
                    "should be bitwise identical where the frameworks did not change")
        lines = [head, *(f"  can change bits: {line}" for line in self.material)]
        lines += [f"  ignored (does not change bits): {line}" for line in self.ignored]
        return lines


def _os_differences(old: Any, new: Any, env: Environment) -> None:
    """A Linux kernel build cannot change bits (the math is in user-space libraries, compared apart); on
    other systems the version string also names the system's math libraries, so any change is named."""
    before, after = os_parts(old), os_parts(new)
    if before["system"] != "Linux" or after["system"] != "Linux":
        env.material.append(f"operating system and its math libraries: {old!r} -> {new!r}")
        return
    for part, why in (("system", "operating system"), ("arch", "CPU architecture: other kernels"),
                      ("libc", "C library: its libm computes exp/log/pow")):
        if before[part] != after[part]:
            env.material.append(f"{why}: {before[part]!r} -> {after[part]!r}")
    if before["kernel"] != after["kernel"]:
        env.ignored.append(f"kernel build: {before['kernel']!r} -> {after['kernel']!r}")


def coverage(items: dict[str, dict[str, Any]], common: set[str]) -> set[tuple[str, str]]:
    """(device, dtype) pairs that actually ran among the items both sides have."""
    return {(items[n].get("device"), items[n].get("dtype")) for n in common if items[n].get("outcome") in RAN}


def _pairs(pairs: set[tuple[str, str]]) -> str:
    return ", ".join(f"{d}-{t}" for d, t in sorted(pairs)) or "none"


def environment_rule(old: dict[str, Any], new: dict[str, Any]) -> Environment:
    """The environment rule: what differs between the two sides besides the frameworks, ignored where it
    cannot change bits, named where it can, refused where the comparison would mislead."""
    env = Environment()
    m_old, m_new = old["source"].get("machine") or {}, new["source"].get("machine") or {}
    for key in sorted(set(m_old) | set(m_new)):
        before, after = m_old.get(key), m_new.get(key)
        if before == after:
            continue
        if key == "os":
            _os_differences(before, after, env)
        elif key in IGNORED:
            env.ignored.append(f"{IGNORED[key]}: {before!r} -> {after!r}")
        else:
            env.material.append(f"{MATERIAL.get(key, key)}: {before!r} -> {after!r}")
    v_old, v_new = old["source"].get("versions") or {}, new["source"].get("versions") or {}
    env.material += [f"{name} {v_old.get(name)} -> {v_new.get(name)}: its kernels and data generation"
                     for name in ("numpy", "python") if v_old.get(name) != v_new.get(name)]
    for side, data in (("baseline", old), ("run", new)):
        if data["source"].get("complete") is False:
            env.refusals.append(f"the {side} ({data['source'].get('run_id')}) was interrupted: its missing items "
                                "would read as removed or new; run the suite to the end and compare that run")
    common = set(old["items"]) & set(new["items"])
    c_old, c_new = coverage(old["items"], common), coverage(new["items"], common)
    if c_old != c_new:
        line = f"devices/dtypes that ran: {_pairs(c_old)} -> {_pairs(c_new)}"
        if c_old & c_new:
            env.material.append(f"{line} (items of the others read as new skips or as running again)")
        else:
            env.refusals.append(f"{line}: no device/dtype ran on both sides, so every item would read as changed; "
                                "compare runs made where the same devices are available")
    return env


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
    environment: Environment
    builds: list[str]
    api: list[str]
    items: list[ItemChange]
    notices: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.api) or any(i.kind != "unchanged" for i in self.items)

    def counts(self) -> dict[str, int]:
        return {kind: sum(i.kind == kind for i in self.items) for kind in KINDS}

    def label_counts(self) -> dict[str, int]:
        """Items per label (REGRESSION, MOVED, ...), changes first, in KINDS order."""
        out: dict[str, int] = {}
        for change in sorted(self.items, key=lambda c: KINDS.index(c.kind)):
            out[change.label] = out.get(change.label, 0) + 1
        return out

    def unchanged_counts(self) -> dict[str, int]:
        """Unchanged items by how: bitwise identical, within the noise rule, not run on either side."""
        out: dict[str, int] = {}
        for change in self.items:
            if change.kind == "unchanged":
                out[change.how] = out.get(change.how, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.old_source, "run": self.new_source, "noise_rule": self.rule.describe(),
                "environment": {"ignored": self.environment.ignored, "can_change_bits": self.environment.material,
                                "refusals": self.environment.refusals},
                "build_differences": self.builds, "api_changes": self.api, "api_notices": self.notices,
                "counts": self.counts(),
                "label_counts": self.label_counts(), "changed": self.changed,
                "items": [{"nodeid": i.nodeid, "kind": i.kind, "label": i.label, "how": i.how, "details": i.details}
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
    api_old, api_new = old.get("api") or {}, new.get("api") or {}
    return Comparison(old["source"], new["source"], rule, environment_rule(old, new), build_differences(old, new),
                      compare_api(api_old, api_new), changes, compare_notices(api_old, api_new))


def _side(source: dict[str, Any]) -> str:
    v = source.get("versions") or {}
    return f"torch {v.get('torch')}, mindspore {v.get('mindspore')} (run {source.get('run_id')})"


def summary_lines(result: Comparison, names: tuple[str, str] = ("baseline", "run")) -> list[str]:
    """The opening of a compare: both sides, counts per status, API changes, then what else differs."""
    v_old, v_new = result.old_source.get("versions") or {}, result.new_source.get("versions") or {}
    width = max(len(n) for n in names) + 1
    lines = [f"{names[0] + ':':<{width}} {_side(result.old_source)}", f"{names[1] + ':':<{width}} {_side(result.new_source)}"]
    counts = ", ".join(f"{n} {label}" for label, n in result.label_counts().items())
    how = ", ".join(f"{n} {h}" for h, n in result.unchanged_counts().items())
    lines.append(f"items: {len(result.items)}: {counts}" + (f" ({how})" if how else ""))
    lines.append(f"API changes: {len(result.api)}" if result.api else "API changes: none")
    lines += [f"  {line}" for line in result.api]
    lines += [f"  (not an API change) {line}" for line in result.notices]
    moved_versions = [f"{k} {v_old.get(k)} -> {v_new.get(k)}" for k in v_old if v_old.get(k) != v_new.get(k)]
    lines.append("versions: " + ("; ".join(moved_versions) or "identical"))
    lines += result.environment.describe()
    lines += [f"build: {line}" for line in result.builds]
    lines.append(f"noise rule: {result.rule.describe()}")
    return lines


def render(result: Comparison, verbose: bool = False, names: tuple[str, str] = ("baseline", "run")) -> str:
    """The compare as text: the summary, then the changed items grouped by kind; unchanged ones with -v."""
    lines = summary_lines(result, names)
    changed = [c for kind in KINDS if kind != "unchanged" for c in result.items if c.kind == kind]
    lines.append(f"changes: {len(changed)} items" if changed else "changes: none")
    for change in changed:
        lines.append(f"  {change.label:<10} {change.nodeid}")
        lines += [f"      {d}" for d in change.details]
    unchanged = [c for c in result.items if c.kind == "unchanged"]
    if verbose:
        lines.append(f"unchanged: {len(unchanged)} items")
        for change in unchanged:
            lines.append(f"  {change.label:<10} {change.nodeid}")
            lines += [f"      {d}" for d in change.details]
    elif unchanged:
        lines.append(f"unchanged: {len(unchanged)} items (listed with -v)")
    lines.append("result: " + ("CHANGED (exit 1)" if result.changed else "no change (exit 0)"))
    return "\n".join(lines)
