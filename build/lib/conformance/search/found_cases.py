"""A finding as a case file under cases/found/: its YAML entry, its reason, and the record the search keeps."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from conformance.cases import causes as causes_registry
from conformance.cases import loader
from conformance.cases.case import Item
from conformance.engine import runner
from conformance.search.scoring import (
    DEPARTED,
    ORACLE_PAIRS,
    OVERFLOW,
    PRIMARY,
    Category,
    _primary_cause,
)


def _fmt_scores(got: dict[str, float]) -> str:
    return ", ".join(f"{k} 1e{v:.1f}" for k, v in got.items())


def finding_record(finding: Finding) -> dict[str, Any]:
    cat = finding.category
    return {"category": cat.key, "check": cat.check, "dtype": cat.dtype, "cause": cat.cause,
            "explained": cat.explained, "fingerprint": finding.fingerprint, "scores": finding.scores,
            "observed": {label: pair["observed"] for label, pair in finding.result.get("pairs", {}).items()},
            "outcome": finding.result["observed"], "entry": finding.entry, "file": None}


def _reason(finding: Finding) -> str:
    cat = finding.category
    if cat.check == "error":
        what = f"{cat.cause.split(':')[0]} raised {cat.cause.split(':')[-1]}"
    elif cat.check == PRIMARY:
        what = "torch and MindSpore diverge"
    else:
        what = f"{cat.check.split('~')[0]} departs from its own formula's float64 oracle"
    known = causes_registry.load()
    if cat.cause_ids:
        why = "attributed: " + "; ".join(f"{c} ({known[c].title})" for c in cat.cause_ids)
    elif cat.cause == OVERFLOW:
        why = "the exact result exceeds the dtype's range, the framework's is infinite"
    elif cat.cause == "unexplained":
        why = "UNEXPLAINED: no known cause reproduces it"
    else:
        why = f"error {cat.cause}"
    return f"FOUND BY SEARCH, needs review: {what} in {cat.dtype} ({why})."


def case_entry(finding: Finding) -> dict:
    """The finding as a ready case: expectations as observed, so it passes until behaviour changes; its
    `cause:` the attributed causes (`unknown` where nothing known explains it)."""
    entry = dict(finding.entry)
    result = finding.result
    cat = finding.category
    entry["id"] = f"found_{cat.check.replace('~', '_')}_{cat.dtype}_{finding.fingerprint}"
    entry["description"] = (f"Found by the divergence search ({cat.key}); scores (log10 of ratio to bound): "
                            f"{_fmt_scores(finding.scores)}.")
    entry["expect"] = "error" if result["observed"] == "error" else result["observed"]
    if entry["expect"] != "conform":
        primary = _primary_cause(result) if entry["expect"] != "error" else cat.cause
        ids = [c for c in primary.split("+") if c in causes_registry.load()]
        entry["cause"] = ids or causes_registry.UNKNOWN
    entry["reason"] = _reason(finding)
    oracle = {label.split("~")[0]: result["pairs"][label]["observed"] for label in ORACLE_PAIRS
              if result.get("pairs", {}).get(label, {}).get("observed") in DEPARTED}
    if oracle and entry["expect"] != "error":
        entry["oracle_expect"] = oracle
    return entry


def write_case(finding: Finding, found_dir: Path, command: str, workdir: Path) -> tuple[Path, str]:
    """Write the finding as found_dir/<id>.yaml unless a case of that fingerprint exists; the case is
    re-run first and must pass. Returns (path, 'written' | 'exists' | 'does not reproduce: ...')."""
    entry = case_entry(finding)
    path = found_dir / f"{entry['id']}.yaml"
    if path.exists():
        return path, "exists"  # never overwrite: an existing file may have been reviewed and edited
    header = (f"# FOUND BY SEARCH — needs review (not reviewed). Finding: {finding.category.key}\n"
              f"# Reproduce the search: {command}\n"
              f"# Fingerprint of the shrunk input: {finding.fingerprint}\n")
    text = case_text(entry, header)
    check = workdir / "check.yaml"
    check.write_text(text, encoding="utf-8")
    (case,) = loader.load_file(check)
    with np.errstate(all="ignore"):
        outcome = runner.run_item(Item(case, "cpu", entry["dtype"]), workdir)
    if outcome["outcome"] != "passed":
        return path, f"does not reproduce: {outcome.get('message', outcome['outcome'])}"
    found_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, "written"


def case_text(entry: dict, header: str = "") -> str:
    return header + yaml.safe_dump({"cases": [entry]}, sort_keys=False, default_flow_style=None, width=110)


@dataclass
class Finding:
    category: Category
    entry: dict
    result: dict
    scores: dict[str, float]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.entry)


def fingerprint(entry: dict) -> str:
    """Stable over runs and machines: the canonical JSON of the input, without its id."""
    data = {k: v for k, v in entry.items() if k not in ("id", "description", "reason", "expect", "oracle_expect",
                                                        "tolerance", "cause")}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
