"""How far a drawn case's pairs departed, as scores and categories the search maximises and labels findings by."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from conformance.cases import causes as causes_registry

PRIMARY = "torch~mindspore"


ORACLE_PAIRS = ("torch~oracle", "mindspore~oracle")


SCORE_CAP = 1e30  # ratios are clipped here so log10 stays finite (inf means NaN-vs-number)


def pair_ratio(pair: dict) -> float:
    """How far a pair went past its bound (1 = at the bound), from its running maxima.

    Per quantity min(max abs / atol, max rel / rtol, max ulp / ulp); the maxima may come from different
    elements, so this over-estimates; it is then clamped to agree with the pair's verdict. An oracle
    pair's atol is relative to operand magnitude, which the maxima do not carry: ULP decides there."""
    ratio = 0.0
    oracle = pair["role"] == "oracle"
    for quantity, got in pair["max"].items():
        if not got:
            continue
        bound = pair["tolerance"][quantity]
        parts = [got["ulp"] / bound["ulp"] if bound["ulp"] else math.inf]
        if bound["atol"] and not oracle:
            parts.append(got["abs"] / bound["atol"])
        if bound["rtol"]:
            parts.append(got["rel"] / bound["rtol"])
        ratio = max(ratio, min(parts))
    ratio = max(ratio, 1.0) if pair["observed"] in DEPARTED else min(ratio, 1.0)
    return min(ratio, SCORE_CAP)


DEPARTED = ("diverge", "nonfinite")  # a pair outside its bound, by a finite distance or by NaN/Inf on one side


def log_score(ratio: float) -> float:
    return math.log10(min(max(ratio, 1e-30), SCORE_CAP))


# An oracle departure the harness itself explains: the exact float64 result lies beyond the dtype's range
# and the framework's value is infinite (an overflow, not a difference between implementations).
OVERFLOW = "result-overflows-dtype"


def _primary_cause(result: dict) -> str:
    """The attributed causes of a torch~mindspore divergence (cases/causes.yaml ids, joined by '+'), or
    `unexplained`: found by computation (conformance/numerics/attribution.py), not guessed from the input."""
    attribution = result.get("attribution") or {}
    found = sorted(attribution.get("causes") or [])
    return "+".join(found) if found and attribution.get("explained") else "unexplained"


def _overflow(pair: dict, dtype: str) -> bool:
    """The pair's first departure is an infinity where the float64 value lies beyond the dtype's range."""
    first = pair.get("first_divergence") or {}
    a, b = first.get("a"), first.get("b")
    return a is not None and b is not None and math.isinf(a) and abs(b) >= float(np.finfo(dtype).max)


@dataclass(frozen=True)
class Category:
    check: str  # torch~mindspore | torch~oracle | mindspore~oracle | error
    dtype: str
    cause: str  # a known cause, `unexplained`, or the framework error's type

    @property
    def key(self) -> str:
        return f"{self.check}|{self.dtype}|{self.cause}"

    @property
    def explained(self) -> bool:
        return self.cause != "unexplained"

    @property
    def cause_ids(self) -> list[str]:
        """The registry ids this finding is attributed to (for the found case's `cause:`)."""
        known = causes_registry.load()
        return [c for c in self.cause.split("+") if c in known]


def categories(entry: dict, result: dict) -> list[Category]:
    """Every finding this run holds, most important first: errors, oracle departures, then the primary."""
    dtype = entry["dtype"]
    if result["observed"] == "error":
        error = result.get("error") or {}
        if error.get("step") == 0:  # refused at construction: which inputs each accepts is known ground
            return [Category("error", "any", "input_validation")]
        return [Category("error", dtype, f"{error.get('framework', '?')}:{error.get('type', '?')}")]
    out = []
    for label in ORACLE_PAIRS:  # the oracles model each framework's precision: a departure is unexplained
        pair = result["pairs"].get(label)
        if pair and pair["observed"] in DEPARTED:
            out.append(Category(label, dtype, OVERFLOW if _overflow(pair, dtype) else "unexplained"))
    out.sort(key=lambda c: c.cause != "unexplained")
    primary = result["pairs"].get(PRIMARY)
    if primary and primary["observed"] in DEPARTED:
        out.append(Category(PRIMARY, dtype, _primary_cause(result)))
    return out


def scores(result: dict) -> dict[str, float]:
    """log10 of each check's ratio to its bound (0 = at the bound, > 0 = past it)."""
    return {label: log_score(pair_ratio(pair)) for label, pair in result.get("pairs", {}).items()}
