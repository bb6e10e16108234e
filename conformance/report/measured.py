"""What one summary.json item proves, as the documentation pages state it: its causes, what was measured
(the size of a divergence, a raise, a NaN), and every figure with the place in summary.json it came from.

A figure is never recomputed: `Figures` reads the recorded value at a path of the item's entry, rounds it
to 3 significant digits for reading and remembers (node id, path, text), so the HTML marks each figure
with its source and tests/report/test_docs.py checks every one against summary.json.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from conformance import numbers
from conformance.report import pages

PAIR = "torch~mindspore"  # the pair the documentation page is about
EVIDENCE_OBSERVED = ("diverge", "nonfinite", "error")


def lookup(entry: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of an item's entry (keys; list indices as integers)."""
    value: Any = entry
    for key in path.split("."):
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


@dataclass(frozen=True)
class Fig:
    """One figure on a page: its text, and the item and path it was read from."""
    text: str
    nodeid: str
    path: str

    def __str__(self) -> str:  # Markdown
        return self.text

    def __html__(self) -> str:  # HTML: the source travels with the figure
        return str(Markup('<span class="fig" data-item="{}" data-path="{}">{}</span>').format(
            self.nodeid, self.path, self.text))


class Figures:
    """Reads figures from entries and keeps the list of every one shown."""

    def __init__(self) -> None:
        self.shown: list[Fig] = []

    def __call__(self, entry: dict[str, Any], path: str) -> Fig:
        fig = Fig(numbers.sig(lookup(entry, path)), entry["nodeid"], path)
        self.shown.append(fig)
        return fig


def item_causes(entry: dict[str, Any]) -> list[str]:
    """The cause ids an item stands for: those attributed by computation when there are any, else the
    ones its case declares (`cause:`), else none."""
    attributed = (entry.get("attribution") or {}).get("causes")
    if attributed:
        return list(attributed)
    declared = entry.get("cause")
    if isinstance(declared, str):
        return [declared]
    return list(declared or [])


def is_search_finding(entry: dict[str, Any]) -> bool:
    """A case written by `python -m conformance search` and not yet reviewed (cases/found/)."""
    return "found/" in str(entry.get("file", "")).replace("\\", "/") or \
        str(entry.get("reason") or "").startswith("FOUND BY SEARCH")


def primary(entry: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The item's primary pair: its label and figures (None, {} for interface items)."""
    return next(((label, p) for label, p in (entry.get("pairs") or {}).items() if p.get("role") == "primary"),
                (None, {}))


def compares_page_pair(entry: dict[str, Any]) -> bool:
    """torch.optim.Adamax against mindspore.nn.AdaMax (not e.g. the experimental optimizer); interface
    items (constructor probes and signatures) concern both."""
    label, _ = primary(entry)
    return label == PAIR or (label is None and ("behaviour" in entry or "api" in entry))


def is_evidence(entry: dict[str, Any]) -> bool:
    """An item that ran, held its declared expectation and shows a torch~mindspore difference."""
    return (entry.get("outcome") == "passed" and entry.get("observed") in EVIDENCE_OBSERVED
            and compares_page_pair(entry) and not is_search_finding(entry))


def conforms(entry: dict[str, Any] | None) -> bool:
    return bool(entry) and entry.get("outcome") == "passed" and entry.get("observed") == "conform"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def ulp_meaningful(first: dict[str, Any] | None) -> bool:
    """A ULP distance says something only between two finite values of one sign, neither zero: across
    zero it counts every float between them (billions for two tiny numbers)."""
    if not first:
        return False
    a, b = first.get("a"), first.get("b")
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False
    return math.isfinite(a) and math.isfinite(b) and a * b > 0


@dataclass
class Size:
    """What an item measured, for the "measured size" cell and the ordering."""
    kind: str  # diverge | nonfinite | error | rejects
    order: float  # max |Δparam|, inf for NaN/Inf, 0 for state-only differences and raises
    loud: bool  # a raise, not a silent divergence
    facts: dict[str, Any]


def size(entry: dict[str, Any], figs: Figures) -> Size:
    """The measured size of an evidence item, every figure read through `figs`."""
    if entry.get("behaviour"):
        rejecting = {fw: b for fw, b in entry["behaviour"].items() if b.get("behaviour") != "accepts"}
        return Size("rejects", 0.0, True, {"rejecting": rejecting, "probe": probe_text(entry.get("probe") or {})})
    if entry.get("error"):
        return Size("error", 0.0, True, {"framework": entry["error"]["framework"], "type": entry["error"]["type"],
                                         "step": figs(entry, "error.step") if entry["error"].get("step") else None,
                                         "message": entry["error"].get("message") or ""})
    first = entry.get("first_divergence") or {}
    if first and not (_finite(first.get("a")) and _finite(first.get("b"))):
        return Size("nonfinite", math.inf, False, {
            "step": figs(entry, "first_divergence.step"), "quantity": first.get("quantity"),
            "tensor": first.get("tensor"), "a": figs(entry, "first_divergence.a"),
            "b": figs(entry, "first_divergence.b")})
    maxima = entry.get("max") or {}
    params = (maxima.get("params") or {}).get("abs") or 0.0
    quantity = "params" if params > 0 else "state"
    facts: dict[str, Any] = {"quantity": quantity, "abs": figs(entry, f"max.{quantity}.abs"),
                             "steps": figs(entry, "steps"), "first_step": figs(entry, "first_divergent_step"),
                             "first": None}
    if first and first.get("quantity") == quantity:
        facts["first"] = {"a": figs(entry, "first_divergence.a"), "b": figs(entry, "first_divergence.b"),
                          "tensor": first.get("tensor"),
                          "ulp": figs(entry, "first_divergence.ulp") if ulp_meaningful(first) else None}
    return Size("diverge", float(params), False, facts)


def probe_text(probe: dict[str, Any]) -> str:
    """A constructor probe in a few words: eps=0.0, param shape=[] dtype=float32, empty_params."""
    parts = []
    for key, value in probe.items():
        if key == "hparams":
            parts += [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, dict):
            parts.append(f"{key} " + " ".join(f"{k}={v}" for k, v in value.items()))
        else:
            parts.append(key if value is True else f"{key}={value}")
    return ", ".join(parts)


def link(entry: dict[str, Any], report: str) -> str:
    """The item's page in the run's HTML report, relative to `report` (the report folder's URL or path)."""
    return f"{report}items/{pages.item_slug(entry)}.html"


def training(entry: dict[str, Any], figs: Figures, pair: tuple[str, str]) -> dict[str, Any]:
    """What a real-training item's `training` block says, every figure read through `figs`: the data set,
    steps, each framework's final loss and accuracy, the mean relative loss gap, and MindFormers' loss
    alignment standard (its text and whether both of its checks held)."""
    block = entry["training"]
    accuracy = block.get("final_accuracy") or {}
    standard = block.get("mindformers") or {}
    return {"entry": entry, "dataset": block.get("dataset"), "steps": figs(entry, "training.steps"),
            "loss": {fw: figs(entry, f"training.final_loss.{fw}") for fw in pair},
            "accuracy": {fw: figs(entry, f"training.final_accuracy.{fw}") for fw in pair}
            if all(accuracy.get(fw) is not None for fw in pair) else None,
            "gap": figs(entry, "training.loss_gap.mean_rel")
            if (block.get("loss_gap") or {}).get("mean_rel") is not None else None,
            "standard": standard.get("standard"),
            "met": bool(standard.get("first_loss_ok")) and bool(standard.get("mean_loss_ok"))}
