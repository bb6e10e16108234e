"""The API-mapping page (`python -m conformance docs`): structure, order, words and figures, in English and
Chinese. Most tests render the page from tests/report/docs_summary.py's summary.json; one renders it from
the real tiny run. The cause registry is the real cases/causes.yaml, and the fix cases are the node ids it
names. Where the pages go in MindSpore's docs repository: test_docs_site.py.
"""
from __future__ import annotations

import re

import pytest

from conformance import numbers
from conformance.cases import causes
from conformance.report import docs_page, docs_site, impact, measured
from conformance.report.markdown import md, prose
from conformance.report.run_report import render_index
from conformance.results.entry import training_entry
from tests.report.docs_summary import item, render, summary

EN, ZH = "differences.md", "differences.zh_cn.md"


def section(text: str, start: str, end: str | None = None) -> str:
    rest = text.split(start, 1)[1]
    return rest.split(end, 1)[0] if end else rest


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table from the line holding `heading` on, header and separator left out."""
    rest = text[text.rindex("\n", 0, text.index(heading)) + 1:]
    lines = [line for line in rest.split("\n\n#", 1)[0].splitlines() if line.startswith("|")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[2:]]


def what_to_do(text: str, lang: str = "en") -> list[tuple[str, list[str]]]:
    """(cause id, cells) of the What to do table, in page order: a row is its cause's title."""
    heading = "### " + docs_site.words()[lang]["what_to_do"]
    by_title = {prose(c.words(lang).title): c.id for c in causes.load().values()}
    return [(by_title[cells[0]], cells) for cells in table_rows(text, heading)]


def outside_code(text: str) -> str:
    """Page text without code blocks, inline code and link targets: what a figure could hide in."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"(`+).*?\1", " ", text)
    return re.sub(r"\]\([^)]*\)", "] ", text)


NUMBER = re.compile(r"(?<![A-Za-z0-9_.\-])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?![A-Za-z0-9_])")


def recorded(data: dict) -> set[str]:
    """Every number summary.json holds, as the pages write it (3 significant digits) and as written in its
    strings (versions, defaults, notices)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, bool):
            pass
        elif isinstance(node, (int, float)):
            found.add(numbers.sig(node))
        elif isinstance(node, str):
            found.update(NUMBER.findall(node))

    walk(data)
    return found


def static_numbers() -> set[str]:
    """Numbers the page's own words state (docs_words.yaml, the registry's words): not figures."""
    text = docs_site.WORDS_FILE.read_text(encoding="utf-8")
    text += " ".join(f"{c.title} {c.matters_when} {c.fix} {c.zh_cn}" for c in causes.load().values())
    return set(NUMBER.findall(text))


def stray_numbers(page: str, data: dict) -> list[str]:
    """Numbers on a page that neither summary.json nor the page's words hold (Parameter N numbering aside)."""
    text = re.sub(r"(Parameter |参数)\d+", " ", outside_code(page))
    allowed = recorded(data) | static_numbers()
    return [n for n in NUMBER.findall(text) if n not in allowed]


def measured_numbers(page: str, data: dict) -> list[str]:
    """The page's figures from summary.json (the numbers its words do not state), sorted."""
    text = re.sub(r"(Parameter |参数)\d+", " ", outside_code(page))
    return sorted(n for n in NUMBER.findall(text) if n not in static_numbers())


def test_every_registry_cause_has_an_impact_tier_and_chinese_words():
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
    assert all(c.zh_cn and c.zh_cn.title and c.zh_cn.matters_when for c in causes.load().values())
    bare = causes.parse(text.replace("fix_case: null}", "fix_case: null, impact: {tier: 1, why: w}}"), "t.yaml")["x"]
    with pytest.raises(causes.RegistryError, match="no `zh_cn:` block"):
        bare.words("zh_cn")


def test_default_lr_row_comes_before_eps_placement_and_rows_follow_the_measure(tmp_path):
    for lang, name in (("en", EN), ("zh_cn", ZH)):
        order = [cause for cause, _ in what_to_do(render(tmp_path)[name], lang)]
        assert order[0] == "default_lr"
        assert order.index("default_lr") < order.index("decay_name_filter") < order.index("eps_placement")
        tiers = [impact.impact(c).tier for c in order]
        assert tiers == sorted(tiers) and 4 not in tiers
        assert order[-1] == "lr_list_shorter_than_steps"  # within a tier: silent before loud


