"""What counts as a change between two runs: the noise rule for figures and the environment rule for machines."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from conformance.cases.case import QUANTITIES
from conformance.numbers import fmt, short
from conformance.release.baseline import FIGURES
from conformance.results.entry import METRICS, RAN


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

    def why(self, old: float, new: float, old_ulp: float | None, new_ulp: float | None) -> str:
        """The part of the rule a moved figure broke, with the ULP figures it was judged by."""
        ulps = f"ULP {short(old_ulp)} -> {short(new_ulp)}"
        if not (math.isfinite(old) and math.isfinite(new)):
            return f"flagged: non-finite on one side ({ulps})"
        return f"flagged: more than x{self.factor:g}, and not within {self.min_ulp:g} ULP on both sides ({ulps})"


def _ratio(old: float, new: float) -> str:
    if old == 0 or not (math.isfinite(old) and math.isfinite(new)):
        return "new" if old == 0 else "non-finite"
    return f"x{new / old:.3g}"


def attributed(item: dict[str, Any]) -> list[str] | None:
    """The causes a run attributed an item's divergence to (sorted), or None where the record has no
    attribution field (a baseline file, an interface item)."""
    if "attribution" not in item:
        return None
    return sorted((item["attribution"] or {}).get("causes") or [])


def figure_moves(old: dict[str, Any], new: dict[str, Any], rule: NoiseRule) -> tuple[list[str], list[str]]:
    """(figures that moved beyond the rule, each with the part of the rule that flagged it; figures that
    changed within it); both empty: bitwise identical."""
    moved: list[str] = []
    within: list[str] = []
    if old.get("first_divergent_step") != new.get("first_divergent_step"):
        moved.append(f"first divergent step {old.get('first_divergent_step')} -> {new.get('first_divergent_step')} "
                     "(flagged: any change of the first divergent step counts)")
    was, now = attributed(old), attributed(new)
    if was is not None and now is not None and was != now:
        moved.append(f"attributed causes {', '.join(was) or 'none'} -> {', '.join(now) or 'none'} "
                     "(flagged: any change of the attributed causes counts)")
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
                if rule.moved(before[metric], after[metric], before["ulp"], after["ulp"]):
                    moved.append(f"{line}: {rule.why(before[metric], after[metric], before['ulp'], after['ulp'])}")
                else:
                    within.append(line)
    return moved, within


# Machine fingerprint keys that cannot change a float's bits: the same binaries on the same ISA give the
# same results whatever the kernel build or host is called (a different kernel build string alone gave
# 105 of 105 items bitwise identical). `cpu_count` is here because the thread counts, which do change
# reduction order, are compared on their own (torch_threads, mindspore_threads, thread_env).
IGNORED = {"host": "host name", "hostname": "host name", "cpu_count": "CPU count (threads are compared on their own)"}


# Keys that can change bits, and why.
MATERIAL = {"cpu": "CPU model: libraries choose kernels per CPU",
            "cpu_isa": "CPU vector extensions (AVX-512 subsets, AMX, VNNI): MKL, oneDNN, MindSpore choose kernels",
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
        elif isinstance(before, list) and isinstance(after, list):  # flags: only those that differ
            changed = [f"-{f}" for f in before if f not in after] + [f"+{f}" for f in after if f not in before]
            env.material.append(f"{MATERIAL.get(key, key)}: {' '.join(changed)}")
        elif before is None or after is None:
            env.material.append(f"{MATERIAL.get(key, key)}: recorded on one side only")
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
        if not before or not after:  # a framework that ran on one side only: one line, not one per key
            lines.append(f"{name}: build recorded on one side only ({'now' if after else 'before'})")
            continue
        for key in sorted(set(before) | set(after)):
            if key == "config":
                if before.get(key) != after.get(key):
                    lines.append(f"{name} build configuration differs (see run.build.{name}.config in summary.json)")
            elif before.get(key) != after.get(key):
                lines.append(f"{name} {key}: {before.get(key)!r} -> {after.get(key)!r}")
    return lines
