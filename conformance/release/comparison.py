"""Two runs or a baseline and a run, item by item: what changed, under the rules of release.rules, and its rendering."""
from __future__ import annotations

import re
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

# How an unchanged item is unchanged, in the order the counts are written.
HOW = ("bitwise identical", "within the noise rule", "not run on either side")
KINDS = ("new divergence", "vanished divergence", "pair changed", "error/skip", "moved", "new item", "removed item",
         "unchanged")


@dataclass
class ItemChange:
    nodeid: str
    kind: str  # one of KINDS
    label: str  # the verdict in words, e.g. "REGRESSION", "STALE EXPECTATION"
    details: list[str] = field(default_factory=list)
    how: str = ""  # for unchanged items: "bitwise identical", "within the noise rule" or "not run on either side"
    brief: str = ""  # new, removed, error/skip items: the state in one line, without the reason
    reason: str | None = None  # ... and why the side that did not run did not (rendered once per reason)


def _did_not_run(item: dict[str, Any]) -> bool:
    return item.get("outcome") not in RAN


def _state(item: dict[str, Any], with_reason: bool = True) -> str:
    if item.get("outcome") in RAN:
        step = item.get("first_divergent_step")
        return f"{item.get('observed')}" + (f" from step {step}" if step else "")
    if not with_reason:
        return str(item.get("outcome"))
    return f"{item.get('outcome')}: {item.get('reason') or 'no reason recorded'}"


def _reason(item: dict[str, Any]) -> str | None:
    return None if item.get("outcome") in RAN else (item.get("reason") or "no reason recorded")


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
        brief = f"was {_state(old, False)}, now {_state(new, False)}" + "".join(f"; {n}" for n in notes)
        return ItemChange(nodeid, "error/skip", label, [f"baseline: {_state(old)}", f"now: {_state(new)}", *notes],
                          brief=brief, reason=_reason(new) or _reason(old))
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
    pairs = pair_changes(old, new)
    if old.get("outcome") != new.get("outcome") or pairs:
        label = {"failed": "NEW FAILURE", "passed": "FAILURE GONE"}.get(new.get("outcome"), "PAIRS CHANGED") \
            if old.get("outcome") != new.get("outcome") else "PAIRS CHANGED"
        moved, within = figure_moves(old, new, rule)
        return ItemChange(nodeid, "pair changed", label, [f"outcome {old.get('outcome')} -> {new.get('outcome')}; "
                                                          f"first pair still {_state(new)}", *pairs, *moved,
                                                          *(f"{line}, within the rule" for line in within), *notes])
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


