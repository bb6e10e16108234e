"""What the report pages show, derived from summary.json entries: groups, environments, slugs, numbers.

Only reads entries; the templates do the layout and jinja2 autoescape escapes every case-supplied string.
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2

from conformance import numbers
from conformance.cases import causes
from conformance.results.entry import NOT_RUN


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """One per process: an Environment caches its compiled templates (a new one per page recompiled
    both templates every time, ~0.02 s a page)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("conformance.report", "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = numbers.num
    env.filters["short"] = numbers.short
    env.filters["sortv"] = numbers.sort_value
    env.filters["slug"] = item_slug
    return env


def item_slug(entry: dict[str, Any]) -> str:
    """File name stem of an item's page: its JSONL's stem, or a safe name made from its node id."""
    if entry.get("jsonl"):
        return Path(entry["jsonl"]).stem
    text = re.sub(r"[^A-Za-z0-9_.=-]+", "_", entry["nodeid"]).strip("_")[:80]
    return f"{text}-{hashlib.sha1(entry['nodeid'].encode()).hexdigest()[:8]}"


def cause_titles() -> dict[str, str]:
    """Cause id -> its registry title; empty when the registry cannot be read (the pages then show ids)."""
    try:
        return {i: c.title for i, c in causes.load().items()}
    except causes.RegistryError:
        return {}


def _titles(ids: list[str]) -> str:
    """Cause ids as their registry titles, ids kept in brackets (an id the registry lacks stays as it is)."""
    known = cause_titles()
    return "; ".join(f"{known[i]} [{i}]" if i in known else i for i in ids)


def cause(entry: dict[str, Any]) -> str:
    """The root cause an item belongs to: the causes its divergence is attributed to (by computation,
    conformance/numerics/attribution.py), else the causes its case declares (errors, NaN/Inf, interface items),
    else why it did not run or failed (a failed item expecting agreement: the causes it is attributed to,
    as a replayed trace's items are)."""
    outcome = entry.get("outcome")
    if outcome in NOT_RUN:
        return f"{outcome}: {entry.get('reason') or 'no reason recorded'}"
    attribution = entry.get("attribution") or {}
    if attribution.get("causes") and outcome == "passed":
        return "attributed: " + _titles(attribution["causes"])
    if entry.get("cause") and entry.get("expect") != "conform" and outcome == "passed":
        return "declared: " + _titles(entry["cause"])
    if entry.get("expect") in ("diverge", "nonfinite", "error") and entry.get("reason"):
        return entry["reason"]
    if outcome == "failed" and attribution.get("causes") and entry.get("expect") == "conform":
        return "diverged where agreement was expected; attributed: " + _titles(attribution["causes"])
    if outcome == "failed":
        return "undeclared divergence: a case expecting agreement diverged, or a framework left its oracle"
    return "no declared difference (cases expecting agreement)"


def cause_groups(items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Groups of items that ran, largest first, then those of items that did not run (skipped and why), and
    a map nodeid -> group id."""
    groups: dict[str, dict[str, Any]] = {}
    for entry in items:
        group = groups.setdefault(cause(entry), {"text": cause(entry), "count": 0, "outcomes": {}, "ran": False})
        group["count"] += 1
        group["outcomes"][entry["outcome"]] = group["outcomes"].get(entry["outcome"], 0) + 1
        group["ran"] |= entry["outcome"] not in NOT_RUN
    ordered = sorted(groups.values(), key=lambda g: (not g["ran"], -g["count"], g["text"]))
    for number, group in enumerate(ordered, 1):
        group["id"] = f"c{number}"
    ids = {text: group["id"] for text, group in groups.items()}
    return ordered, {entry["nodeid"]: ids[cause(entry)] for entry in items}


def environments(run: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One fingerprint per machine run that contributed items (several after a merge), with its devices."""
    origins = run.get("merged_from") or [run]
    out = []
    for origin in origins:
        mine = [e for e in items if (e.get("origin") or {}).get("run", run["id"]) == origin["id"]]
        out.append({**origin, "devices": devices(mine)})
    return out


def devices(items: list[dict[str, Any]]) -> list[str]:
    """Per device: how many items ran and, for skipped ones, why (once)."""
    lines = []
    for device in sorted({e.get("device") for e in items if e.get("device")}):
        mine = [e for e in items if e.get("device") == device]
        ran = sum(e["outcome"] not in NOT_RUN for e in mine)
        skipped = sorted({e.get("reason") or "" for e in mine if e["outcome"] == "skipped"})
        text = f"{device}: {ran} of {len(mine)} items ran"
        if skipped:
            text += "; skipped because " + " / ".join(skipped)
        lines.append(text)
    return lines


def options(items: list[dict[str, Any]], key: str) -> list[str]:
    return sorted({str(e.get(key)) for e in items if e.get(key)})
