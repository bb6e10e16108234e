"""The documentation page "Differences between torch.optim.Adamax and mindspore.nn.AdaMax", built from one
stored run, in the upstream API-mapping page's structure so a docs maintainer can publish it in its place:
title, both signatures as installed, Differences (a verdict and the Categories/.../Difference table),
What to do, Code Example, Edge cases, Evidence; plus an appendix with the details.

One entry per cause of the registry (cases/causes.yaml), never one per case: an item stands for the
causes attributed to it (or its case declares). Every figure is read from the run's summary.json through
measured.Figures; nothing is recomputed. The order of "What to do" is impact.order_key (documented there),
led by how much each cause changed a real training run (`real_training`, from the items' `training` blocks).
"""
from __future__ import annotations

import ast
import os
import textwrap
from pathlib import Path
from typing import Any

from conformance.cases import causes as cause_registry
from conformance.report import impact, markdown, measured, pages
from conformance.report.devices import devices as frameworks_on_devices
from conformance.report.measured import Figures
from conformance.results import storage
from conformance.results.entry import NOT_RUN

PAGE_PAIR = ("torch", "mindspore")  # the page documents torch.optim.Adamax against mindspore.nn.AdaMax
DOC_URLS = {
    "torch.optim.Adamax": "https://pytorch.org/docs/stable/generated/torch.optim.Adamax.html",
    "mindspore.nn.AdaMax": "https://www.mindspore.cn/docs/en/master/api_python/nn/mindspore.nn.AdaMax.html",
    "mindspore.experimental.optim.Adamax": "https://www.mindspore.cn/docs/en/master/api_python/experimental/"
                                           "optim/mindspore.experimental.optim.Adamax.html",
}
UPSTREAM_TORCH_CLASS = "torch.optim.AdaMax"  # what the upstream page calls torch's class

# The upstream page's Difference cells, so this page can say in words where the measurements contradict them.
UPSTREAM = {
    "params": "Consistent function",
    "lr": "Same function, different parameter names and default values",
    "betas": "Same function, different parameter names",
    "eps": "Consistent function",
    "weight_decay": "Consistent function",
    "loss_scale": "MindSpore loss_scale is the gradient scaling factor, and PyTorch does not have this parameter",
}

# Each parameter row of the Differences table: the cases whose agreement shows the parameter maps as the
# table says (case ids; a matrix case by its prefix). The causes acting through a row are the registry's
# (a cause's `parameters`, cases/causes.yaml).
AGREEING: dict[str, tuple[str, ...]] = {
    "params": ("frozen_parameter_missing_gradient",), "lr": ("docs_example_matched", "lr_list_per_step"),
    "betas": ("beta1_power_underflow",), "eps": ("eps_large_gradients_conform",),
    "weight_decay": ("weight_decay_dense_only",), "foreach": ("torch_implementation_switches",),
    "maximize": ("torch_maximize_vs_negated_gradients",), "loss_scale": ("loss_scale_prescaled_gradients",),
}


def acting_causes(concept: str) -> tuple[str, ...]:
    """The registry's causes that act through a Differences row, in registry order."""
    return tuple(c.id for c in cause_registry.load().values() if concept in c.parameters)


# Edge-case topics with a case showing where the two still agree (the edge is narrow).
EDGE_AGREEING = {"float16": "float16_nonzero_gradients", "betas near 1": "beta1_power_underflow"}

# The Code Example's variants: each the case that proves it gives torch's behaviour.
EXAMPLE_CASES = {"matched": "docs_example_matched", "groups": "weight_decay_layernorm_param_groups",
                 "experimental": "experimental_adamax_docs_example_autograd"}


def _value(text: str | None) -> Any:
    try:
        return ast.literal_eval(text) if text is not None else None
    except (ValueError, SyntaxError):
        return text


def signature(spec: dict[str, Any]) -> list[str]:
    """The constructor's parameters as introspected (name=default), `params` first as in the upstream page."""
    return ["params", *(f"{name}={spec['default']}" if spec["default"] is not None else name
                        for name, spec in spec["params"].items())]


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
    return [_row(key, sides, frameworks, api) for key, sides in concepts.items()]


