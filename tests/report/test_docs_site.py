"""Where the API-mapping pages go (`python -m conformance docs RUN --docs-repo DIR`): MindSpore's docs layout,
the mapping-index rows, the checks on the checkout; and what the pages quote when a run holds real-training
items or a state-conversion item (tests/report/docs_summary.py's summary, doctored)."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from conformance.report import docs_site
from tests.conftest import REPO
from tests.report.docs_summary import item, render, summary

EN_PAGE = "docs/mindspore/source_en/note/api_mapping/pytorch_diff/AdaMax.md"
ZH_PAGE = "docs/mindspore/source_zh_cn/note/api_mapping/pytorch_diff/AdaMax.md"
INDEX = """# PyTorch and MindSpore API Mapping Table

## torch.nn

| PyTorch 2.1 APIs | MindSpore APIs | Descriptions |
| --- | --- | --- |
| [torch.nn.ReLU](https://pytorch.org/docs/2.1/torch.nn.ReLU.html) | [mindspore.mint.nn.ReLU](https://x) | Consistent |

## torch.optim

| PyTorch 2.1 APIs | MindSpore APIs | Descriptions |
|---|---|---|
| [torch.optim.Adam](https://pytorch.org/docs/2.1/optim.html) | [mindspore.mint.optim.Adam](https://y) | x |
| [torch.optim.AdamW](https://pytorch.org/docs/2.1/optim.html) | [mindspore.mint.optim.AdamW](https://z) | x |

## torch.utils

| PyTorch 1.8.1 APIs | MindSpore APIs | Descriptions |
| --- | --- | --- |
| [torch.utils.data.DataLoader](https://a) | [mindspore.dataset.GeneratorDataset](https://b) | [diff](https://c) |
"""


def checkout(tmp_path):
    """A folder laid out as MindSpore's docs repository, holding only the two mapping indexes."""
    repo = tmp_path / "docs-repo"
    for lang in ("en", "zh_cn"):
        path = repo / f"docs/mindspore/source_{lang}/note/api_mapping/pytorch_api_mapping.md"
        path.parent.mkdir(parents=True)
        path.write_text(INDEX, encoding="utf-8")
    return repo


def optim_rows(text: str) -> list[str]:
    return [line for line in text.split("## torch.optim\n", 1)[1].split("\n## ", 1)[0].splitlines()
            if line.startswith("| [")]


def test_docs_repo_gets_both_pages_and_one_index_row_each(tmp_path):
    repo = checkout(tmp_path)
    pages = render(tmp_path / "run", docs_repo=repo)
    written = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert written == ["docs/mindspore/source_en/note/api_mapping/pytorch_api_mapping.md",
                       "docs/mindspore/source_en/note/api_mapping/pytorch_diff/AdaMax.md",
                       "docs/mindspore/source_zh_cn/note/api_mapping/pytorch_api_mapping.md",
                       "docs/mindspore/source_zh_cn/note/api_mapping/pytorch_diff/AdaMax.md"]
    assert (repo / EN_PAGE).read_text() == pages["differences.md"]
    assert (repo / ZH_PAGE).read_text() == pages["differences.zh_cn.md"]
    for lang, diff in (("en", "[diff](https://www.mindspore.cn/docs/en/master/note/api_mapping/pytorch_diff/"
                               "AdaMax.html)"),
                       ("zh_cn", "[差异对比](https://www.mindspore.cn/docs/zh-CN/master/note/api_mapping/"
                                 "pytorch_diff/AdaMax.html)")):
        index = (repo / f"docs/mindspore/source_{lang}/note/api_mapping/pytorch_api_mapping.md").read_text()
        rows = optim_rows(index)
        assert [r.split("]", 1)[0] for r in rows] == ["| [torch.optim.Adam", "| [torch.optim.Adamax",
                                                      "| [torch.optim.AdamW"]
        assert rows[1] == docs_site.index_row(lang) and rows[1].endswith(f"| {diff} |")
        assert index.replace(rows[1] + "\n", "") == INDEX  # nothing else changed
    # a second run replaces its row (and the old page's torch.optim.AdaMax row) instead of adding one
    index = repo / "docs/mindspore/source_en/note/api_mapping/pytorch_api_mapping.md"
    index.write_text(index.read_text().replace("[torch.optim.Adamax]", "[torch.optim.AdaMax]"))
    render(tmp_path / "run2", docs_repo=repo)
    assert [r.split("]", 1)[0] for r in optim_rows(index.read_text())] == [
        "| [torch.optim.Adam", "| [torch.optim.Adamax", "| [torch.optim.AdamW"]


def test_a_folder_that_is_not_a_docs_checkout_is_refused_before_anything_is_written(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(docs_site.DocsRepoError, match="pytorch_api_mapping.md: cannot read the mapping index"):
        render(tmp_path / "run", docs_repo=empty)
    assert not any(empty.rglob("*.md")) and not (tmp_path / "run" / "docs").exists()
    repo = checkout(tmp_path)
    index = repo / "docs/mindspore/source_zh_cn/note/api_mapping/pytorch_api_mapping.md"
    index.write_text(INDEX.replace("## torch.optim\n", "## torch.optimizers\n"))
    with pytest.raises(docs_site.DocsRepoError, match="no `## torch.optim` heading"):
        render(tmp_path / "run", docs_repo=repo)
    assert not (repo / EN_PAGE).exists()


@pytest.mark.integration
def test_the_docs_command_writes_the_checkout(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(summary()))
    repo = checkout(tmp_path)
    done = subprocess.run([sys.executable, "-m", "conformance", "docs", str(run), "--docs-repo", str(repo)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert str(repo / ZH_PAGE) in done.stdout and (run / "differences.zh_cn.html").exists()
    bad = subprocess.run([sys.executable, "-m", "conformance", "docs", str(run), "--docs-repo", str(tmp_path / "no")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--docs-repo must be a checkout of MindSpore's docs repository" in bad.stderr


TRAINING = {"dataset": "digits (sklearn, 1,797 images)", "steps": 600,
            "final_loss": {"torch": 0.2113, "mindspore": 0.2241},
            "final_accuracy": {"torch": 0.9361, "mindspore": 0.9305},
            "loss_gap": {"first_abs": 0.0, "first_rel": 0.0, "mean_abs": 0.0071, "mean_rel": 0.0315,
                         "final_abs": 0.0128},
            "accuracy_gap": 0.0056,
            "mindformers": {"standard": "first loss within 0.5%, mean loss within 1%", "first_loss_ok": True,
                            "mean_loss_ok": False}}


def test_what_to_do_quotes_real_training_per_cause_and_nothing_without_it(tmp_path):
    data = summary()
    data["items"].append(item("cases/real_data.yaml::digits_defaults[cpu-float32]", cause=["default_lr"],
                              params=0.0731, steps=600, training=copy.deepcopy(TRAINING)))
    pages = render(tmp_path, data)
    for name, quote in (("differences.md", "In training (digits (sklearn, 1,797 images), 600 steps, "
                                           "`digits_defaults`): final loss 0.211 in PyTorch, 0.224 in MindSpore, "
                                           "final accuracy 0.936 and 0.93, mean relative loss gap 0.0315; MindFormers' "
                                           "standard "
                                           "not met"),
                        ("differences.zh_cn.md", "实际训练中（digits (sklearn, 1,797 images)，600步，"
                                                 "`digits_defaults`）：最终损失PyTorch为0.211，MindSpore为0.224")):
        title = "Default learning rates differ" if name == "differences.md" else "默认学习率不同"
        row = next(line for line in pages[name].splitlines() if line.startswith(f"| {title} |"))
        assert quote in row, row
    assert pages["differences.md"].count("In training (") == 1  # only the cause the item shows
    assert pages["differences.md"].count("first loss within 0.5%") == 1  # the standard, stated once above the table
    # a second run leaving two causes unfixed: a cause it alone shows quotes it and names the other; the cause
    # the first run shows alone keeps that run
    both = copy.deepcopy(TRAINING)
    both["loss_gap"]["mean_rel"] = 0.5
    data["items"].append(item("cases/real_data.yaml::digits_both[cpu-float32]", cause=["default_lr", "eps_placement"],
                              params=0.09, steps=600, training=both))
    rows = [line for line in render(tmp_path / "both", data)["differences.md"].splitlines() if "In training (" in line]
    assert len(rows) == 2
    lr_row = next(r for r in rows if r.startswith("| Default learning rates differ |"))
    eps_row = next(r for r in rows if r.startswith("| eps enters the update"))
    assert "`digits_defaults`)" in lr_row and "digits_both" not in lr_row
    assert "`digits_both`; also unfixed: Default learning rates differ)" in eps_row
    plain = render(tmp_path / "plain")
    assert "In training" not in plain["differences.md"] and "实际训练" not in plain["differences.zh_cn.md"]
    assert "MindFormers" not in plain["differences.md"]


def test_a_training_quote_gives_its_control_run_where_the_same_torch_run_met_torchs_formula(tmp_path):
    """The control: the same PyTorch run (same dataset, steps, bit-identical final torch loss) against
    mindspore.experimental, conforming; its gap is what the frameworks' autograd kernels alone leave."""
    data = summary()
    data["items"].append(item("cases/real_data.yaml::digits_defaults[cpu-float32]", cause=["default_lr"],
                              params=0.0731, steps=600, training=copy.deepcopy(TRAINING)))
    control = copy.deepcopy(TRAINING)
    control["pair"] = "torch~mindspore_experimental"
    control["final_loss"] = {"torch": TRAINING["final_loss"]["torch"], "mindspore_experimental": 0.2114}
    control["loss_gap"]["mean_rel"] = 2.5e-7
    entry = item("cases/real_data.yaml::digits_control[cpu-float32]", expect="conform", steps=600,
                 pair="torch~mindspore_experimental", training=control)
    data["items"].append(entry)
    row = next(line for line in render(tmp_path, data)["differences.md"].splitlines()
               if line.startswith("| Default learning rates differ |"))
    assert ("mean relative loss gap 0.0315 (against mindspore.experimental.optim.Adamax, which follows PyTorch's "
            "formula, on the same PyTorch run: 2.5e-7)") in row, row
    control["final_loss"]["torch"] = 0.2112  # another torch run: no control
    row = next(line for line in render(tmp_path / "other", data)["differences.md"].splitlines()
               if line.startswith("| Default learning rates differ |"))
    assert "mean relative loss gap 0.0315;" in row and "2.5e-7" not in row, row


def test_a_training_run_of_another_pair_is_neither_quoted_nor_orders_what_to_do(tmp_path):
    from conformance.report import docs_page

    other = copy.deepcopy(TRAINING)
    other["pair"] = "torch~mindspore_experimental"
    entry = item("cases/real_data.yaml::digits_other[cpu-float32]", cause=["eps_placement"], steps=600,
                 pair="torch~mindspore_experimental", training=other)
    data = summary()
    data["items"].append(entry)
    assert docs_page.real_training(data["items"]) == {}
    assert "In training (" not in render(tmp_path, data)["differences.md"]


def test_optimizer_state_quotes_the_conversion_case_when_the_run_has_one(tmp_path):
    data = summary()
    assert "Measured: `" not in render(tmp_path / "a", data)["differences.md"].split("### Optimizer state")[1] \
        .split("###")[0]
    data["items"].append(item("cases/resume.yaml::resume_mindspore_to_torch[cpu-float32]", expect="conform",
                              params=5.1e-8, steps=40, resume={"from": "mindspore", "steps": 20}))
    assert "resume_" not in render(tmp_path / "b", data)["differences.md"]  # the other way round: not quoted
    data["items"].append(item("cases/resume.yaml::resume_torch_to_mindspore[cpu-float32]", expect="conform",
                              params=4.47e-8, steps=40, resume={"from": "torch", "steps": 20}))
    pages = render(tmp_path / "c", data)
    state = pages["differences.md"].split("### Optimizer state")[1].split("###")[0]
    assert "Measured: `resume_torch_to_mindspore` trains 20 steps in PyTorch, converts the state and continues in " \
           "MindSpore: it agrees with PyTorch continuing, to 4.47e-8 over 40 steps." in state
    assert "`resume_torch_to_mindspore`先在PyTorch中训练20步" in pages["differences.zh_cn.md"]


def test_html_renderings_escape_markup_and_carry_the_language(tmp_path):
    pages = render(tmp_path)
    assert pages["differences.zh_cn.html"].startswith("<!doctype html>\n<html lang=\"zh-CN\">")
    assert "<table>" in pages["differences.html"] and "<h3>Code Example</h3>" in pages["differences.html"]
    html = docs_site.to_html("# t\n\n<script>alert(1)</script> `<b>`\n", "t", "en")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
