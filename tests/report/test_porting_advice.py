"""report/porting_advice.section on real items: every figure it shows is the recorded one, and the
Markdown partial renders it with nothing left unfilled."""
from __future__ import annotations

from pathlib import Path

from conformance import numbers
from conformance.cases.case import Item
from conformance.cases.loader import load_file
from conformance.engine.runner import run_item
from conformance.report import markdown, porting_advice
from conformance.report.measured import Figures, lookup
from tests.conftest import REPO, needs_frameworks

pytestmark = needs_frameworks


def _entries(tmp_path: Path) -> list[dict]:
    wanted = {"resume_torch_to_mindspore", "loss_scale_prescaled_gradients", "loss_scale_unscaled_gradients"}
    cases = [c for name in ("resume.yaml", "loss_scale.yaml") for c in load_file(REPO / "cases" / name,
                                                                                 f"cases/{name}")]
    return [run_item(Item(c, "cpu", "float32"), tmp_path) for c in cases if c.id in wanted]


def test_porting_section_quotes_the_run_and_shows_recorded_figures(tmp_path):
    items = _entries(tmp_path)
    notice = "Non-backward-compatible change after version 2.9.0: `learning_rate` will be renamed to `lr`"
    run = {"api": {"mindspore": {"notices": [notice]}}}
    figs = Figures()
    section = porting_advice.section(items, run, figs)
    (row,) = section["state"]["rows"]
    assert row["case"] == "resume_torch_to_mindspore" and row["from"] == "torch" and row["observed"] == "conform"
    assert str(row["trained"]) == "100" and str(row["last"]) == "200" and row["msprobe_passes"] is True
    assert section["loss_scale"]["unscaled"]["observed"] == "diverge"
    assert section["loss_scale"]["prescaled"]["observed"] == "conform"
    by_id = {e["nodeid"]: e for e in items}
    assert figs.shown
    for fig in figs.shown:
        assert fig.text == numbers.sig(lookup(by_id[fig.nodeid], fig.path)), fig
    text = markdown.environment().get_template("_porting.md.j2").render(porting=section)
    assert "## Porting notes" in text and "learning\\_rate" in text and "strict_load=True" in text
    assert f"| `resume_torch_to_mindspore` | 100 steps in torch | 200 | {row['params_abs']} / {row['state_abs']} |" \
        in text
    assert "{{" not in text and "None" not in text
