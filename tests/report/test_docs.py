"""The documentation page (`python -m conformance docs`): structure, order and figures.

Most tests render the page from a summary.json written here (the page reads stored results only, so a
summary is its whole input); one renders it from the real tiny run. The cause registry is the real
cases/causes.yaml, and the fix cases are the node ids it names.
"""
from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance import numbers
from conformance.cases import causes
from conformance.report import docs_page, impact, measured
from conformance.report.markdown import md
from conformance.report.run_report import render_index
from conformance.results.entry import training_entry

API = {
    "torch": {"class": "torch.optim.Adamax", "params": {
        "lr": {"default": "0.002", "neutral": "lr"}, "betas": {"default": "(0.9, 0.999)", "neutral": "betas"},
        "eps": {"default": "1e-08", "neutral": "eps"}, "weight_decay": {"default": "0", "neutral": "weight_decay"},
        "foreach": {"default": "None", "neutral": None}, "maximize": {"default": "False", "neutral": None}}},
    "mindspore": {"class": "mindspore.nn.AdaMax", "params": {
        "learning_rate": {"default": "0.001", "neutral": "lr"}, "beta1": {"default": "0.9", "neutral": "betas[0]"},
        "beta2": {"default": "0.999", "neutral": "betas[1]"}, "eps": {"default": "1e-08", "neutral": "eps"},
        "weight_decay": {"default": "0.0", "neutral": "weight_decay"},
        "loss_scale": {"default": "1.0", "neutral": None}}},
}
RUN = {"id": "r1", "start": "2026-11-30T04:00:00Z", "end": "2026-11-30T04:05:00Z", "complete": True,
       "python": "3.11.7", "numpy": "1.26.4", "torch": "2.13.0+cpu", "mindspore": "2.10.0", "platform": "Linux",
       "cpu": "Xeon", "cpu_count": 2, "git_commit": "abc", "api": API}
TOL = {"params": {"atol": 2.5e-7, "rtol": 0.0, "ulp": 4.0}, "state": {"atol": 1e-6, "rtol": 0.0, "ulp": 4.0},
       "loss": {"atol": 0.0, "rtol": 0.0, "ulp": 16.0}}


def item(nodeid: str, expect: str = "diverge", observed: str | None = None, cause=(), outcome: str = "passed",
         params: float = 1.23456e-3, state: float = 4.5e-5, steps: int = 50, first: tuple | None = (1, 0.5, 0.501),
         pair: str = "torch~mindspore", **extra) -> dict:
    """One summary.json entry as verdict.judge writes it."""
    file, rest = nodeid.split("::")
    case, params_id = rest.split("[")
    device, dtype = params_id.rstrip("]").split("-")
    observed = observed or expect
    metric = {"params": {"abs": params, "rel": params, "ulp": 12.0}, "state": {"abs": state, "rel": state, "ulp": 3.0},
              "loss": None}
    divergence = None
    if first and observed != "conform":
        step, a, b = first
        divergence = {"step": step, "quantity": "params", "tensor": "dense0.weight", "at": [0, 1], "a": a, "b": b,
                      "abs": abs(a - b) if a == a and b == b else float("inf"), "rel": 0.002, "ulp": 33554.0,
                      "bad": 3, "tolerance": TOL["params"], "nonfinite": None}
    entry = {"nodeid": nodeid, "case": case, "file": file, "line": 3, "device": device, "dtype": dtype,
             "expect": expect, "observed": observed, "outcome": outcome, "reason": None if expect == "conform" else "r",
             "cause": list(cause), "description": "d", "source": f"- id: {case}\n  expect: {expect}\n",
             "steps": steps, "requested_steps": steps,
             "first_divergent_step": divergence["step"] if divergence else None, "first_divergence": divergence,
             "final": metric, "max": metric, "rerun": f"pytest '{nodeid}'",
             "hparams": {side: {"lr": 0.002} for side in pair.split("~")},
             "pairs": {pair: {"role": "primary", "expect": expect, "observed": observed, "tolerance": TOL,
                              "max": metric, "final": metric, "first_divergence": divergence}},
             "nonfinite": {"torch": {"params": None, "state": None, "loss": None},
                           "mindspore": {"params": None, "state": None, "loss": None}}}
    entry.update(extra)
    return entry


