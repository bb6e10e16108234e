"""What to do about one item's divergence: the causes its divergence is attributed to, each with the
registry's fix (cases/causes.yaml) and its own effect on an attributed step (numerics/attribution.py
`effects`: the largest abs difference without that cause's switch, against the pair's atol), those whose
effect exceeds the tolerance first, then in the docs page's order (report/impact.py order_key); for the
decay name filter, the parameters it skips. Read from the stored entry alone; the item page (a trace's
"What to do for this trace") and `python -m conformance replay`'s summary show the same rows."""
from __future__ import annotations

import math
from typing import Any

from conformance.cases import causes
from conformance.report import impact


def _size(entry: dict[str, Any]) -> float:
    """The item's largest parameter difference (the docs page's measured size; NaN counts as infinite)."""
    params = (entry.get("max") or {}).get("params") or {}
    value = params.get("abs")
    return math.inf if isinstance(value, float) and math.isnan(value) else float(value or 0.0)


def effect(entry: dict[str, Any], cause_id: str) -> dict[str, Any] | None:
    """A cause's largest one-step effect over the attributed steps: {step, params, state, atol: the pair's
    {params, state} atol, beyond: whether it exceeds that atol}; None where none was recorded."""
    attribution = entry.get("attribution") or {}
    found = [dict(e, step=r["step"]) for r in (attribution.get("first"), attribution.get("worst")) if r
             for e in r.get("effects") or () if e["cause"] == cause_id]
    if not found:
        return None
    tolerance = ((entry.get("pairs") or {}).get(attribution.get("pair")) or {}).get("tolerance") or {}
    atol = {q: float((tolerance.get(q) or {}).get("atol") or 0.0) for q in ("params", "state")}
    top = max(found, key=lambda e: max(e["params"] - atol["params"], e["state"] - atol["state"]))
    return {"step": top["step"], "params": top["params"], "state": top["state"], "atol": atol,
            "beyond": top["params"] > atol["params"] or top["state"] > atol["state"]}


def rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attributed cause: id, title, tier, matters_when, fix (None: no fix exists), fix_case,
    its `effect` (see effect), and `skipped` (the parameters a decay filter leaves undecayed, per side) for
    decay_name_filter."""
    found = (entry.get("attribution") or {}).get("causes") or []
    try:
        registry = causes.load()
    except causes.RegistryError:
        registry = {}
    out = []
    for cause_id in found:
        cause, size = registry.get(cause_id), effect(entry, cause_id)
        skipped = entry.get("decay_skipped") or {} if cause_id == "decay_name_filter" else {}
        out.append({"id": cause_id, "title": cause.title if cause else cause_id,
                    "tier": cause.impact.tier if cause else None,
                    "matters_when": cause.matters_when if cause else None,
                    "fix": cause.fix if cause else None, "fix_case": cause.fix_case if cause else None,
                    "effect": size, "skipped": skipped})

    def order(row: dict[str, Any]) -> tuple:
        cause = registry.get(row["id"])
        rank = impact.order_key(row["id"], cause.kind == "validation", _size(entry)) if cause else (9, False, 0.0, "")
        return (row["effect"] is not None and not row["effect"]["beyond"], *rank)

    return sorted(out, key=order)