def test_each_cause_appears_once_never_one_entry_per_case(tmp_path):
    page = render(tmp_path)[EN]
    rows = [cause for cause, _ in what_to_do(page)]
    edge = section(page, "### Edge cases", "### Loss scaling")
    for cause_id, cause in causes.load().items():
        listed = rows.count(cause_id) + edge.count(f"{prose(cause.title)[1:]}:")
        assert listed == 1, cause_id  # a What to do row or an Edge-cases entry, exactly once
    assert rows.count("eps_placement") == 1  # two eps cases (eps_small_gradients, float16_zero_gradient_nan)


def test_every_fix_names_a_conforming_case_that_ran(tmp_path):
    data = summary()
    fix_case = causes.load()["decay_name_filter"].fix_case
    failed = next(e for e in data["items"] if e["nodeid"] == fix_case)
    failed.update(outcome="failed", observed="diverge")
    proven = 0
    for cause_id, cells in what_to_do(render(tmp_path, data)[EN]):
        cause, fix = causes.load()[cause_id], cells[3]
        if cause_id == "decay_name_filter":
            assert "not confirmed in this run" in fix and "failed" in fix
        elif cause.fix and cause.fix_case:
            entry = next(e for e in data["items"] if e["nodeid"] == cause.fix_case)
            assert f"`{entry['case']}` agrees to" in fix and measured.conforms(entry)
            proven += 1
        elif not cause.fix:
            assert fix == "None in `mindspore.nn.AdaMax`."
    assert proven >= 5


def test_no_declared_case_is_called_undeclared(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    appendix = section(pages["differences-appendix.md"], "## Divergences no cause explains", "## Checks of")
    assert "None in this run" in appendix
    for text in pages.values():
        assert "Undeclared" not in text and "undeclared" not in text
    index = render_index(data["run"], data["items"])
    groups = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">", section(index, '<table id="causes">', "</table>"))
    for cause_id in ("nan_dropped_by_max", "lr_list_shorter_than_steps"):
        assert any(g.startswith("declared") and f"[{cause_id}]" in g for g in groups), groups


def test_an_undeclared_divergence_is_listed_as_unexplained_not_as_a_cause(tmp_path):
    data = summary()
    data["items"].append(item("cases/x.yaml::surprise[cpu-float32]", expect="conform", observed="diverge",
                              outcome="failed", message="expected conform, observed diverge"))
    pages = render(tmp_path, data)
    assert "surprise" not in pages[EN] and "surprise" not in pages[ZH]
    assert "surprise" in section(pages["differences-appendix.md"], "## Divergences no cause explains", "## Checks of")