def pair_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Pairs whose observation (or first divergent step) changed, or that ran on one side only; none where
    a side recorded no pairs (a baseline from before they were kept)."""
    before, after = old.get("pairs"), new.get("pairs")
    if not before or not after:
        return []
    lines = []
    for label in sorted(set(before) | set(after)):
        was, now = before.get(label), after.get(label)
        if was is None or now is None:
            lines.append(f"{label}: {'ran only now' if was is None else 'ran only before'}")
        elif _pair_state(was) != _pair_state(now):
            lines.append(f"{label}: {_pair_state(was)} -> {_pair_state(now)}")
    return lines


def _pair_state(pair: dict[str, Any]) -> str:
    step = pair.get("first_divergent_step")
    return f"{pair.get('observed')}" + (f" from step {step}" if step else "")


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
        return {how: out[how] for how in sorted(out, key=lambda how: (HOW.index(how) if how in HOW else len(HOW), how))}

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
            changes.append(ItemChange(nodeid, "new item", "NEW ITEM", [_state(after)], brief=_state(after, False),
                                      reason=_reason(after)))
        elif after is None:
            changes.append(ItemChange(nodeid, "removed item", "REMOVED ITEM", [f"baseline: {_state(before)}"],
                                      brief=f"baseline: {_state(before, False)}", reason=_reason(before)))
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


# Labels whose items are one line each (their reasons listed once, after them): a changed case library or
# a framework that cannot run here is news about the run's coverage, not about AdaMax's numbers.
ONE_LINE = ("new item", "removed item", "error/skip")
# What to do about each such label, printed once beside its count.
ADVICE = {"NEW ITEM": "in the run, not in the reference: the case library grew; refresh the baseline once reviewed",
          "REMOVED ITEM": "in the reference, not in the run: the case library shrank; refresh the baseline",
          "NEW SKIP": "ran in the reference, skipped now", "NEW ERROR": "ran in the reference, errors now",
          "RUNS AGAIN": "did not run in the reference, runs now"}
# A skip reason is "<side>: <why>; <side>: <why>": split at the "; " that starts the next side's label.
_SIDE = re.compile(r"; (?=[a-z][a-z0-9_]*(?:@[a-z]+)?: )")


def reason_lines(reason: str) -> list[str]:
    """A skip or error reason, one line per distinct why, with every side that gave it."""
    by_why: dict[str, list[str]] = {}
    for part in _SIDE.split(reason):
        side, sep, why = part.partition(": ")
        if not sep or " " in side:
            by_why.setdefault(part, [])
        else:
            by_why.setdefault(why, []).append(side)
    return [f"{', '.join(sides)}: {why}" if sides else why for why, sides in by_why.items()]


def _one_line_groups(changes: list[ItemChange], reasons: dict[str, int]) -> list[str]:
    """One line per item under its label, grouped by what it shows and by reason (numbered, given once)."""
    lines: list[str] = []
    labels = sorted({c.label for c in changes}, key=lambda label: [c.label for c in changes].index(label))
    for label in labels:
        mine = [c for c in changes if c.label == label]
        lines.append(f"  {label} ({len(mine)}): {ADVICE.get(label, '')}".rstrip(": "))
        groups: dict[tuple[str, int], list[ItemChange]] = {}
        for change in mine:
            ref = reasons.setdefault(change.reason, len(reasons) + 1) if change.reason else 0
            groups.setdefault((change.brief, ref), []).append(change)
        for (brief, ref), members in sorted(groups.items(), key=lambda g: (g[0][1], g[0][0])):
            lines.append(f"    {brief}" + (f", reason [{ref}]" if ref else "") + f" ({len(members)}):")
            lines += [f"      {c.nodeid}" for c in members]
    return lines


def render(result: Comparison, verbose: bool = False, names: tuple[str, str] = ("baseline", "run")) -> str:
    """The compare as text, one screen where it can be: the summary; then items whose coverage changed (new,
    removed, newly skipped or erroring) one line each, grouped, each skip/error reason once; then every other
    changed item with its figures, a moved one with the part of the noise rule that flagged each figure;
    unchanged items (and figures that changed within the rule) with -v."""
    lines = summary_lines(result, names)
    changed = [c for kind in KINDS if kind != "unchanged" for c in result.items if c.kind == kind]
    lines.append(f"changes: {len(changed)} items" if changed else "changes: none")
    reasons: dict[str, int] = {}
    brief = [c for c in changed if c.kind in ONE_LINE and not verbose]
    for change in changed:
        if change in brief:
            continue
        details = change.details if verbose else [d for d in change.details if not d.endswith(", within the rule")]
        hidden = len(change.details) - len(details)
        lines.append(f"  {change.label:<10} {change.nodeid}")
        lines += [f"      {d}" for d in details]
        if hidden:
            lines.append(f"      (and {hidden} figure(s) that changed within the noise rule: -v lists them)")
    lines += _one_line_groups(brief, reasons)
    if reasons:
        lines.append("reasons:")
        for reason, ref in reasons.items():
            first, *rest = reason_lines(reason)
            lines += [f"  [{ref}] {first}", *(f"      {line}" for line in rest)]
    unchanged = [c for c in result.items if c.kind == "unchanged"]
    if verbose:
        lines.append(f"unchanged: {len(unchanged)} items")
        for change in unchanged:
            lines.append(f"  {change.label:<10} {change.nodeid}")
            lines += [f"      {d}" for d in change.details]
    elif unchanged:
        lines.append(f"unchanged: {len(unchanged)} items (listed with -v)")
    lines.append("result: " + ("CHANGED (exit 1)" if result.changed
                               else "UNCHANGED: no item and no API changed (exit 0)"))
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
