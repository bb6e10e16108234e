"""Two runs or a baseline and a run, item by item: what changed, under the rules of release.rules, and its rendering."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from conformance.numbers import fmt
from conformance.release.rules import (
    Environment,
    NoiseRule,
    build_differences,
    environment_rule,
    figure_moves,
)
from conformance.results.entry import RAN

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
    lines = [f"{names[0] + ':':<{width}} {_side(result.old_source)}",
             f"{names[1] + ':':<{width}} {_side(result.new_source)}"]
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


def refused(result: Comparison, accept: bool, prog: str = "compare") -> bool:
    """Say why the comparison would mislead and return True, unless accepted (then warn and go on)."""
    if not result.environment.refusals:
        return False
    if accept:
        print("WARNING: compared although it may mislead (--accept-environment):", file=sys.stderr)
        print("\n".join(f"  {line}" for line in result.environment.refusals), file=sys.stderr)
        return False
    print(f"{prog}: refused: this comparison would mislead:", file=sys.stderr)
    print("\n".join(f"  {line}" for line in result.environment.refusals), file=sys.stderr)
    print("(--accept-environment compares anyway)", file=sys.stderr)
    return True
