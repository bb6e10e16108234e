"""The "AdaMax across frameworks" table: every implementation against torch, from a stored run.

Reads only summary.json: the N-way items (cases listing more than two frameworks, e.g.
cases/frameworks_matrix.yaml), each one's primary pairs `torch~X` and oracle pairs `X~oracle`, and the
run's `api` block (constructor defaults, and the formula each adapter's oracle encodes). Nothing is
rerun or recomputed: the figures are the comparator's recorded maxima.

Two tables come out:
- implementations: class, version, eps placement and weight-decay kind (of the formula the framework
  was checked against, with whether the check held in every item), native defaults;
- differences: one row per N-way item, one cell per implementation: agreement with torch or the
  divergence (first step, largest parameter and state difference), and whether it kept to its own
  formula there.
Written as frameworks.md and frameworks.html (`python -m conformance frameworks RUN`, and beside
index.html whenever a run holds N-way items).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from conformance import numbers
from conformance.report import pages
from conformance.report.markdown import md
from conformance.results import storage

TITLE = "AdaMax across frameworks"
_DEFAULTS = (("lr", "lr"), ("betas[0]", "beta1"), ("betas[1]", "beta2"), ("eps", "eps"),
             ("weight_decay", "weight decay"))


def nway_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items of cases that list more than two frameworks."""
    return [e for e in items if len(e.get("frameworks") or ()) > 2]


def _frameworks(items: list[dict[str, Any]]) -> list[str]:
    order: list[str] = []
    for entry in items:
        for fw in entry["frameworks"]:
            if fw not in order:
                order.append(fw)
    return order


def _defaults(api: dict[str, Any]) -> dict[str, str]:
    """Native defaults by neutral name, as introspected from the installed constructor (a `betas` pair,
    as torch declares it, split into beta1 and beta2)."""
    by_neutral = {p["neutral"]: p["default"] for p in api.get("params", {}).values() if p.get("neutral")}
    pair = re.fullmatch(r"\((.+), (.+)\)", by_neutral.get("betas") or "")
    if pair:
        by_neutral["betas[0]"], by_neutral["betas[1]"] = pair.groups()
    return {label: by_neutral.get(neutral) or "none" for neutral, label in _DEFAULTS}


def _oracle_cell(entry: dict[str, Any], fw: str) -> dict[str, Any] | None:
    pair = entry["pairs"].get(f"{fw}~oracle")
    if pair is None:
        return None
    return {"observed": pair["observed"], "expect": pair["expect"], "held": pair["observed"] == pair["expect"]}


def _cell(entry: dict[str, Any], left: str, fw: str) -> dict[str, Any]:
    """One implementation in one item: its pair with `left` (or why it did not run) and its oracle."""
    oracle = _oracle_cell(entry, fw)
    if fw == left:
        return {"kind": "reference", "oracle": oracle, "text": "reference"}
    pair = entry["pairs"].get(f"{left}~{fw}")
    if pair is None:
        why = (entry.get("skipped_sides") or {}).get(fw) or entry.get("reason") or "did not run"
        return {"kind": "skipped", "oracle": oracle, "text": f"not run: {why}"}
    first, top = pair.get("first_divergence"), pair.get("max") or {}
    params, state = top.get("params") or {}, top.get("state") or {}
    size = (f"max params abs {numbers.short(params.get('abs'))} ({numbers.short(params.get('ulp'))} ULP), "
            f"state abs {numbers.short(state.get('abs'))}")
    both = (entry.get("nonfinite") or {}).get(fw, {}).get("params")
    if pair["observed"] == "conform" and both is not None:
        text = f"agrees: NaN/Inf in the same elements as {left} from step {both}"
    elif pair["observed"] == "conform":
        text = f"agrees: {size}"
    elif pair["observed"] == "nonfinite":
        text = f"NaN/Inf in {first.get('nonfinite')} at step {first['step']} ({first['quantity']} {first['tensor']})"
    else:
        text = f"differs from step {first['step']} ({first['quantity']} {first['tensor']}): {size}"
    return {"kind": pair["observed"], "oracle": oracle, "text": text, "expected": pair["observed"] == pair["expect"],
            "expect": pair["expect"]}


