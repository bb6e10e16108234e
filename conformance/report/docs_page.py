"""The API-mapping page "Differences between torch.optim.Adamax and mindspore.nn.AdaMax", built from one
stored run in the structure of MindSpore's docs pages (title, source badge, both signatures, Differences
with its prose and Categories/Subcategories/PyTorch/MindSpore/Difference table, Code Example), plus What to
do, Edge cases, Loss scaling and Optimizer state, in English and Chinese (the words: docs_words.yaml and
each cause's `zh_cn:` in cases/causes.yaml); and an appendix with the details (English).

This module gathers what the pages say, language-free: one entry per cause of the registry
(cases/causes.yaml), never one per case, an item standing for the causes attributed to it (or its case
declares). Every figure is read from the run's summary.json through measured.Figures; nothing is
recomputed. The order of "What to do" is impact.order_key, led by how much each cause changed a real
training run (`real_training`, from the items' `training` blocks). The pages link evidence (the run's HTML
report) only when told where the report is published; otherwise they name the cases without links.
docs_site.py writes the pages where MindSpore's docs repository keeps them.
"""
from __future__ import annotations

import ast
import textwrap
from typing import Any

from conformance.cases import causes as cause_registry
from conformance.report import devices, impact, measured
from conformance.report.measured import Figures
from conformance.results.entry import NOT_RUN

PAGE_PAIR = ("torch", "mindspore")  # the page documents torch.optim.Adamax against mindspore.nn.AdaMax
DISPLAY = {"torch": "PyTorch", "mindspore": "MindSpore"}  # the frameworks as the page names them
CONTROL = "mindspore_experimental"  # MindSpore's optimizer with torch's formula: the control of a training run

# Each parameter row of the Differences table: the cases whose agreement shows the parameter maps as the
# table says (case ids; a matrix case by its prefix), shown where no cause acts through the row. The
# causes acting through a row are the registry's (a cause's `parameters`, cases/causes.yaml).
AGREEING: dict[str, tuple[str, ...]] = {
    "params": ("frozen_parameter_missing_gradient",), "lr": ("docs_example_matched", "lr_list_per_step"),
    "betas": ("beta1_power_underflow",), "eps": ("eps_large_gradients_conform",),
    "weight_decay": ("weight_decay_dense_only",), "foreach": ("torch_implementation_switches",),
    "maximize": ("torch_maximize_vs_negated_gradients",), "loss_scale": ("loss_scale_prescaled_gradients",),
}
# Edge-case topics with a case showing where the two still agree (the edge is narrow).
EDGE_AGREEING = {"float16": "float16_nonzero_gradients", "betas near 1": "beta1_power_underflow"}
# The Code Example's variants: each the case that proves it gives torch's behaviour.
EXAMPLE_CASES = {"matched": "docs_example_matched", "groups": "weight_decay_layernorm_param_groups",
                 "experimental": "experimental_adamax_docs_example_autograd"}
# Loss scaling: the gradients multiplied by loss_scale agree, without and with weight decay.
LOSS_SCALE_CASES = {"proof": "loss_scale_prescaled_gradients", "proof_wd": "loss_scale_with_weight_decay"}
SMALLEST_SHOWN_BELOW = 0.1  # a cause's smallest measured difference is shown beside its largest below this ratio


def acting_causes(concept: str) -> tuple[str, ...]:
    """The registry's causes that act through a Differences row, in registry order."""
    return tuple(c.id for c in cause_registry.load().values() if concept in c.parameters)


def _value(text: str | None) -> Any:
    try:
        return ast.literal_eval(text) if text is not None else None
    except (ValueError, SyntaxError):
        return text


def signature(spec: dict[str, Any]) -> list[str]:
    """The constructor's parameters as introspected (name=default), `params` first as on MindSpore's pages,
    and `*` before the first keyword-only one."""
    out = ["params"]
    for name, param in spec["params"].items():
        if param.get("keyword_only") and "*" not in out:
            out.append("*")
        out.append(f"{name}={param['default']}" if param["default"] is not None else name)
    return out