def summary() -> dict:
    """A run with evidence for every cause of the registry and every fix case conforming."""
    registry = causes.load()
    items = [
        item("cases/docs_example.yaml::docs_example_defaults[cpu-float32]", cause=["default_lr"], params=0.0500008,
             first=(1, -0.3235707, -0.3245707)),
        item("cases/eps_placement.yaml::eps_small_gradients[cpu-float32]", cause=["eps_placement"], params=1.4117e-4,
             first=(1, 2.6e-8, 1.6e-8)),
        item("cases/dtypes.yaml::float16_zero_gradient_nan[cpu-float16]", expect="nonfinite",
             cause=["eps_placement", "float16_rounding"], params=float("inf"), first=(1, float("nan"), 0.365),
             reason=None),
        item("cases/weight_decay.yaml::weight_decay_layernorm_gamma_beta_skipped[cpu-float32]",
             cause=["decay_name_filter"], params=8.745e-3, first=(1, 0.998, 1.002)),
        item("cases/loss_scale.yaml::loss_scale_unscaled_gradients[cpu-float32]", cause=["loss_scale_division"],
             params=1.31e-6),
        item("cases/long_horizon.yaml::long_horizon_beta1_0999_10k[cpu-float32]", cause=["float32_scalars"],
             params=1.07e-6, steps=10000, first=(2533, 0.15004970, 0.15004995)),
        item("cases/dtypes.yaml::float64_mindspore_computes_in_float32[cpu-float64]",
             cause=["float64_in_float32", "float32_scalars"], params=2.08e-7),
        item("cases/zero_and_missing_gradients.yaml::parameter_unfrozen_after_10_steps[cpu-float32]",
             cause=["global_vs_per_parameter_step"], params=7.97e-3, first=(11, -0.0384, -0.0367)),
        item("cases/nonfinite_gradients.yaml::nan_gradient_at_step_5[cpu-float32]", expect="nonfinite",
             cause=["nan_dropped_by_max"], params=0.0, first=(5, float("nan"), 0.87)),
        item("cases/nonfinite_gradients.yaml::inf_gradient_at_step_5[cpu-float32]", cause=["lerp_vs_mul_add"],
             params=0.0, first=(6, float("nan"), float("inf"))),
        item("cases/lr_schedules.yaml::cosine_schedule_past_period[cpu-float32]", cause=["schedule_past_period"],
             params=0.0175, first=(22, 0.0246, 0.0245)),
        item("cases/lr_schedules.yaml::lr_list_shorter_than_steps[cpu-float32]", expect="error",
             cause=["lr_list_shorter_than_steps"], first=None, steps=5,
             error={"framework": "mindspore", "step": 6, "type": "RuntimeError", "message": "Gather out of range"}),
        item("cases/torch_variants.yaml::torch_capturable_on_cpu[cpu-float32]", expect="error",
             cause=["torch_option_constraints"], first=None, steps=0,
             error={"framework": "torch", "step": 1, "type": "AssertionError", "message": "capturable"}),
        {"nodeid": "cases/input_validation.yaml::validation_eps_zero[cpu-float32]", "case": "validation_eps_zero",
         "file": "cases/input_validation.yaml", "line": 5, "device": "cpu", "dtype": "float32", "expect": "diverge",
         "observed": "diverge", "outcome": "passed", "reason": "eps > 0", "cause": ["input_validation"],
         "description": "eps = 0", "steps": 0, "first_divergent_step": None, "first_divergence": None,
         "final": None, "max": None, "rerun": "pytest x", "probe": {"hparams": {"eps": 0.0}},
         "behaviour": {"torch": {"behaviour": "accepts"},
                       "mindspore": {"behaviour": "raises", "type": "ValueError", "message": "eps must > 0"}}},
        item("cases/replay.yaml::replay_matched_1000[cpu-float32]", expect="conform", params=5.96e-8, steps=1000),
        item("cases/replay.yaml::replay_matched_1000[gpu-float32]", expect="conform", outcome="skipped",
             observed="skipped", reason="torch has no CUDA device on this machine", hparams={},
             skipped_sides={"torch": "torch has no CUDA device on this machine",
                            "mindspore": "MindSpore GPU needs an NVIDIA GPU and driver"}),
    ]
    for cause in registry.values():
        if cause.fix_case:
            pair = "torch~mindspore_experimental" if "experimental" in cause.fix_case else "torch~mindspore"
            items.append(item(cause.fix_case, expect="conform", params=3.3527e-8, steps=200, pair=pair))
    for case in ("docs_example_matched", "experimental_adamax_docs_example_autograd"):
        nodeid = f"cases/x.yaml::{case}[cpu-float32]"
        if all(e["case"] != case for e in items):
            items.append(item(nodeid, expect="conform", params=2.98e-8, steps=100))
    return {"run": copy.deepcopy(RUN), "items": items}


