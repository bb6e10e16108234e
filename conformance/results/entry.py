"""One summary.json entry: the vocabularies of its fields and the one place that builds one.

Every item of a run, whatever produced it (a numerical item's verdict, an interface probe, a case file
that could not be loaded, an item whose process died), is an entry with the keys of `BLANK`; readers
(the report, the docs page, release compares, merge) rely on them. Keep the names stable.
"""
from __future__ import annotations

import shlex
from typing import Any

from conformance.cases.case import Item

OUTCOMES = ("passed", "failed", "skipped", "error", "crashed")
RAN = ("passed", "failed")  # outcomes of items that produced figures
NOT_RUN = ("skipped", "error", "crashed")  # outcomes of items that produced none
METRICS = ("abs", "rel", "ulp")  # the element-wise distances recorded per quantity

BLANK: dict[str, Any] = {
    "nodeid": None, "case": None, "file": None, "line": None, "device": None, "dtype": None, "expect": None,
    "observed": None, "outcome": None, "reason": None, "steps": 0, "first_divergent_step": None,
    "first_divergence": None, "final": None, "max": None, "pairs": {},
    # msprobe's comparison metrics of the first primary pair at its last and worst step (verdict.PairTracker)
    "msprobe": None,
}


def rerun_command(item: Item) -> str:
    """The command that reruns exactly this item (a generated case file's own command, e.g. a replay's,
    with -k selecting the case)."""
    rerun = getattr(item.case, "rerun", None)  # interface cases (probes, API checks) have none
    if rerun:
        return f"{rerun} -k {shlex.quote(item.case.id)}"
    return f"pytest '{item.nodeid}'"


def entry(**fields: Any) -> dict[str, Any]:
    """An entry with every key of BLANK, `fields` overriding the blanks."""
    return {**BLANK, "pairs": {}, **fields}


def item_entry(item: Item, **fields: Any) -> dict[str, Any]:
    """The entry of an item that ran (or tried to): what its case says, then `fields`."""
    resume = getattr(item.case, "resume", None)  # interface cases have none
    return entry(nodeid=item.nodeid, case=item.case.id, file=item.case.file, line=item.case.line,
                 device=item.device, dtype=item.dtype, expect=item.case.expect,
                 description=item.case.description, rerun=rerun_command(item),
                 **({"resume": {"from": resume.source, "steps": resume.steps}} if resume else {}), **fields)