def mapping(api: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows joining each framework's constructor parameters by their neutral meaning, `params` first."""
    frameworks = list(api)
    concepts: dict[str, dict[str, list[tuple[str, str, str | None]]]] = {
        "params": {fw: [("params", None, "params")] for fw in frameworks}}
    for framework in frameworks:
        for native, spec in api[framework]["params"].items():
            neutral = spec.get("neutral")
            key = neutral.split("[")[0] if neutral else native
            concepts.setdefault(key, {}).setdefault(framework, []).append((native, spec["default"], neutral))
    return [_row(key, sides, frameworks) for key, sides in concepts.items()]


def _combined_default(params: list[tuple[str, str | None, str | None]]) -> Any:
    if len(params) == 1:
        return _value(params[0][1])
    return tuple(_value(p[1]) for p in sorted(params, key=lambda p: p[2] or ""))


def _row(key: str, sides: dict[str, list], frameworks: list[str]) -> dict[str, Any]:
    """One row: the names on each side and how the interface compares, as a key of docs_words.yaml."""
    names = {fw: [p[0] for p in sides.get(fw, [])] for fw in frameworks}
    present = [fw for fw in frameworks if sides.get(fw)]
    if len(present) < len(frameworks):
        only = "pytorch_only" if present == [frameworks[0]] else "mindspore_only"
        return {"concept": key, "names": names, "interface": only, "defaults": None}
    defaults = [_combined_default(sides[fw]) for fw in frameworks]
    same_names = len({tuple(n) for n in names.values()}) == 1
    if all(d == defaults[0] for d in defaults):
        interface = "same_parameter" if same_names else "different_names"
    else:
        interface = "different_defaults"
    return {"concept": key, "names": names, "interface": interface,
            "defaults": " vs ".join(map(str, defaults)) if interface == "different_defaults" else None}


def cpu_float32_first(entry: dict[str, Any]) -> tuple[bool, bool, str]:
    """Sort key: the item a page quotes first, among a case's items (its figures are CPU float32 figures)."""
    return entry.get("device") != "cpu", entry.get("dtype") != "float32", entry["nodeid"]


def real_training(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per cause, how much it changed a real training run: of the evidence items that trained on a real
    dataset (a summary.json `training` block) and stand for the cause, the one standing for the fewest
    causes (then the larger mean relative loss gap), with the other causes it stands for. `order` is its
    mean relative loss gap, impact.order_key's first measure (the page quotes the figures: Page._training)."""
    found: dict[str, dict[str, Any]] = {}
    # is_evidence: the page's pair only (a training run of another pair says nothing of its two optimizers)
    trained = [e for e in items if measured.is_evidence(e) and (e.get("training") or {}).get("steps")]
    trained.sort(key=lambda e: (len(measured.item_causes(e)), -(e["training"]["loss_gap"]["mean_rel"] or 0.0),
                                e["nodeid"]))
    for entry in trained:
        causes = measured.item_causes(entry)
        for cause in causes:
            if cause not in found:
                found[cause] = {"entry": entry, "others": [c for c in causes if c != cause],
                                "order": entry["training"]["loss_gap"]["mean_rel"]}
    return found


class Page:
    """Everything the pages show, read once from a summary: items by node id and case, cause entries."""

    def __init__(self, data: dict[str, Any], report: str | None) -> None:
        self.run, self.items, self.report = data["run"], data["items"], report
        self.figs = Figures()
        self.by_nodeid = {e["nodeid"]: e for e in self.items}
        self.registry = cause_registry.load()
        self.trained = real_training(self.items)

    def link(self, entry: dict[str, Any]) -> str | None:
        """The item's page in the published report; None when no report URL was given (no local links)."""
        return measured.link(entry, self.report) if self.report else None

    def case_items(self, case_id: str) -> list[dict[str, Any]]:
        """Items of a case (a matrix case by its id prefix) that ran, CPU float32 first."""
        mine = [e for e in self.items if e.get("case") == case_id or str(e.get("case", "")).startswith(case_id + ".")]
        return sorted((e for e in mine if e.get("outcome") not in NOT_RUN), key=cpu_float32_first)

    def agreeing(self, case_id: str) -> dict[str, Any] | None:
        """The case's first item that ran and conformed, with its figures (None if none did)."""
        entry = next((e for e in self.case_items(case_id) if measured.conforms(e)), None)
        return self.proof(entry) if entry else None

    def proof(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A conforming item as shown: the entry, its link, max |Δparam| and steps (figures from summary.json)."""
        has_params = ((entry.get("max") or {}).get("params") or {}).get("abs") is not None
        return {"entry": entry, "case": entry["case"], "href": self.link(entry),
                "abs": self.figs(entry, "max.params.abs") if has_params else None,
                "steps": self.figs(entry, "steps") if entry.get("steps") else None}

    def cause_entry(self, cause: cause_registry.Cause) -> dict[str, Any]:
        """One cause as the pages show it: the registry's words, the run's evidence, the fix's proof."""
        mine = [e for e in self.items if measured.is_evidence(e) and cause.id in measured.item_causes(e)]
        sized = [(e, measured.size(e, Figures())) for e in mine]
        # the representative item: a controlled one before a training run (whose parameter differences also
        # hold the frameworks' kernels' rounding, compounded by training; the page quotes its `training`
        # block apart), one that shows this cause alone if any, then the largest difference, then a case of
        # its own over a cross-framework matrix's (whose pages compare many pairs)
        sized.sort(key=lambda es: (bool(es[0].get("training")), len(measured.item_causes(es[0])) > 1, es[1].loud,
                                   -es[1].order, len(es[0].get("frameworks") or ()) > 2, es[0]["nodeid"]))
        rep = sized[0][0] if sized else None
        size = measured.size(rep, self.figs) if rep else None
        fix_item = self.by_nodeid.get(cause.fix_case) if cause.fix_case else None
        proven = self.proof(fix_item) if fix_item and measured.conforms(fix_item) else None
        fix = {"case": cause.fix_case, "proof": proven,
               "outcome": (fix_item or {}).get("outcome", "not in this run") if cause.fix_case else None}
        trained = self.trained.get(cause.id)
        return {"id": cause.id, "anchor": f"cause-{cause.id}", "cause": cause, "impact": impact.impact(cause.id),
                "evidence": [e for e, _ in sized], "rep": rep, "size": size, "smallest": self._smallest(sized, size),
                "fix": fix, "training": self._training(cause.id),
                "key": impact.order_key(cause.id, size.loud if size else True, size.order if size else 0.0,
                                        trained["order"] if trained else None)}

    def _smallest(self, sized: list[tuple[dict[str, Any], measured.Size]], size: measured.Size | None):
        """The cause's smallest measured difference among items showing it alone, when far below the largest
        (loss_scale without weight decay against with it; eps with exact-zero gradients: the state only)."""
        if not size or size.kind != "diverge" or not size.order:
            return None
        alone = [(e, s) for e, s in sized if s.kind == "diverge" and len(measured.item_causes(e)) == 1]
        if not alone:
            return None
        entry, small = min(alone, key=lambda es: (es[1].order, len(es[0].get("frameworks") or ()) > 2, es[0]["nodeid"]))
        if small.order >= SMALLEST_SHOWN_BELOW * size.order:
            return None
        return {"entry": entry, "size": measured.size(entry, self.figs)}

    def _training(self, cause_id: str) -> list[dict[str, Any]]:
        """The real-training run quoted for this cause (none or one): the one `real_training` picked, the run
        on a real dataset showing the cause beside the fewest others, with those others named. One run per
        cause: a run that leaves three causes unfixed says little about any one of them."""
        found = self.trained.get(cause_id)
        if not found:
            return []
        control = self.control(found["entry"])
        return [{**measured.training(found["entry"], self.figs, PAGE_PAIR),
                 "others": [self.registry[c] for c in found["others"] if c in self.registry],
                 "control": self.figs(control, "training.loss_gap.mean_rel") if control else None}]

    def control(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The control of a training run: a conforming training item whose torch side is the same run (the
        same dataset and steps, and a bit-identical final torch loss: same model, weights, batches and torch
        hyper-parameters) against a MindSpore optimizer with torch's formula. Its loss gap is what the two
        frameworks' autograd kernels alone leave: a cause's gap near it costs nothing measurable."""
        left = PAGE_PAIR[0]
        block = entry["training"]
        for other in self.items:
            theirs = other.get("training") or {}
            if (other is not entry and measured.conforms(other) and theirs.get("pair") == f"{left}~{CONTROL}"
                    and theirs.get("dataset") == block.get("dataset")
                    and theirs.get("steps") == block.get("steps")
                    and (theirs.get("final_loss") or {}).get(left) == (block.get("final_loss") or {}).get(left)
                    and (theirs.get("loss_gap") or {}).get("mean_rel") is not None):
                return other
        return None

    def entries(self) -> list[dict[str, Any]]:
        return sorted((self.cause_entry(c) for c in self.registry.values()), key=lambda e: e["key"])


def _row_evidence(concept: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The item a Differences row names for a cause: one whose case is about this parameter (the
    differentiable row names the differentiable case, not the capturable one), else the cause's own."""
    about = [e for e in entry["evidence"] if concept in str(e.get("case", ""))]
    return (about or [entry["rep"]])[0]


def difference_rows(page: Page, api: dict[str, Any], entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Categories/Subcategories/PyTorch/MindSpore/Difference table: the introspected interface, the
    causes acting through each parameter with the case that measured each, and, where none acts, the cases
    where the parameter maps cleanly."""
    rows = []
    for number, row in enumerate(mapping(api), 1):
        shown = [{**entries[c], "item": _row_evidence(row["concept"], entries[c])}
                 for c in acting_causes(row["concept"]) if c in entries and entries[c]["rep"]]
        proofs = [] if shown else [p for p in (page.agreeing(case) for case in AGREEING.get(row["concept"], ())) if p]
        rows.append({**row, "number": number, "causes": shown, "agree": proofs})
    return rows


def state_proof(page: Page, source: str) -> dict[str, Any] | None:
    """A resume item (a case's `resume:`) that trained its first steps in `source` alone, converted the
    optimizer state and continued in both frameworks, and conformed: what Optimizer state quotes."""
    resumed = [e for e in page.items if (e.get("resume") or {}).get("from") == source and measured.conforms(e)
               and measured.compares_page_pair(e)]
    entry = min(resumed, key=cpu_float32_first, default=None)
    return {**page.proof(entry), "trained": page.figs(entry, "resume.steps")} if entry else None


def lr_defaults(api: dict[str, Any]) -> dict[str, str] | None:
    """Each framework's default learning rate as introspected (None unless each has one `lr` parameter)."""
    found = {fw: [p["default"] for p in spec["params"].values() if p.get("neutral") == "lr"]
             for fw, spec in api.items()}
    return {fw: d[0] for fw, d in found.items()} if all(len(d) == 1 for d in found.values()) else None


def context(data: dict[str, Any], report: str | None = None, local_report: str = "") -> dict[str, Any]:
    """What the pages render, in every language. `report`: where the run's HTML report is published (a URL
    ending in /), or None: the main pages then name cases without linking them; the appendix, which lives
    beside the report, links items under `report` or else under `local_report` (a relative path)."""
    run = data["run"]
    api = {name: spec for name, spec in (run.get("api") or {}).items() if name in PAGE_PAIR}
    if len(api) < 2:
        raise ValueError("this run's summary.json has no run.api for both frameworks; rerun the suite with "
                         "both torch and mindspore installed, then run `docs` on that run")
    page = Page(data, report)
    entries = page.entries()
    by_id = {e["id"]: e for e in entries}
    left, right = PAGE_PAIR
    return {
        "api": api, "left": left, "right": right, "run": run, "report": report, "display": DISPLAY,
        "signatures": {fw: signature(api[fw]) for fw in api}, "notices": api[right].get("notices") or [],
        "experimental": (run.get("api") or {}).get("mindspore_experimental"),
        "matched": by_id["default_lr"]["fix"]["proof"] if "default_lr" in by_id else None,
        "lr_defaults": lr_defaults(api),
        "rows": difference_rows(page, api, by_id), "entries": entries,
        "what_to_do": [e for e in entries if not impact.is_edge(e["id"])],
        # MindFormers' standard as the quoted training runs state it: the page states it once
        "standard": next((t["standard"] for e in entries for t in e["training"] if t["standard"]), None),
        "edge": {topic: [e for e in entries if e["impact"].topic == topic] for topic in impact.EDGE_TOPICS},
        "edge_agree": {topic: page.agreeing(case) for topic, case in EDGE_AGREEING.items()},
        "examples": {k: page.agreeing(case) for k, case in EXAMPLE_CASES.items()},
        "loss_scale": {k: page.agreeing(case) for k, case in LOSS_SCALE_CASES.items()},
        "state_proof": state_proof(page, left),
        "scope": devices.scope(data, PAGE_PAIR), "figs": page.figs, "link": page.link,
        "tiers": impact.TIERS, **appendix_context(page, report or local_report),
    }


def appendix_context(page: Page, report: str) -> dict[str, Any]:
    """The appendix's extra material: items no cause explains, checks of a framework against its own
    formula, search findings awaiting review, agreements, input probes, what did not run; its links to
    item pages go under `report`."""
    items = page.items
    ran = [e for e in items if e.get("outcome") not in NOT_RUN]
    unexplained = [e for e in ran if e.get("outcome") == "failed" or "unknown" in measured.item_causes(e)
                   or (e.get("attribution") or {}).get("explained") is False
                   or (measured.is_evidence(e) and not measured.item_causes(e))]  # declared, but no cause id
    own_formula = [(e, label, p) for e in ran for label, p in (e.get("pairs") or {}).items()
                   if p.get("role") == "oracle" and p.get("observed") not in (None, "conform")]
    search = [e for e in ran if measured.is_search_finding(e)]
    agree = [e for e in ran if measured.conforms(e) and measured.primary(e)[0] and not measured.is_search_finding(e)]
    sources: dict[str, str] = {}
    for entry in items:
        if entry.get("source") and entry["case"] not in sources:
            sources[entry["case"]] = textwrap.dedent(entry["source"]).strip("\n")
    return {"unexplained": unexplained, "own_formula": own_formula, "search": search, "agreements": agree,
            "behaviours": behaviours(items), "sources": sources, "item_href": lambda e: measured.link(e, report),
            "ulp_ok": measured.ulp_meaningful, "causes_of": measured.item_causes,
            "not_run": [e for e in items if e.get("outcome") in NOT_RUN], "primary": measured.primary}


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
        rows.append({"entry": entry, "case": entry["case"], "description": entry.get("description") or shown,
                     "same": entry.get("observed") == "conform", **said})
    return sorted(rows, key=lambda r: (r["same"], r["case"]))