def test_no_figure_on_the_pages_is_absent_from_summary_json(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    for name in (EN, ZH):
        assert stray_numbers(pages[name], data) == [], name
    # the check can fail: a figure summary.json does not hold is found
    assert stray_numbers(pages[EN].replace("agrees to 3.35e-8", "agrees to 3.36e-8", 1), data) == ["3.36e-8"]
    # every figure read through measured.Figures equals its summary.json value
    by_nodeid = {e["nodeid"]: e for e in data["items"]}
    ctx = docs_page.context(data)
    assert len(ctx["figs"].shown) > 20
    for fig in ctx["figs"].shown:
        assert fig.text == numbers.sig(measured.lookup(by_nodeid[fig.nodeid], fig.path)), fig


def test_the_chinese_page_has_every_figure_of_the_english_one_and_its_structure(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    en, zh = pages[EN], pages[ZH]
    assert measured_numbers(en, data) == measured_numbers(zh, data)
    assert len(measured_numbers(en, data)) > 40
    heads = [re.findall(r"^(#+) ", re.sub(r"```.*?```", "", text, flags=re.S), re.M) for text in (en, zh)]
    assert heads[0] == heads[1] and len(heads[0]) == 9
    assert zh.startswith("# 比较与torch.optim.Adamax的差异\n")
    assert "| 分类 | 子类 | PyTorch | MindSpore | 差异 |" in zh and "### 代码示例" in zh
    cases = {e["case"] for e in data["items"]}

    def named(text: str) -> list[str]:
        return sorted(c for c in re.findall(r"`([A-Za-z0-9_.=\-]+)`", text) if c in cases)

    assert named(en) == named(zh) and len(set(named(en))) > 20  # the same cases
    assert re.findall(r"```python\n.*?```", en, re.S) == re.findall(r"```python\n.*?```", zh, re.S)
    assert len(table_rows(en, "| Categories |")) == len(table_rows(zh, "| 分类 |")) == 10
    assert [c for c, _ in what_to_do(en)] == [c for c, _ in what_to_do(zh, "zh_cn")]


def test_page_has_the_docs_structure_and_none_of_the_old_pages_errors(tmp_path):
    page = render(tmp_path)[EN]
    assert re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page, flags=re.S), re.M) == [
        "Differences between torch.optim.Adamax and mindspore.nn.AdaMax", "torch.optim.Adamax",
        "mindspore.nn.AdaMax", "Differences", "What to do", "Edge cases", "Loss scaling", "Optimizer state",
        "Code Example"]
    assert "[![View Source On AtomGit](https://mindspore-website.obs.cn-north-4.myhuaweicloud.com/website-images/" \
           "master/resource/_static/logo_source_en.svg)](https://atomgit.com/mindspore/docs/blob/master/docs/" \
           "mindspore/source_en/note/api_mapping/pytorch_diff/AdaMax.md)" in page
    assert "    foreach=None,\n    *,\n    maximize=False," in page  # the keyword-only marker
    assert "For more information, see [torch.optim.Adamax](https://pytorch.org/docs/stable/generated/" in page
    assert "    learning_rate=0.001,\n" in page and "    loss_scale=1.0\n)" in page
    assert "> Non-backward-compatible change after version 2.9.0: `learning_rate` will be renamed" in page
    lede = section(page, "\n```\n\nBoth implement AdaMax", "\n\n|")
    assert "the same AdaMax update" not in page and "cases with matched settings" not in page
    assert "eps" in lede and "Measured on CPU (float16, float32, float64) with PyTorch 2.13.0+cpu and " \
                              "MindSpore 2.10.0; not measured on GPU and Ascend." in lede
    rows = {cells[2]: cells[4] for cells in table_rows(page, "| Categories |")}
    assert "Same function, different parameter names and default values (0.002 vs 0.001)" in rows["lr"]
    assert "(`torch_differentiable_on_leaf_parameters`)" in rows["differentiable"]
    assert "capturable" not in rows["differentiable"]
    assert "`grad_centralization`" in rows["params"] and "no per-group `betas` or `eps`" in rows["params"]
    for wrong in ("upstream", "Not consistent", "different algorithms", "torch.optim.AdaMax",
                  "divides the gradient (and the decay)", "exact zeros", "set the period to the whole run"):
        assert wrong not in page, wrong
    eps = dict(what_to_do(page))["eps_placement"]
    assert "exact-zero gradients change only the state u" in eps[1]
    scale = dict(what_to_do(page))["loss_scale_division"]
    assert "but not the weight decay" in scale[0] and "0.11" in scale[2] and "1.31e-6" in scale[2]
    loss = section(page, "### Loss scaling", "###")
    assert "`FixedLossScaleManager(S, drop_overflow_update=False)`" in loss and "`GradScaler`" in loss
    state = section(page, "### Optimizer state", "###")
    assert "| `exp_avg` | `moment1.<name>` |" in state and "`beta1_power`" in state and "`global_step`" in state
    code = section(page, "### Code Example")
    assert "> This is an experimental optimizer API that is subject to change. See " \
           "[LRScheduler Class](https://www.mindspore.cn/x.html#lr) ." in code
    assert "learning_rate=0.002" in code and "torch.optim.Adamax(model.parameters())" in code


def test_pages_have_no_local_links_placeholders_or_tooling(tmp_path):
    data = summary()
    pages = render(tmp_path, data)
    for name in (EN, ZH, "differences.html", "differences.zh_cn.html"):
        text = pages[name]
        targets = re.findall(r"\]\(([^)]*)\)", text) + re.findall(r'(?:href|src)="([^"]*)"', text)
        assert targets and all(t.startswith("https://") for t in targets), (name, targets)
        for placeholder in ("slot", "not produced", "--history", "--across", "Generated from", "Evidence",
                            "tox", "Xeon", "Linux", "summary.json", "appendix", "items/"):
            assert placeholder not in text, (name, placeholder)
    assert "*Measured by the AdaMax conformance suite (run `r1`, 2026-11-30).*" in pages[EN]
    published = render(tmp_path / "p", data, report_url="https://example.org/run/")
    targets = re.findall(r"\]\(([^)]*)\)", published[EN])
    assert any(t.startswith("https://example.org/run/items/") for t in targets)
    assert all(t.startswith("https://") for t in targets)