def render(tmp_path: Path, data: dict | None = None) -> dict[str, str]:
    data = data or summary()
    (tmp_path / "summary.json").write_text(json.dumps(data))
    paths = docs_page.write_docs(data, tmp_path / "docs", run_dir=tmp_path)
    return {p.name: p.read_text(encoding="utf-8") for p in paths}


class Figs(HTMLParser):
    """Every <span class="fig"> of a page with its data-item, data-path and text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str]] = []
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and attrs.get("class") == "fig":
            self._open = {"item": attrs["data-item"], "path": attrs["data-path"], "text": ""}

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.found.append(self._open)
            self._open = None


def figures(html: str) -> list[dict[str, str]]:
    parser = Figs()
    parser.feed(html)
    return parser.found


def section(html: str, start: str, end: str) -> str:
    return html.split(start, 1)[1].split(end, 1)[0]


def what_to_do_rows(html: str) -> list[tuple[str, str]]:
    """(cause id, row html) of the What to do table, in page order."""
    body = section(html, '<table id="what">', "</table>")
    return re.findall(r'<tr id="cause-[^"]+" data-cause="([^"]+)">(.*?)</tr>', body, re.S)


def test_every_registry_cause_has_an_impact_tier():
    text = ("causes:\n  - {id: x, title: t, kind: validation, mechanism: m, matters_when: w, fix: null, "
            "fix_case: null}\n")
    with pytest.raises(causes.RegistryError, match="'impact' is a required property"):
        causes.parse(text, "test.yaml")
    tier4 = text.replace("fix_case: null}", "fix_case: null, impact: {tier: 4, why: w}}")
    with pytest.raises(causes.RegistryError, match="'topic' is a required property"):
        causes.parse(tier4, "test.yaml")
    assert all(c.impact.tier in causes.TIERS for c in causes.load().values())
    with pytest.raises(KeyError, match="no_such_cause"):
        impact.impact("no_such_cause")


def test_default_lr_row_comes_before_eps_placement_and_rows_follow_the_measure(tmp_path):
    html = render(tmp_path)["differences.html"]
    order = [cause for cause, _ in what_to_do_rows(html)]
    assert order[0] == "default_lr"
    assert order.index("default_lr") < order.index("decay_name_filter") < order.index("eps_placement")
    tiers = [impact.impact(c).tier for c in order]
    assert tiers == sorted(tiers) and 4 not in tiers
    # within a tier: silent before loud (the raise comes last in tier 3)
    assert order[-1] == "lr_list_shorter_than_steps"


def test_each_cause_appears_once_never_one_entry_per_case(tmp_path):
    pages = render(tmp_path)
    html, markdown = pages["differences.html"], pages["differences.md"]
    registry = causes.load()
    entries = re.findall(r'data-cause="([^"]+)"', html)
    assert sorted(entries) == sorted(registry)  # What to do rows + Edge cases: each cause exactly once
    for cause_id, cause in registry.items():
        assert markdown.count(f'<a id="cause-{cause_id}"></a>') == 1
        assert markdown.count(f"{md(cause.title)} |") <= 1
    # eps_placement has two cases (eps_small_gradients, float16_zero_gradient_nan): still one row
    assert len([c for c, _ in what_to_do_rows(html) if c == "eps_placement"]) == 1
    assert "### " not in section(markdown, "## What to do", "## Code Example")


def test_every_fix_names_a_conforming_case_that_ran(tmp_path):
    data = summary()
    fix_case = causes.load()["decay_name_filter"].fix_case
    failed = next(e for e in data["items"] if e["nodeid"] == fix_case)
    failed.update(outcome="failed", observed="diverge")
    html = render(tmp_path, data)["differences.html"]
    by_nodeid = {e["nodeid"]: e for e in data["items"]}
    proven = 0
    for cause_id, row in what_to_do_rows(html):
        proof = re.search(r'<td class="proof">(.*?)</td>', row, re.S).group(1)
        links = re.findall(r'href="[^"]*items/([^"]+)\.html"', proof)
        cause = causes.load()[cause_id]
        if cause_id == "decay_name_filter":
            assert not links and "not proven here" in proof and "failed" in proof
            continue
        if cause.fix and cause.fix_case:
            (slug,) = links
            entry = by_nodeid[cause.fix_case]
            assert slug == docs_page.pages.item_slug(entry) and measured.conforms(entry)
            proven += 1
        else:
            assert not links
    assert proven >= 4


def test_no_declared_case_is_called_undeclared(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    appendix = section(pages["differences-appendix.md"], "## Divergences no cause explains", "## Checks of")
    assert "None in this run" in appendix
    for text in pages.values():
        assert "Undeclared" not in text and "undeclared" not in text
    # the nonfinite and error items are declared differences in the index too, under their cause
    index = render_index(data["run"], data["items"])
    groups = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">", section(index, '<table id="causes">', "</table>"))
    for cause_id in ("nan_dropped_by_max", "lr_list_shorter_than_steps"):
        assert any(g.startswith("declared") and f"[{cause_id}]" in g for g in groups), groups
    assert not any("undeclared" in g for g in groups)


def test_an_undeclared_divergence_is_listed_as_unexplained_not_as_a_cause(tmp_path):
    data = summary()
    data["items"].append(item("cases/x.yaml::surprise[cpu-float32]", expect="conform", observed="diverge",
                              outcome="failed", message="expected conform, observed diverge"))
    pages = render(tmp_path, data)
    assert "surprise" not in pages["differences.md"]
    assert "surprise" in section(pages["differences-appendix.md"], "## Divergences no cause explains", "## Checks of")


def test_every_figure_on_the_page_equals_the_one_in_summary_json(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    by_nodeid = {e["nodeid"]: e for e in data["items"]}
    shown = figures(pages["differences.html"])
    assert len(shown) > 20
    for fig in shown:
        value = measured.lookup(by_nodeid[fig["item"]], fig["path"])
        assert fig["text"] == numbers.sig(value), fig
    # the Markdown twin shows the same figures, in the same order
    markdown = pages["differences.md"]
    position = 0
    for fig in shown:
        found = markdown.find(fig["text"], position)
        assert found >= 0, fig
        position = found + len(fig["text"])
    # no number in the Measured and Conforming case cells that is not a marked figure (names and code aside;
    # the Fix cell is the registry's advice, e.g. learning_rate=0.002)
    for _, row in what_to_do_rows(pages["differences.html"]):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        bare = re.sub(r'<span class="fig".*?</span>|<code>.*?</code>|<a [^>]*>.*?</a>|<[^>]+>', "", cells[2] + cells[4])
        assert not re.search(r"\d", bare), bare


def test_figures_use_three_significant_digits_and_ulp_only_where_meaningful():
    assert numbers.sig(3.3527612686157227e-08) == "3.35e-8"
    assert numbers.sig(0.00874549150466919) == "8.75e-3"
    assert numbers.sig(0.11043381690979004) == "0.11" and numbers.sig(10000) == "10,000"
    assert numbers.sig(float("nan")) == "NaN" and numbers.sig(float("inf")) == "Inf"
    assert measured.ulp_meaningful({"a": 0.998, "b": 1.002})
    assert not measured.ulp_meaningful({"a": -1e-9, "b": 2e-9})  # across zero
    assert not measured.ulp_meaningful({"a": 1e-8, "b": 0.0})
    assert not measured.ulp_meaningful({"a": float("nan"), "b": 1.0})


def test_appendix_shows_ulp_only_between_values_of_one_sign(tmp_path):
    data = summary()
    defaults = data["items"][0]
    defaults["first_divergence"].update(a=-1e-9, b=2e-9)
    appendix = render(tmp_path, data)["differences-appendix.md"]
    rows = [line for line in appendix.splitlines() if line.startswith("| [cases/")]

    def ulp_cell(case: str) -> str:
        return next(r for r in rows if r.startswith(f"| [cases/{md(case)}")).split(" | ")[6]

    assert ulp_cell("docs_example.yaml::docs_example_defaults[") == "-"
    assert ulp_cell("weight_decay.yaml::weight_decay_layernorm_gamma_beta_skipped[") == "33554"


def test_page_follows_the_upstream_structure_and_corrects_it(tmp_path):
    pages = render(tmp_path)
    markdown = pages["differences.md"]
    headings = re.findall(r"^## (.+)$", markdown, re.M)
    assert headings == ["torch.optim.Adamax", "mindspore.nn.AdaMax", "Differences", "What to do", "Code Example",
                        "Edge cases", "Evidence"]
    assert markdown.startswith("# Differences between torch.optim.Adamax and mindspore.nn.AdaMax\n")
    assert "`torch.optim.AdaMax` does not exist in torch 2.13.0+cpu" in markdown
    assert "https://pytorch.org/docs/stable/generated/torch.optim.Adamax.html" in markdown
    assert "https://www.mindspore.cn/docs/en/master/api_python/nn/mindspore.nn.AdaMax.html" in markdown
    assert "    learning_rate=0.001,\n" in markdown and "    loss_scale=1.0\n)" in markdown
    table = section(markdown, "| Categories | Subcategories | PyTorch | MindSpore | Difference |", "## What to do")
    eps_row = next(line for line in table.splitlines() if line.startswith("|  | Parameter") and "| eps | eps |" in line)
    assert 'Not consistent (upstream: "Consistent function")' in eps_row and "eps\\_small\\_gradients" in eps_row
    decay_row = next(line for line in table.splitlines() if "| weight\\_decay | weight\\_decay |" in line)
    assert "Not consistent" in decay_row
    assert "different defaults (0.002 vs 0.001)" in table
    assert 'not "different algorithms" as the upstream page says' in markdown
    code = section(markdown, "## Code Example", "## Edge cases")
    assert "torch.optim.AdaMax" not in code and "torch.optim.Adamax(model.parameters())" in code
    assert "learning_rate=0.002" in code and '"weight_decay": 0.01}]' in code
    assert "experimental.optim import Adamax" in code
    edge = section(markdown, "## Edge cases", "## Evidence")
    for topic in impact.EDGE_TOPICS:
        assert f"**{topic}**" in edge
    evidence_section = markdown.split("## Evidence", 1)[1]
    assert "Run r1" in evidence_section and "cpu: 1 of 2 items ran" not in evidence_section
    assert "Not measured: torch on gpu (1 items): torch has no CUDA device on this machine" in evidence_section
    assert "Measured: torch on cpu (" in evidence_section and "Measured: mindspore on cpu (" in evidence_section
    assert "slot: not produced" in evidence_section


def test_main_page_stays_short_and_details_go_to_the_appendix(tmp_path):
    pages = render(tmp_path)
    visible = re.sub(r"\]\([^)]*\)|<[^>]+>", " ", pages["differences.md"])
    assert len(visible.split()) <= 1500
    assert "```yaml" not in pages["differences.md"] and "pytest '" not in pages["differences.md"]
    appendix = pages["differences-appendix.md"]
    assert "```yaml" in appendix and "pytest 'cases/docs_example.yaml::docs_example_defaults[cpu-float32]'" in appendix
    assert "oracle" in appendix.lower() and "## Search findings awaiting review" in appendix


def test_counts_match_the_index(tmp_path):
    data = summary()
    html = render(tmp_path, data)["differences.html"]
    index = render_index(data["run"], data["items"])
    line = re.search(r"cpu: (\d+) of (\d+) items ran", html)
    assert line and f"cpu: {line.group(1)} of {line.group(2)} items ran" in index
    assert int(line.group(2)) == sum(e["device"] == "cpu" for e in data["items"])


def test_evidence_slots_take_the_history_link_and_the_frameworks_table(tmp_path):
    data = summary()
    (tmp_path / "summary.json").write_text(json.dumps(data))
    paths = docs_page.write_docs(data, tmp_path / "docs", run_dir=tmp_path, history="history.html",
                                   across="| framework | camp |\n| --- | --- |\n| optax | torch |\n")
    markdown = paths[0].read_text()
    assert "[AdaMax behaviour across releases](history.html)" in markdown and "| optax | torch |" in markdown


def test_hostile_case_text_is_escaped(tmp_path):
    data = summary()
    hostile = "<script>alert(1)</script>"
    data["items"][0].update(case=hostile, description=hostile, source=hostile)
    data["items"].append(item("cases/found/f.yaml::found_x[cpu-float32]", reason=f"FOUND BY SEARCH {hostile}"))
    for name, text in render(tmp_path, data).items():
        if name.endswith(".md"):  # inside a code fence the case text is literal, not markup
            text = re.sub(r"(`{3,})yaml\n.*?\n\1", "", text, flags=re.S)
        assert "<script>alert" not in text, name


@pytest.mark.integration
def test_docs_on_the_real_tiny_run(tiny_run, tmp_path):
    from conformance.results import storage

    paths = docs_page.write_docs(storage.read_json(tiny_run / "summary.json"), tmp_path, run_dir=tiny_run)
    assert [p.name for p in paths] == ["differences.md", "differences.html", "differences-appendix.md",
                                       "differences-appendix.html"]
    data = storage.read_json(tiny_run / "summary.json")
    by_nodeid = {e["nodeid"]: e for e in data["items"]}
    html = paths[1].read_text()
    for fig in figures(html):
        assert fig["text"] == numbers.sig(measured.lookup(by_nodeid[fig["item"]], fig["path"]))
    markdown = paths[0].read_text()
    assert markdown.startswith("# Differences between torch.optim.Adamax and mindspore.nn.AdaMax\n")
    assert f"torch {data['run']['torch']}" in markdown and f"mindspore {data['run']['mindspore']}" in markdown
    assert "| learning\\_rate |" in markdown and "MindSpore only" in markdown  # the introspected interface
    eps = next(e for e in data["items"] if e["case"] == "tiny_eps")
    if not measured.item_causes(eps):  # the tiny case names no cause: listed as such in the appendix
        appendix = paths[2].read_text()
        assert "tiny\\_eps" in appendix.split("## Divergences no cause explains", 1)[1].split("## Checks", 1)[0]
    for page in paths[1::2]:
        html = page.read_text()
        assert "<script>alert" not in html


CODE_CHECK = r'''
import sys, numpy as np
blocks = sys.argv[1:]
ms_part, torch_part = blocks[0].split("# PyTorch", 1)
data = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
label = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
ns = {}
exec(ms_part, ns)
import mindspore
x, y = mindspore.Tensor(data), mindspore.Tensor(label)
assert np.isfinite(float(ns["train_step"](x, y).asnumpy()))
for variant in blocks[1:]:  # parameter groups, the experimental optimizer: each steps the same net
    exec(variant, ns)
    (loss, _), grads = ns["grad_fn"](x, y)
    ns["optimizer"](grads)
tns = {}
exec(torch_part, tns)
import torch
assert np.isfinite(float(tns["train_step"](torch.from_numpy(data), torch.from_numpy(label))))
assert type(tns["optimizer"]).__name__ == "Adamax" and ns["optimizer"].__class__.__module__.startswith("mindspore")
print("CODE OK")
'''


@pytest.mark.integration
@pytest.mark.skipif(not __import__("importlib").util.find_spec("mindspore")
                    or not __import__("importlib").util.find_spec("torch"), reason="needs torch and mindspore")
def test_code_example_runs_as_written(tmp_path):
    """The page's Python blocks, executed with the real frameworks: one training step each."""
    import subprocess
    import sys

    markdown = render(tmp_path)["differences.md"]
    blocks = re.findall(r"```python\n(.*?)```", section(markdown, "## Code Example", "## Edge cases"), re.S)
    assert len(blocks) == 3
    done = subprocess.run([sys.executable, "-c", CODE_CHECK, *blocks], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "GLOG_v": "3"}, cwd=tmp_path)
    assert "CODE OK" in done.stdout, done.stdout + done.stderr