def _implementation(fw: str, run: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    api = (run.get("api") or {}).get(fw, {})
    formula = api.get("formula") or {}
    checks = [c for c in (_oracle_cell(e, fw) for e in items) if c is not None]
    departed = [e["nodeid"] for e in items if (c := _oracle_cell(e, fw)) and not c["held"]]
    declared = [e["nodeid"] for e in items if (c := _oracle_cell(e, fw)) and c["held"] and c["expect"] != "conform"]
    version = ((run.get("build") or {}).get(fw) or {}).get("version") or run.get(fw) or "not installed"
    return {"name": fw, "class": api.get("class", fw), "version": version,
            "camp": formula.get("camp", "—"), "eps": formula.get("eps", "—"),
            "weight_decay": formula.get("weight_decay", "—"),
            "defaults": _defaults(api), "checked": len(checks), "departed": departed, "declared": declared}


def build(data: dict[str, Any]) -> dict[str, Any] | None:
    """The table's data from a loaded run (summary.json), or None if the run holds no N-way item."""
    run, items = data["run"], nway_items(data["items"])
    if not items:
        return None
    frameworks = _frameworks(items)
    left = frameworks[0]
    rows = [{"nodeid": e["nodeid"], "case": e["case"], "item": e["nodeid"].split("::")[-1],
             "reason": e.get("reason") or e.get("description") or "", "outcome": e["outcome"],
             "cells": {fw: _cell(e, left, fw) for fw in frameworks}}
            for e in items if e["outcome"] != "skipped"]
    return {"title": TITLE, "run": run, "left": left, "frameworks": frameworks, "rows": rows,
            "implementations": [_implementation(fw, run, items) for fw in frameworks]}


def _oracle_mark(oracle: dict[str, Any] | None) -> str:
    if oracle is None:
        return ""
    if not oracle["held"]:
        return f" [own formula: {oracle['observed']}, UNEXPLAINED]"
    if oracle["expect"] == "conform":
        return " [own formula: holds]"
    return f" [own formula: {oracle['observed']}, declared]"


def render_markdown(table: dict[str, Any]) -> str:
    run, fws = table["run"], table["frameworks"]
    out = [f"# {TITLE}", "",
           f"Measured by the AdaMax conformance suite, run {md(run.get('id'))} ({md(run.get('start'))}): every "
           f"implementation against {md(table['left'])} on the same model, weights, data and gradients, and "
           "against a float64 oracle of its own formula. Every figure is read from that run's summary.json.", "",
           "## Implementations", "",
           "| implementation | class | version | eps camp | eps placement | weight decay | lr | beta1 | beta2 | eps "
           "| weight_decay | own formula |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for imp in table["implementations"]:
        d = imp["defaults"]
        own = (f"departs, unexplained: {', '.join(imp['departed'])}" if imp["departed"]
               else f"holds in {imp['checked']} items" + (f" (declared departures: {', '.join(imp['declared'])})"
                                                          if imp["declared"] else ""))
        out.append("| " + " | ".join(md(v) for v in (
            imp["name"], imp["class"], imp["version"], imp["camp"], imp["eps"], imp["weight_decay"], d["lr"],
            d["beta1"],
            d["beta2"], d["eps"], d["weight decay"], own)) + " |")
    out += ["", "Defaults are the installed constructors' own (introspected when the run was made).", "",
            f"## Differences, measured against {md(table['left'])}", "",
            "| item | " + " | ".join(md(fw) for fw in fws[1:]) + " |",
            "| --- | " + " | ".join("---" for _ in fws[1:]) + " |"]
    for row in table["rows"]:
        cells = [row["cells"][fw]["text"] + _oracle_mark(row["cells"][fw]["oracle"]) for fw in fws[1:]]
        out.append(f"| {md(row['item'])} | " + " | ".join(md(c) for c in cells) + " |")
    out += ["", "Why each item differs, as its case declares:", ""]
    out += [f"- {md(row['item'])}: {md(row['reason'])}" for row in table["rows"]]
    return "\n".join(out) + "\n"


def render_html(table: dict[str, Any]) -> str:
    return pages.environment().get_template("frameworks.html.j2").render(t=table, mark=_oracle_mark)


def write(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """frameworks.md and frameworks.html into out_dir; [] if the run holds no N-way item."""
    table = build(data)
    if table is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "frameworks.md", out_dir / "frameworks.html"]
    storage.atomic_write_text(paths[0], render_markdown(table))
    storage.atomic_write_text(paths[1], render_html(table))
    return paths
