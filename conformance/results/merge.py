"""Several stored runs -> one run folder (e.g. a CPU run here and a GPU run made elsewhere, or shards).

Items are keyed by node id. When two runs hold the same item, an item that ran beats one where only
some checks ran (e.g. a GPU item on a machine without MindSpore: skipped, but its torch~torch@cpu and
torch~oracle pairs hold figures), which beats one where nothing ran; otherwise the run named later wins.
Every item keeps `origin` (the run it
came from) and `also_in` (the runs whose copy it replaced), and its JSONL is linked or copied along,
so the merged folder is self-contained and renders like any run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from conformance.results import storage
from conformance.results.entry import NOT_RUN

SHARED = ("python", "numpy", "torch", "mindspore", "platform", "cpu", "cpu_isa", "cpu_count", "git_commit")


def _ran(entry: dict[str, Any]) -> int:
    """2: the item ran to a verdict; 1: it was skipped or errored, but some pair recorded figures; 0: neither."""
    if entry.get("outcome") not in NOT_RUN:
        return 2
    return 1 if any(pair.get("steps") for pair in (entry.get("pairs") or {}).values()) else 0


def _origins(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The machine runs behind a run (itself, or those it was merged from), without bulky fields."""
    return run.get("merged_from") or [{k: v for k, v in run.items() if k not in ("api", "counts")}]


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def choose(runs: list[tuple[Path, dict[str, Any]]]) -> dict[str, tuple[dict[str, Any], Path]]:
    """nodeid -> (entry with origin/also_in, folder its JSONL lives in)."""
    chosen: dict[str, tuple[dict[str, Any], Path]] = {}
    for run_dir, data in runs:
        for entry in data["items"]:
            entry = {**entry, "origin": entry.get("origin") or {"run": data["run"]["id"], "dir": str(run_dir)}}
            previous = chosen.get(entry["nodeid"])
            if previous is None:
                chosen[entry["nodeid"]] = (entry, run_dir)
                continue
            old = previous[0]
            keep_new = _ran(entry) >= _ran(old)
            winner, loser = (entry, old) if keep_new else (old, entry)
            note = {"run": loser["origin"]["run"], "outcome": loser.get("outcome")}
            winner = {**winner, "also_in": [*old.get("also_in", []), *entry.get("also_in", []), note]}
            chosen[entry["nodeid"]] = (winner, run_dir if keep_new else previous[1])
    return chosen


def merge(run_dirs: list[Path], out_dir: Path) -> dict[str, Any]:
    """Write out_dir/summary.json (and steps/) from run_dirs; return the merged summary."""
    runs = [(Path(d), storage.load_summary(Path(d))) for d in run_dirs]
    if out_dir.resolve() in {d.resolve() for d, _ in runs}:
        raise storage.RunDirError(f"{out_dir}: the output folder must differ from the runs being merged")
    items = []
    for entry, source_dir in choose(runs).values():
        if entry.get("jsonl") and (source_dir / entry["jsonl"]).exists():
            _link_or_copy(source_dir / entry["jsonl"], out_dir / entry["jsonl"])
        items.append(entry)
    origins: list[dict[str, Any]] = []
    for _, data in runs:
        origins += [o for o in _origins(data["run"]) if o["id"] not in {x["id"] for x in origins}]
    run: dict[str, Any] = {
        "id": out_dir.name, "start": min(o["start"] for o in origins), "end": max(o["end"] for o in origins),
        "argv": ["python", "-m", "conformance", "report", *map(str, run_dirs), "--out", str(out_dir)],
        "complete": all(o.get("complete", True) for o in origins),
        "exitstatus": max(int(o.get("exitstatus") or 0) for o in origins), "merged_from": origins,
        "api": runs[0][1]["run"].get("api", {}),
    }
    for key in SHARED:  # a fingerprint field is stated once only when every origin agrees on it
        values = {str(o.get(key)) for o in origins}
        run[key] = origins[0].get(key) if len(values) == 1 else None
    data = storage.summary(run, items)
    storage.write_json(out_dir / "summary.json", data)
    return data
