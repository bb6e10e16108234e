"""HTML report of one run, rendered from summary.json and the stored JSONL alone (never from a re-run).

Layout written into the run folder: index.html (the result first: counts, the causes of the differences
found, what failed; then, folded, the command, the machine and why items did not run; changes since a
reference when the run was compared (changes.json), root causes, the sortable/filterable item table that
fits a 1280-pixel window) and items/<slug>.html (one page per item: case text, repro command, attribution
and what to do, a replayed trace's parameters, first divergence, plots; for a run on a real dataset, its
training figures and loss curves).
"""
from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from conformance.report import advice, changes, frameworks_table, measured, pages
from conformance.report.series import read_curves
from conformance.results import storage
from conformance.results.entry import NOT_RUN


def render_item(run_dir: Path, run: dict[str, Any], entry: dict[str, Any], group: str) -> str:
    """One item's page; its plots are read from its JSONL (streamed) when that file exists."""
    svg, loss, curves = None, None, None
    jsonl = run_dir / entry["jsonl"] if entry.get("jsonl") else None
    if jsonl is not None and jsonl.exists() and entry.get("steps"):
        from conformance.report.plots import (  # matplotlib: imported by the processes that draw, not by every reader
            item_svg,
            loss_svg,
        )

        pair = tuple(entry["training"]["pair"].split("~")) if entry.get("training") else None
        curves = read_curves(jsonl, int(entry["steps"]), loss_pair=pair)
        svg = item_svg(curves, entry, salt=pages.item_slug(entry))
        loss = loss_svg(curves, entry, salt=pages.item_slug(entry))
    return pages.environment().get_template("item.html.j2").render(
        run=run, it=entry, group=group, svg=svg, loss_svg=loss, curves=curves,
        jsonl_missing=jsonl is not None and not jsonl.exists(),
        advice=advice.rows(entry) if entry.get("first_divergent_step") else [])


def search_section(run_dir: Path, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Search section: the run folder's search.json (findings with scores) if the search wrote one
    there, else the items of this run that came from cases/found/ (cases a search wrote)."""
    path = run_dir / "search.json"
    if path.exists():
        data = storage.read_json(path)
        rows = [{"name": f["category"], "explained": f["explained"], "scores": f["scores"],
                 "status": f"{f.get('status') or ''} {f.get('file') or ''}".strip()} for f in data["findings"]]
        return {"source": f"search.json: {data.get('command', '')} — {data['inputs']} inputs, "
                          f"{data['rounds']} rounds, {data['seconds']} s", "rows": rows}
    found = [e for e in items if "found/" in str(e.get("file", "")).replace("\\", "/")]
    if not found:
        return None
    rows = [{"name": e["nodeid"], "explained": "UNEXPLAINED" not in (e.get("reason") or ""), "scores": {},
             "status": f"{e['outcome']}: {e.get('description') or ''}"} for e in found]
    return {"source": "cases under cases/found/ in this run (scores are in each case's description)", "rows": rows}


FAILED = ("failed", "error", "crashed")  # outcomes that need a reader's attention


def result(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The index's first screen: per cause, the items that showed it as their case declared (the causes
    they stand for, measured.item_causes), most first; the items that failed; how many did not run."""
    counts = Counter(c for e in items if e.get("outcome") == "passed" and e.get("expect") != "conform"
                     for c in measured.item_causes(e))
    titles = pages.cause_titles()
    return {"causes": [{"id": i, "title": titles.get(i, i), "count": n}
                       for i, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))],
            "failed": [e for e in items if e.get("outcome") in FAILED],
            "not_run": sum(e.get("outcome") in NOT_RUN for e in items)}


def render_index(run: dict[str, Any], items: list[dict[str, Any]], search: dict[str, Any] | None = None,
                 changes: dict[str, Any] | None = None) -> str:
    groups, group_of = pages.cause_groups(items)
    rows = [{"it": e, "slug": pages.item_slug(e), "group": group_of[e["nodeid"]]} for e in items]
    counts: dict[str, int] = {}
    for entry in items:
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
    return pages.environment().get_template("index.html.j2").render(
        run=run, rows=rows, counts=counts, groups=groups, result=result(items),
        envs=pages.environments(run, items),
        outcomes=pages.options(items, "outcome"), devices=pages.options(items, "device"),
        dtypes=pages.options(items, "dtype"), search=search, changes=changes,
        nway=len(frameworks_table.nway_items(items)))


def _write_item(job: tuple[Path, dict, dict, str]) -> None:
    run_dir, run, entry, cause = job
    html = render_item(run_dir, run, entry, cause)
    storage.atomic_write_text(run_dir / "items" / f"{pages.item_slug(entry)}.html", html)


def write_item_page(run_dir: Path, run_id: str, entry: dict[str, Any]) -> None:
    """One item's page while the run is still going (an xdist worker, right after the item): a page
    needs only its entry, its JSONL, the run id and its root cause, which is its own (pages.cause)."""
    _write_item((run_dir, {"id": run_id}, entry, pages.cause(entry)))


def write_report(run_dir: Path, data: dict[str, Any], drawn: Collection[str] = ()) -> Path:
    """Write run_dir/index.html and run_dir/items/*.html atomically (except the pages of the node ids
    in `drawn`, which write_item_page already wrote); return the index's path."""
    run, items = data["run"], data["items"]
    jobs = [(run_dir, run, entry, pages.cause(entry)) for entry in items if entry["nodeid"] not in drawn]
    workers = min(os.cpu_count() or 1, max(1, len(jobs) // 8))
    if workers > 1:  # plotting dominates; spawn, never fork, a process that may hold MindSpore
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            list(pool.map(_write_item, jobs, chunksize=4))
    else:
        for job in jobs:
            _write_item(job)
    return write_index(run_dir, data)


def write_index(run_dir: Path, data: dict[str, Any]) -> Path:
    """Write run_dir/index.html (and the frameworks table where the run holds N-way items), leaving the item
    pages as they are: after a compare added changes.json."""
    path = run_dir / "index.html"
    items = data["items"]
    html = render_index(data["run"], items, search_section(run_dir, items), changes.section(run_dir, items))
    storage.atomic_write_text(path, html)
    frameworks_table.write(data, run_dir)  # frameworks.md/.html where the run holds N-way items (index links it)
    return path