def _combined_default(params: list[tuple[str, str | None, str | None]]) -> Any:
    if len(params) == 1:
        return _value(params[0][1])
    return tuple(_value(p[1]) for p in sorted(params, key=lambda p: p[2] or ""))


def _row(key: str, sides: dict[str, list], frameworks: list[str], api: dict[str, Any]) -> dict[str, Any]:
    names = {fw: [p[0] for p in sides.get(fw, [])] for fw in frameworks}
    present = [fw for fw in frameworks if sides.get(fw)]
    if len(present) < len(frameworks):
        only = "PyTorch" if present == [frameworks[0]] else "MindSpore"
        return {"concept": key, "names": names, "interface": f"{only} only", "defaults": None}
    same_names = len({tuple(n) for n in names.values()}) == 1
    defaults = [_combined_default(sides[fw]) for fw in frameworks]
    same_default = all(d == defaults[0] for d in defaults)
    text = ("same name" if same_names else "different names") + (
        "" if defaults == [None] * len(defaults) else ", same default" if same_default
        else f", different defaults ({' vs '.join(map(str, defaults))})")
    return {"concept": key, "names": names, "interface": text[0].upper() + text[1:], "defaults": defaults}


def real_training(items: list[dict[str, Any]], figs: Figures) -> dict[str, dict[str, Any]]:
    """Per cause, how much it changed a real training run: of the evidence items that trained on a real
    dataset (a summary.json `training` block) and stand for the cause, the one standing for the fewest
    causes (then the larger mean relative loss gap), with its figures read through `figs`: the loss and
    accuracy gaps after its steps, each framework's final loss and held-out accuracy, and the other causes
    it stands for. `order` is its mean relative loss gap, impact.order_key's first measure."""
    found: dict[str, dict[str, Any]] = {}
    trained = [e for e in items if measured.is_evidence(e) and (e.get("training") or {}).get("steps")]
    trained.sort(key=lambda e: (len(measured.item_causes(e)), -(e["training"]["loss_gap"]["mean_rel"] or 0.0),
                                e["nodeid"]))
    for entry in trained:
        causes = measured.item_causes(entry)
        for cause in causes:
            if cause in found:
                continue
            block = entry["training"]
            sides = block["pair"].split("~")
            fig = lambda key: figs(entry, f"training.{key}")
            found[cause] = {"entry": entry, "others": [c for c in causes if c != cause], "dataset": block["dataset"],
                            "sides": sides, "steps": fig("steps"), "mean_rel": fig("loss_gap.mean_rel"),
                            "final_abs": fig("loss_gap.final_abs"), "accuracy_gap": fig("accuracy_gap"),
                            "loss": [fig(f"final_loss.{fw}") if fw in block["final_loss"] else None for fw in sides],
                            "accuracy": [fig(f"final_accuracy.{fw}") if fw in block["final_accuracy"] else None
                                         for fw in sides],
                            "order": block["loss_gap"]["mean_rel"]}
    return found


