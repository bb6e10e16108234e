"""The "Changes since <reference>" section of a run's report, read from the run folder's changes.json.

`python -m conformance compare --into-report` and `python -m conformance validate` write changes.json into
the run they compared (the comparison as compare computed it, and the reference's name), then re-render
that run's index (into_report). The section reads only
that file and the run's own items: one row per item with its compare status, a link to its page, and,
in a merged run, the run it came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.report import pages
from conformance.results import storage

FILE = "changes.json"


def write(run_dir: Path, reference: str, comparison: dict[str, Any]) -> Path:
    """Store a comparison (comparison.Comparison.as_dict()) beside the run it was made for."""
    path = run_dir / FILE
    storage.write_json(path, {"reference": reference, "comparison": comparison})
    return path


def section(run_dir: Path, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the index's Changes section shows, or None when this run was never compared."""
    path = run_dir / FILE
    if not path.exists():
        return None
    data = storage.read_json(path)
    comparison = data["comparison"]
    entries = {e["nodeid"]: e for e in items}
    rows = []
    for change in comparison["items"]:
        entry = entries.get(change["nodeid"])
        rows.append({"nodeid": change["nodeid"], "label": change["label"], "kind": change["kind"],
                     "how": change.get("how") or "", "details": change["details"],
                     "slug": pages.item_slug(entry) if entry else None,
                     "origin": ((entry or {}).get("origin") or {}).get("run")})
    rows.sort(key=lambda r: (r["kind"] == "unchanged", r["nodeid"]))
    env = comparison.get("environment") or {}
    return {"reference": data["reference"], "rows": rows, "counts": comparison.get("label_counts") or {},
            "api": comparison.get("api_changes") or [], "changed": comparison.get("changed"),
            "ignored": env.get("ignored") or [], "material": env.get("can_change_bits") or [],
            "versions": (comparison.get("baseline") or {}).get("versions") or {}}


def into_report(run_dir: Path, reference: str, comparison: dict[str, Any]) -> Path:
    """Store a comparison (Comparison.as_dict()) in the run folder and re-render its index with the
    Changes section."""
    from conformance.report.run_report import write_index

    write(run_dir, reference, comparison)
    return write_index(run_dir, storage.load_summary(run_dir))