def _trained(case: str, causes_: list[str], mean_rel: float, expect: str = "diverge") -> dict:
    """A real-data item as the runner records it: a `training` block (results.entry.training_entry)."""
    block = training_entry("digits", 1000, "torch~mindspore", {"torch": 0.0256, "mindspore": 0.0256 + mean_rel / 10},
                           {"torch": 0.972, "mindspore": 0.964}, (2.3, 2.3), (0.0256, 0.0256 + mean_rel / 10),
                           mean_rel / 5, mean_rel, 359)
    return item(f"cases/real_data.yaml::{case}[cpu-float32]", expect=expect, cause=causes_, steps=1000,
                params=0.19, training=block,
                attribution={"pair": "torch~mindspore", "causes": causes_, "explained": True, "first": None,
                             "worst": None})


def test_real_training_gaps_order_what_to_do_and_are_figures_of_summary_json(tmp_path):
    data = summary()
    data["items"] += [_trained("mlp_defaults", ["default_lr", "eps_placement"], 1.39),
                      _trained("block_decay", ["decay_name_filter", "eps_placement"], 0.169),
                      _trained("block_groups", ["eps_placement"], 1.96e-4),
                      _trained("mlp_lr", ["eps_placement"], 3.9e-7),
                      _trained("mlp_experimental", [], 4e-7, expect="conform")]
    found = docs_page.real_training(data["items"], measured.Figures())
    assert set(found) == {"default_lr", "decay_name_filter", "eps_placement"}
    # the run that shows the cause beside the fewest others, then the larger gap
    assert found["eps_placement"]["entry"]["case"] == "block_groups" and found["eps_placement"]["others"] == []
    assert found["decay_name_filter"]["others"] == ["eps_placement"] and found["default_lr"]["order"] == 1.39
    pages = render(tmp_path, data)
    html = pages["differences.html"]
    order = [cause for cause, _ in what_to_do_rows(html)]
    assert order[:3] == ["default_lr", "decay_name_filter", "eps_placement"]  # by the measured gap, not the tier
    tiers = [impact.impact(c).tier for c in order[3:]]
    assert tiers == sorted(tiers)  # the causes not measured in real training follow by tier
    row = dict(what_to_do_rows(html))["decay_name_filter"]
    assert "in real training (digits" in row and "beside eps_placement" in row and "block_decay" in row
    # the measured size stays a controlled case's; the training run gives the real-training clause
    eps = dict(what_to_do_rows(html))["eps_placement"]
    assert eps.index("eps_small_gradients") < eps.index("in real training") < eps.index("block_groups")
    by_nodeid = {e["nodeid"]: e for e in data["items"]}
    trained = [f for f in figures(html) if f["path"].startswith("training.")]
    assert {f["path"] for f in trained} >= {"training.loss_gap.mean_rel", "training.final_accuracy.mindspore",
                                            "training.final_loss.torch", "training.steps"}
    for fig in trained:
        assert fig["text"] == numbers.sig(measured.lookup(by_nodeid[fig["item"]], fig["path"])), fig
    assert "MindSpore Transformers' loss precision standard bounds at 1%" in pages["differences-appendix.md"]
