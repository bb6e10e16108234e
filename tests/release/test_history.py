"""The history page across releases, rendered from stored runs: a real small run's summary.json doctored
into three releases (the frameworks cannot be installed three times inside a test)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conformance.__main__ import main
from conformance.release import across_releases
from tests.conftest import AGREE, EPS
from tests.conftest import summary_item as _item

NOTICE = "Non-backward-compatible change after version 2.9.0: `learning_rate` will be renamed to `lr`"


def _release(summary: dict, version: str, tmp_path: Path) -> Path:
    data = copy.deepcopy(summary)
    data["run"].update(id=f"ms{version}", mindspore=version)
    data["run"]["build"]["mindspore"]["commit"] = f"[sha1]:commit-{version}"
    data["run"]["api"]["mindspore"]["notices"] = [NOTICE] if version == "2.10.0" else []
    folder = tmp_path / version
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(data))
    return folder


def _runs(real_summary: dict, tmp_path: Path) -> list[Path]:
    old = copy.deepcopy(real_summary)
    _item(old, EPS)["max"]["params"]["abs"] *= 10  # 2.8.0: the eps difference ten times larger, from step 2
    _item(old, EPS)["first_divergent_step"] = 2
    _item(old, AGREE).update(observed="diverge", outcome="failed", first_divergent_step=4)  # and AGREE diverged
    return [_release(old, "2.8.0", tmp_path), _release(real_summary, "2.9.0", tmp_path),
            _release(real_summary, "2.10.0", tmp_path)]


@pytest.mark.integration
def test_history_page_per_case_and_release(real_summary, tmp_path, capsys):
    runs = _runs(real_summary, tmp_path)
    assert main(["history", "--runs", *map(str, runs), "--out", str(tmp_path / "page")]) == 0
    out = capsys.readouterr().out
    # rows by cause (the eps case's eps_placement); the conform case that diverged in 2.8.0 keeps its own row
    assert "2 causes diverge in at least one release; 2 differ between releases" in out
    markdown = (tmp_path / "page" / "history.md").read_text()
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| cause |"))
    assert header.split("|")[2:5] == [" MindSpore 2.8.0 / torch " + real_summary["run"]["torch"] + " ",
                                      " MindSpore 2.9.0 / torch " + real_summary["run"]["torch"] + " ",
                                      " MindSpore 2.10.0 / torch " + real_summary["run"]["torch"] + " "]
    eps = next(line for line in lines if line.startswith("| eps\\_placement"))  # the eps case's cause (escaped)
    step = _item(real_summary, EPS)["first_divergent_step"]
    cells = [c.strip() for c in eps.split("|")[2:5]]
    assert cells[0].startswith("present (1/1)") and cells[0].endswith("from step 2")
    assert cells[1].startswith("present (1/1)") and cells[1].endswith(f"from step {step}") and cells[1] == cells[2]
    agree = next(line for line in lines if line.startswith("| cases/a.yaml::agree |"))
    assert [c.strip() for c in agree.split("|")[3:5]] == ["absent (1 ran)", "absent (1 ran)"]
    assert f"docstring warning: {NOTICE[:40]}" in markdown.replace("\\`", "`")
    assert markdown.count("- docstring warning: Non-backward") == 1  # only 2.10.0 has it
    assert "mindspore: \\[sha1\\]:commit-2.8.0" in markdown and "mindspore: \\[sha1\\]:commit-2.10.0" in markdown
    assert "`mindspore.nn.AdaMax(params, learning_rate=0.001" in markdown
    page = (tmp_path / "page" / "history.html").read_text()
    assert "<h1>AdaMax behaviour across MindSpore releases</h1>" in page and page.count('class="present"') == 4
    # each release against the next, item by item: what moved and why, the unchanged counted by how
    torch = real_summary["run"]["torch"]
    first = markdown.index(f"### MindSpore 2.8.0 / torch {torch} -> MindSpore 2.9.0 / torch {torch}")
    second = markdown.index(f"### MindSpore 2.9.0 / torch {torch} -> MindSpore 2.10.0 / torch {torch}")
    step = markdown[first:second]
    assert "- items: 1 FIXED (case expects conform), 1 MOVED" in step
    assert ("| cases/a.yaml::agree\\[cpu-float32\\] | FIXED (case expects conform) | "
            "baseline: diverge from step 4") in step
    assert "flagged: any change of the first divergent step counts" in step
    assert "Between consecutive releases 2 item(s) changed: MindSpore 2.9.0" in markdown  # named in the opening
    eps_row = next(line for line in step.splitlines() if line.startswith("| cases/a.yaml::eps"))
    assert eps_row.rstrip(" |").endswith("eps\\_placement: eps enters the update in a different place")
    later = markdown[second:markdown.index("## Differences that change")]
    assert "- items: 2 UNCHANGED (2 bitwise identical)" in later and "| item |" not in later
    assert "- optimizer API: no change" in later and "new docstring warning: Non-backward" in later
    assert f"<h3>MindSpore 2.9.0 / torch {torch} &rarr; MindSpore 2.10.0 / torch {torch}</h3>" in page


@pytest.mark.integration
def test_history_across_torch_releases_names_torch_first_and_its_api_changes(real_summary, tmp_path, capsys):
    folders = []
    for version in ("2.13.0", "2.14.1", "2.15.0"):
        data = copy.deepcopy(real_summary)
        data["run"].update(id=f"torch{version}", torch=version)
        if version == "2.15.0":  # a new constructor parameter, and one item's last bits moved
            data["run"]["api"]["torch"]["params"]["fused"] = {"default": "None", "neutral": None}
            _item(data, AGREE)["final"]["params"]["abs"] += 1e-12
        folder = tmp_path / version
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps(data))
        folders.append(str(folder))
    out_dir = tmp_path / "docs"
    assert main(["history", "--runs", *folders, "--out", str(out_dir), "--name", "torch"]) == 0
    out = capsys.readouterr().out
    ms = real_summary["run"]["mindspore"]
    assert f"torch 2.13.0 / MindSpore {ms} -> torch 2.14.1 / MindSpore {ms}: 2 UNCHANGED (2 bitwise identical); " \
           "API: no change" in out
    assert f"torch 2.14.1 / MindSpore {ms} -> torch 2.15.0 / MindSpore {ms}: 2 UNCHANGED (1 bitwise identical, " \
           "1 within the noise rule); API: torch.optim.Adamax: new parameter: fused (default None)" in out
    markdown = (out_dir / "torch.md").read_text()
    assert markdown.startswith("# AdaMax behaviour across torch releases")
    assert "| cases/a.yaml::agree\\[cpu-float32\\] | UNCHANGED | conform, figures within the noise rule:" in markdown
    assert "<h1>AdaMax behaviour across torch releases</h1>" in (out_dir / "torch.html").read_text()
    # the pairs a torch page runs: every torch release beside the pinned MindSpore
    import argparse

    from conformance.commands import history as command
    args = argparse.Namespace(project="pyproject.toml", torch=["2.13.0", "2.15.0"], mindspore=None)
    assert [p.name for p in command.pairs(args)] == ["torch2.13.0-mindspore2.10.0", "torch2.15.0-mindspore2.10.0"]
    args.torch = None
    assert [p.mindspore for p in command.pairs(args)] == ["2.8.0", "2.9.0", "2.10.0"]


@pytest.mark.integration
def test_history_groups_by_cause_when_items_carry_one(real_summary, tmp_path):
    tagged = copy.deepcopy(real_summary)
    for entry in tagged["items"]:
        entry["cause"] = "eps-<placement>"
        entry.pop("attribution", None)  # an attributed cause would take precedence over the declared one
    run = _release(tagged, "2.9.0", tmp_path)
    data = across_releases.history(across_releases.load_runs([run]))
    assert data["by_cause"] and [r["key"] for r in data["rows"]] == ["eps-<placement>"]
    assert data["rows"][0]["cells"][0] == {**data["rows"][0]["cells"][0], "status": "present", "ran": 2,
                                            "diverged": 1}
    assert main(["history", "--runs", str(run), "--out", str(tmp_path / "page")]) == 0
    assert "<code>eps-&lt;placement&gt;</code>" in (tmp_path / "page" / "history.html").read_text()
    assert "| eps-\\<placement\\> |" in (tmp_path / "page" / "history.md").read_text()


def test_history_says_what_to_pass_for_a_folder_without_a_run(tmp_path, capsys):
    assert main(["history", "--runs", str(tmp_path)]) == 2
    assert "no summary.json here; pass a run folder" in capsys.readouterr().err


def test_docstring_warnings_become_one_line_notices():
    from conformance.backends.base import doc_notices

    doc = """AdaMax.

    .. warning::
        Non-backward-compatible change: `learning_rate`
        will be renamed.

    Args:
        x: not part of it.

    .. Warning::
        Second one.
    """
    assert doc_notices(doc) == ["Non-backward-compatible change: `learning_rate` will be renamed.", "Second one."]
    assert doc_notices(None) == [] and doc_notices("no warnings here") == []