def test_main_page_stays_short_and_details_go_to_the_appendix(tmp_path):
    pages = render(tmp_path)
    visible = re.sub(r"\]\([^)]*\)|<[^>]+>", " ", pages[EN])
    prose_words = re.sub(r"```.*?```", " ", visible, flags=re.S)
    assert len(prose_words.split()) <= 1500  # what a reader reads; the signatures and code examples besides
    assert len(visible.split()) <= 1800
    assert "```yaml" not in pages[EN] and "pytest '" not in pages[EN]
    appendix = pages["differences-appendix.md"]
    assert "```yaml" in appendix and "pytest 'cases/docs_example.yaml::docs_example_defaults[cpu-float32]'" in appendix
    assert "oracle" in appendix.lower() and "## Search findings awaiting review" in appendix
    assert "](items/" not in appendix and "](../items/" in appendix  # the run folder, relative to docs/


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
    data["items"][0]["first_divergence"].update(a=-1e-9, b=2e-9)
    appendix = render(tmp_path, data)["differences-appendix.md"]
    rows = [line for line in appendix.splitlines() if line.startswith("| [cases/")]

    def ulp_cell(case: str) -> str:
        return next(r for r in rows if r.startswith(f"| [cases/{case}")).split(" | ")[6]

    assert ulp_cell(md("docs_example.yaml::docs_example_defaults[")) == "-"
    assert ulp_cell(md("weight_decay.yaml::weight_decay_layernorm_gamma_beta_skipped[")) == "33554"


def test_hostile_case_text_is_escaped(tmp_path):
    data = summary()
    hostile = "<script>alert(1)</script>`|"
    data["items"][0].update(case=hostile, description=hostile, source=hostile)
    data["items"].append(item("cases/found/f.yaml::found_x[cpu-float32]", reason=f"FOUND BY SEARCH {hostile}"))
    for name, text in render(tmp_path, data).items():
        if name.endswith(".md"):  # inside code (a fence, a code span) the case text is literal, not markup
            text = re.sub(r"(`{3,})yaml\n.*?\n\1", "", text, flags=re.S)
            text = re.sub(r"(`+) ?<script>.*?\1", "", text)
        assert "<script>alert" not in text, name


@pytest.mark.integration
def test_docs_on_the_real_tiny_run(tiny_run, tmp_path):
    from conformance.results import storage

    data = storage.read_json(tiny_run / "summary.json")
    paths = docs_site.write_docs(data, tmp_path, run_dir=tiny_run)
    assert [p.name for p in paths] == ["differences.md", "differences.html", "differences.zh_cn.md",
                                       "differences.zh_cn.html", "differences-appendix.md", "differences-appendix.html"]
    page = paths[0].read_text()
    assert page.startswith("# Differences between torch.optim.Adamax and mindspore.nn.AdaMax\n")
    assert f"PyTorch {data['run']['torch']}" in page and f"MindSpore {data['run']['mindspore']}" in page
    assert "| learning_rate |" in page and "MindSpore only." in page  # the introspected interface
    assert "    *,\n    maximize=False," in page  # the keyword-only marker, from the installed torch
    assert stray_numbers(page, data) == [] and stray_numbers(paths[2].read_text(), data) == []
    eps = next(e for e in data["items"] if e["case"] == "tiny_eps")
    if not measured.item_causes(eps):  # the tiny case names no cause: listed as such in the appendix
        appendix = paths[4].read_text()
        assert "tiny\\_eps" in appendix.split("## Divergences no cause explains", 1)[1].split("## Checks", 1)[0]
    for html in paths[1::2]:
        assert "<script>alert" not in html.read_text()


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

    page = render(tmp_path)[EN]
    blocks = re.findall(r"```python\n(.*?)```", section(page, "### Code Example"), re.S)
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


def test_real_training_gaps_order_what_to_do(tmp_path):
    data = summary()
    data["items"] += [_trained("mlp_defaults", ["default_lr", "eps_placement"], 1.39),
                      _trained("block_decay", ["decay_name_filter", "eps_placement"], 0.169),
                      _trained("block_groups", ["eps_placement"], 1.96e-4),
                      _trained("mlp_lr", ["eps_placement"], 3.9e-7),
                      _trained("mlp_experimental", [], 4e-7, expect="conform")]
    found = docs_page.real_training(data["items"])
    assert set(found) == {"default_lr", "decay_name_filter", "eps_placement"}
    # the run that shows the cause beside the fewest others, then the larger gap
    assert found["eps_placement"]["entry"]["case"] == "block_groups" and found["eps_placement"]["others"] == []
    assert found["decay_name_filter"]["others"] == ["eps_placement"] and found["default_lr"]["order"] == 1.39
    pages = render(tmp_path, data)
    order = [cause for cause, _ in what_to_do(pages[EN])]
    assert order[:3] == ["default_lr", "decay_name_filter", "eps_placement"]  # by the measured gap, not the tier
    tiers = [impact.impact(c).tier for c in order[3:]]
    assert tiers == sorted(tiers)  # the causes not measured in real training follow by tier
    assert [c for c, _ in what_to_do(pages[ZH], "zh_cn")] == order