class Page:
    """Everything both pages show, read once from a summary: items by node id and case, cause entries."""

    def __init__(self, data: dict[str, Any], report: str) -> None:
        self.run, self.items, self.report = data["run"], data["items"], report
        self.figs = Figures()
        self.by_nodeid = {e["nodeid"]: e for e in self.items}
        self.registry = cause_registry.load()
        self.trained = real_training(self.items, self.figs)

    def link(self, entry: dict[str, Any]) -> str:
        return measured.link(entry, self.report)

    def case_items(self, case_id: str) -> list[dict[str, Any]]:
        """Items of a case (a matrix case by its id prefix) that ran, CPU float32 first."""
        mine = [e for e in self.items if e.get("case") == case_id or str(e.get("case", "")).startswith(case_id + ".")]
        ran = [e for e in mine if e.get("outcome") not in NOT_RUN]
        return sorted(ran, key=lambda e: (e.get("device") != "cpu", e.get("dtype") != "float32", e["nodeid"]))

    def agreeing(self, case_id: str) -> dict[str, Any] | None:
        """The case's first item that ran and conformed, with its figures (None if none did)."""
        entry = next((e for e in self.case_items(case_id) if measured.conforms(e)), None)
        return self.proof(entry) if entry else None

    def proof(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A conforming item as shown: link, max |Δparam| and steps (figures from summary.json)."""
        has_params = ((entry.get("max") or {}).get("params") or {}).get("abs") is not None
        return {"entry": entry, "case": entry["case"], "href": self.link(entry),
                "abs": self.figs(entry, "max.params.abs") if has_params else None,
                "steps": self.figs(entry, "steps") if entry.get("steps") else None}

    def cause_entry(self, cause: cause_registry.Cause) -> dict[str, Any]:
        """One cause as the pages show it: the registry's words, the run's evidence, the fix's proof."""
        mine = [e for e in self.items if measured.is_evidence(e) and cause.id in measured.item_causes(e)]
        sized = [(e, measured.size(e, Figures())) for e in mine]
        # the representative item: a controlled one before a training run (whose parameter differences also
        # hold the frameworks' kernels' rounding, compounded by training; its gaps are shown as `trained`),
        # one that shows this cause alone if any, then the largest difference
        sized.sort(key=lambda es: (bool(es[0].get("training")), len(measured.item_causes(es[0])) > 1, es[1].loud,
                                   -es[1].order, es[0]["nodeid"]))
        rep = sized[0][0] if sized else None
        size = measured.size(rep, self.figs) if rep else None
        fix_item = self.by_nodeid.get(cause.fix_case) if cause.fix_case else None
        fix = {"text": cause.fix, "case": cause.fix_case,
               "proof": self.proof(fix_item) if fix_item and measured.conforms(fix_item) else None,
               "outcome": (fix_item or {}).get("outcome", "not in this run") if cause.fix_case else None}
        trained = self.trained.get(cause.id)
        return {"id": cause.id, "anchor": f"cause-{cause.id}", "cause": cause, "impact": impact.impact(cause.id),
                "evidence": [e for e, _ in sized], "rep": rep, "rep_href": self.link(rep) if rep else None,
                "size": size, "fix": fix, "trained": trained,
                "trained_href": self.link(trained["entry"]) if trained else None,
                "key": impact.order_key(cause.id, size.loud if size else True, size.order if size else 0.0,
                                        trained["order"] if trained else None)}

    def entries(self) -> list[dict[str, Any]]:
        return sorted((self.cause_entry(c) for c in self.registry.values()), key=lambda e: e["key"])


def difference_rows(page: Page, api: dict[str, Any], entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The Categories/Subcategories/PyTorch/MindSpore/Difference table: the introspected interface, the
    causes acting through each parameter with their measured case, the cases where it maps cleanly."""
    rows = []
    for number, row in enumerate(mapping(api), 1):
        related, agreeing = acting_causes(row["concept"]), AGREEING.get(row["concept"], ())
        shown = [entries[c] for c in related if c in entries and entries[c]["rep"]]
        proofs = [p for p in (page.agreeing(case) for case in agreeing) if p]
        upstream = UPSTREAM.get(row["concept"])
        contradicted = bool(shown) and upstream == "Consistent function"
        rows.append({**row, "number": number, "causes": shown, "agree": proofs,
                     "upstream": upstream if contradicted else None})
    return rows


def verdict(page: Page, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The one-sentence verdict: the top fix's proof (the same update once fixed), how many of the
    cases built to agree (matched settings) did, and how many causes were measured."""
    first = next((e for e in entries if e["fix"]["proof"]), None)
    matched = [e for e in page.items if e.get("expect") == "conform" and measured.primary(e)[0] == measured.PAIR
               and e.get("outcome") not in NOT_RUN and not measured.is_search_finding(e)]
    return {"first": first, "measured": [e for e in entries if e["rep"]],
            "agree": sum(measured.conforms(e) for e in matched), "matched": len(matched)}


def devices(data: dict[str, Any]) -> dict[str, Any]:
    """Devices measured: items that ran per device (the index's counts) and, per framework and device,
    what ran and what could not with the reasons recorded (report/evidence.devices)."""
    items = data["items"]
    by_side = frameworks_on_devices(data)
    counts = []
    for device in sorted({e["device"] for e in items if e.get("device")}):
        mine = [e for e in items if e.get("device") == device]
        counts.append(f"{device}: {sum(e['outcome'] not in NOT_RUN for e in mine)} of {len(mine)} items ran")
    return {"counts": counts, "measured": by_side["measured"], "not_measured": by_side["not_measured"],
            "gpu_items": any(e.get("device") == "gpu" for e in items)}


def context(data: dict[str, Any], report: str = "", appendix: str = "differences-appendix",
            history: str | None = None, across: str | None = None) -> dict[str, Any]:
    """What the main page and its appendix render. `report`: the run's HTML report folder (URL or path
    ending in /), `appendix`: the appendix's file stem; `history` and `across` fill the Evidence slots
    that other commands produce (a link to "AdaMax behaviour across releases", an "AdaMax across
    frameworks" table in Markdown)."""
    run = data["run"]
    api = {name: spec for name, spec in (run.get("api") or {}).items() if name in PAGE_PAIR}
    if len(api) < 2:
        raise ValueError("this run's summary.json has no run.api for both frameworks; rerun the suite with "
                         "both torch and mindspore installed, then run `docs` on that run")
    page = Page(data, report)
    entries = page.entries()
    by_id = {e["id"]: e for e in entries}
    left, right = PAGE_PAIR
    edge = {topic: [e for e in entries if e["impact"].topic == topic] for topic in impact.EDGE_TOPICS}
    edge_agree = {topic: page.agreeing(case) for topic, case in EDGE_AGREEING.items()}
    experimental = (run.get("api") or {}).get("mindspore_experimental")
    return {
        "title": f"Differences between {api[left]['class']} and {api[right]['class']}", "api": api,
        "left": left, "right": right, "run": run, "report": report, "appendix": appendix,
        "doc_urls": DOC_URLS, "upstream_torch_class": UPSTREAM_TORCH_CLASS,
        "signatures": {fw: signature(api[fw]) for fw in api}, "experimental": experimental,
        "verdict": verdict(page, entries), "rows": difference_rows(page, api, by_id),
        "what_to_do": [e for e in entries if not impact.is_edge(e["id"])], "edge": edge, "entries": entries,
        "edge_agree": edge_agree,
        "examples": {k: page.agreeing(case) for k, case in EXAMPLE_CASES.items()},
        "devices": devices(data), "envs": pages.environments(run, data["items"]),
        "history": history, "across": across, "tiers": impact.TIERS, "figs": page.figs,
        **appendix_context(page, entries),
    }


def appendix_context(page: Page, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The appendix's extra material: items no cause explains, checks of a framework against its own
    formula, search findings awaiting review, agreements, input probes, what did not run."""
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
            "behaviours": behaviours(items), "sources": sources, "link": page.link,
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


def report_href(run_dir: Path, out_dir: Path, report_url: str | None) -> str:
    """Where the pages link the run's HTML report: `report_url` if given, else the run folder relative to
    the pages (so the folder can be moved or published as a whole)."""
    if report_url:
        return report_url.rstrip("/") + "/"
    rel = os.path.relpath(run_dir.resolve(), out_dir.resolve())
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def write_docs(data: dict[str, Any], out_dir: Path, run_dir: Path | None = None, report_url: str | None = None,
               history: str | None = None, across: str | None = None) -> list[Path]:
    """Write differences.md/.html and differences-appendix.md/.html into out_dir; return the paths."""
    report = report_href(run_dir or out_dir, out_dir, report_url)
    ctx = context(data, report=report, history=history, across=across)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, template in (("differences", "differences"), (ctx["appendix"], "differences_appendix")):
        for suffix, env in ((".md", markdown.environment()), (".html", pages.environment())):
            path = out_dir / f"{stem}{suffix}"
            storage.atomic_write_text(path, env.get_template(f"{template}{suffix}.j2").render(**ctx))
            written.append(path)
    return written
