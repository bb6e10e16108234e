"""The API-differences page for documentation, built from one stored run (Markdown and its HTML twin).

Everything on it comes from the run: the parameter mapping from summary["run"]["api"] (introspected
from the installed frameworks when the run was made), the figures from the items' recorded verdicts.
Nothing is typed by hand, so the page is only as current as the run it was made from.
"""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any

import jinja2

from .. import results
from . import pages

MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#])")


def md(text: Any) -> str:
    """Plain text made inert in Markdown (and usable in a table cell: no `|`, no line break)."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))


def fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`, so case text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _markdown_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md, fence=fence, num=pages.num)
    return env


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def mapping(api: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows joining each framework's constructor parameters by their neutral meaning."""
    frameworks = list(api)
    concepts: dict[str, dict[str, list[tuple[str, str, str | None]]]] = {}
    for framework in frameworks:
        for native, spec in api[framework]["params"].items():
            neutral = spec.get("neutral")
            key = neutral.split("[")[0] if neutral else f"{framework}:{native}"
            concepts.setdefault(key, {}).setdefault(framework, []).append((native, spec["default"], neutral))
    return [_row(key, sides, frameworks, api) for key, sides in concepts.items()]


def _combined_default(params: list[tuple[str, str, str | None]]) -> Any:
    if len(params) == 1:
        return _value(params[0][1])
    ordered = sorted(params, key=lambda p: p[2] or "")
    return tuple(_value(p[1]) for p in ordered)


def _row(key: str, sides: dict[str, list], frameworks: list[str], api: dict[str, Any]) -> dict[str, Any]:
    cells = {fw: {"names": [p[0] for p in sides.get(fw, [])], "defaults": [p[1] for p in sides.get(fw, [])]}
             for fw in frameworks}
    present = [fw for fw in frameworks if sides.get(fw)]
    notes = []
    if len(present) < len(frameworks):
        missing = [api[fw]["class"] for fw in frameworks if fw not in present]
        notes.append(f"only in {api[present[0]]['class']}; {', '.join(missing)} has no such parameter")
    else:
        names = [tuple(cells[fw]["names"]) for fw in frameworks]
        if len({len(n) for n in names}) > 1:
            notes.append(" vs ".join(f"{len(n)} parameter{'s' if len(n) > 1 else ''} ({', '.join(n)})" for n in names))
        elif len(set(names)) > 1:
            notes.append("different name")
        defaults = [_combined_default(sides[fw]) for fw in frameworks]
        notes.append("same default" if all(d == defaults[0] for d in defaults)
                     else "different default: " + " vs ".join(str(d) for d in defaults))
    return {"concept": key.split(":", 1)[-1], "cells": cells, "difference": "; ".join(notes)}


def _primary_diverged(entry: dict[str, Any]) -> bool:
    """A measured numerical difference: a finite divergence or one side turning NaN/Inf."""
    return (entry.get("observed") in ("diverge", "nonfinite") and bool(primary(entry))
            and entry.get("outcome") not in pages.NOT_RUN)


def sections(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One section per observed difference: declared ones grouped by reason, undeclared ones by case."""
    groups: dict[str, dict[str, Any]] = {}
    for entry in items:
        if not _primary_diverged(entry):
            continue
        declared = entry.get("expect") in ("diverge", "nonfinite")
        title = entry["reason"] if declared and entry.get("reason") else f"Undeclared difference in case {entry['case']}"
        group = groups.setdefault(title, {"title": title, "declared": declared, "entries": []})
        group["entries"].append(entry)
    out = []
    for group in groups.values():
        group["entries"].sort(key=lambda e: (e["first_divergent_step"] or 0, e["nodeid"]))
        group["first"] = group["entries"][0]
        group["cases"] = sorted({(e["case"], e.get("file"), e.get("line")) for e in group["entries"]}, key=str)
        source = next((e["source"] for e in group["entries"] if e.get("source")), None)
        group["source"] = textwrap.dedent(source).strip("\n") if source else None
        out.append(group)
    # reviewed cases first; a search's findings (cases/found/, "needs review") after them
    return sorted(out, key=lambda g: (not g["declared"], g["title"].startswith("FOUND BY SEARCH"), g["title"]))


def agreements(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Numerical cases that expect agreement and held (interface items have their own table)."""
    return [e for e in items if e.get("expect") == "conform" and e.get("outcome") == "passed" and primary(e)]


def behaviours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input-validation probes as rows: what each framework did with one unusual input."""
    rows = []
    for entry in items:
        observed = entry.get("behaviour") or {}
        if not observed:
            continue
        said = {fw: ("accepts" if b["behaviour"] == "accepts" else f"raises {b['type']}: {b['message']}")
                for fw, b in observed.items()}
        probe = entry.get("probe") or {}
        shown = ", ".join(f"{k}: {v}" for k, v in probe.items())
        rows.append({"case": entry["case"], "description": entry.get("description") or shown,
                     "same": entry.get("observed") == "conform", **said})
    return sorted(rows, key=lambda r: (r["same"], r["case"]))


def primary(entry: dict[str, Any]) -> dict[str, Any]:
    """The item's torch~mindspore pair (role primary), or an empty dict."""
    return next((p for p in (entry.get("pairs") or {}).values() if p.get("role") == "primary"), {})


PAGE_PAIR = ("torch", "mindspore")  # the page documents torch.optim.Adamax against mindspore.nn.AdaMax


def _is_page_pair(entry: dict[str, Any]) -> bool:
    """Items that compare the documented pair (not, e.g., the experimental control optimizer)."""
    pairs = entry.get("pairs") or {}
    return not pairs or "~".join(PAGE_PAIR) in pairs or entry.get("behaviour") is not None


def context(data: dict[str, Any]) -> dict[str, Any]:
    run = data["run"]
    items = [e for e in data["items"] if _is_page_pair(e)]
    api = {name: spec for name, spec in (run.get("api") or {}).items() if name in PAGE_PAIR}
    if len(api) < 2:
        raise ValueError("this run's summary.json has no run.api for both frameworks; rerun the suite with "
                         "both torch and mindspore installed, then run `docs` on that run")
    left, right = PAGE_PAIR
    return {"title": f"Differences between {api[left]['class']} and {api[right]['class']}", "api": api,
            "left": left, "right": right, "mapping": mapping(api), "sections": sections(items),
            "agreements": agreements(items), "behaviours": behaviours(items), "envs": pages.environments(run, items), "run": run,
            "not_run": [e for e in items if e.get("outcome") in pages.NOT_RUN], "primary": primary}


def write_docs(data: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write differences.md and differences.html into out_dir; return both paths."""
    ctx = context(data)
    markdown = _markdown_env().get_template("differences.md.j2").render(**ctx)
    html = pages.environment().get_template("differences.html.j2").render(**ctx)
    md_path, html_path = out_dir / "differences.md", out_dir / "differences.html"
    results.atomic_write_text(md_path, markdown)
    results.atomic_write_text(html_path, html)
    return md_path, html_path
