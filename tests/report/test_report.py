"""Report, merge and docs, on a tiny real run (fixture `tiny_run`) and, for downsampling, a long JSONL."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.report.markdown import fence, md
from conformance.report.series import read_curves
from conformance.results import storage
from conformance.results.entry import RAN
from tests.conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess:
    """`python -m conformance ...` in a fresh process; also reports whether a framework got imported."""
    code = ("import sys; from conformance.__main__ import main; rc = main(sys.argv[1:]); "
            "print('FRAMEWORKS', sorted(m for m in ('torch', 'mindspore') if m in sys.modules)); sys.exit(rc)")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def rows(index_html: str) -> list[str]:
    body = index_html.split('<table id="items">', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr class=", body)


@pytest.mark.integration
def test_run_writes_index_and_one_page_per_item(tiny_run):
    data = storage.read_json(tiny_run / "summary.json")
    html = (tiny_run / "index.html").read_text()
    assert len(rows(html)) == len(data["items"]) == 3
    for entry in data["items"]:
        page = (tiny_run / "items" / f"{Path(entry['jsonl']).stem}.html").read_text()
        assert entry["rerun"].replace("'", "&#39;") in page
        if entry["outcome"] == "skipped":
            assert "<svg" not in page and "No steps ran" in page
        else:
            assert page.count("<svg") == 1 and "- id: " + entry["case"] in page


@pytest.mark.integration
def test_case_text_is_escaped_everywhere(tiny_run):
    for page in [tiny_run / "index.html", *(tiny_run / "items").glob("*.html")]:
        text = page.read_text()
        assert "<script>alert" not in text and "<b>markup" not in text, page
    eps = (tiny_run / "items" / "tiny_eps__cpu-float32.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in eps


@pytest.mark.integration
def test_item_page_states_the_recorded_first_divergence(tiny_run):
    entry = next(e for e in storage.read_json(tiny_run / "summary.json")["items"] if e["case"] == "tiny_eps")
    first = entry["first_divergence"]
    page = (tiny_run / "items" / "tiny_eps__cpu-float32.html").read_text()
    row = page.split("<h2>First divergence</h2>", 1)[1].split("</table>", 1)[0]
    assert f">{first['step']}<" in row and first["tensor"] in row
    assert f"torch = {first['a']:.9g}" in row and f"mindspore = {first['b']:.9g}" in row


@pytest.mark.integration
def test_every_numeric_item_carries_msprobes_figures_and_its_page_shows_them(tiny_run):
    """summary.json gives msprobe's metrics for params and state at the last and the worst step of every
    item that ran; the item page shows them, labelled as msprobe's standard, as recorded."""
    ran = [e for e in storage.read_json(tiny_run / "summary.json")["items"] if e["outcome"] in RAN]
    assert ran
    for entry in ran:
        probe = entry["msprobe"]
        assert probe["last"]["step"] == entry["steps"] and 1 <= probe["worst"]["step"] <= entry["steps"]
        assert isinstance(probe["passes"], bool)
        page = (tiny_run / "items" / f"{Path(entry['jsonl']).stem}.html").read_text()
        section = page.split("<h2 id=\"msprobe\">msprobe's standard</h2>", 1)[1].split("</details>", 1)[0]
        for kind in ("last", "worst"):
            for quantity in ("params", "state"):
                figures = probe[kind][quantity]
                assert f"{figures['max_abs']:.9g}</td>" in section and f"{figures['max_rel']:.9g}</td>" in section
        assert ("this item passes" if probe["passes"] else "this item does not pass") in section


def test_downsampling_keeps_each_windows_max_and_bounds_the_points(tmp_path):
    path, spike_step, steps = tmp_path / "long.jsonl", 12_345, 25_000
    with storage.StepWriter(path) as writer:
        for step in range(1, steps + 1):
            value = 1.0 if step == spike_step else 1e-7 * (1 + step % 7)
            metric = {"abs": value, "rel": value, "ulp": 3.0, "at": [0], "a": 0.0, "b": 0.0, "bad": 0}
            params = {"w": metric, "b": {**metric, "abs": 0.0}}
            writer.write({"step": step, "pairs": {"torch~mindspore": {"params": params}}})
    curves = read_curves(path, steps, max_points=2000)
    x, y = curves.curves["torch~mindspore"]["params"]["abs"].points()
    assert len(x) <= 2000 and curves.window == 13
    assert y.max() == 1.0 and spike_step in x
    # every full window (13 steps > the 7-step cycle) peaks at 7e-7; the last window holds step 25000 alone
    rest = y[x != spike_step]
    assert (rest[:-1] == 7e-7).all() and rest[-1] == 1e-7 * (1 + steps % 7)


@pytest.mark.integration
def test_rerender_reads_stored_results_only(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    shutil.rmtree(copy / "items")
    (copy / "index.html").unlink()
    done = cli("report", str(copy))
    assert done.returncode == 0, done.stderr
    assert "FRAMEWORKS []" in done.stdout
    assert len(list((copy / "items").glob("*.html"))) == 3 and (copy / "index.html").exists()


@pytest.mark.integration
def test_merge_keys_by_item_prefers_items_that_ran_and_shows_origin(tiny_run, tmp_path):
    """Shards: each half of the run in its own folder; the second also holds a skipped copy of an item
    that ran in the first (as a machine without that device would record it)."""
    data = storage.read_json(tiny_run / "summary.json")
    ran = [e for e in data["items"] if e["outcome"] != "skipped"]
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, items, run_id in ((first, ran, "a"), (second, [e for e in data["items"] if e not in ran], "b")):
        shutil.copytree(tiny_run / "steps", folder / "steps")
        storage.write_json(folder / "summary.json", {"run": {**data["run"], "id": run_id}, "items": items})
    shadow = {**ran[0], "outcome": "skipped", "observed": "skipped", "reason": "no such device here"}
    extra = storage.read_json(second / "summary.json")
    storage.write_json(second / "summary.json", {**extra, "items": [*extra["items"], shadow]})
    out = tmp_path / "merged"
    done = cli("report", str(first), str(second), "--out", str(out))
    assert done.returncode == 0, done.stderr
    merged = storage.read_json(out / "summary.json")
    by_id = {e["nodeid"]: e for e in merged["items"]}
    assert set(by_id) == {e["nodeid"] for e in data["items"]}
    assert by_id[ran[0]["nodeid"]]["outcome"] == ran[0]["outcome"]
    assert by_id[ran[0]["nodeid"]]["origin"]["run"] == "a"
    assert by_id[ran[0]["nodeid"]]["also_in"] == [{"run": "b", "outcome": "skipped"}]
    assert [o["id"] for o in merged["run"]["merged_from"]] == ["a", "b"]
    assert merged["run"]["counts"] == data["run"]["counts"]
    assert all((out / e["jsonl"]).exists() for e in merged["items"])
    index = (out / "index.html").read_text()
    assert len(rows(index)) == 3 and "origin run" in index


@pytest.mark.integration
def test_report_on_a_folder_without_summary_says_what_to_pass(tmp_path):
    done = cli("report", str(tmp_path))
    assert done.returncode == 2 and "no summary.json here" in done.stderr


def test_markdown_escaping_and_fences():
    assert md("a|b *c* <x>\nnext") == "a\\|b \\*c\\* \\<x\\> next"
    assert fence("plain") == "```" and fence("has ```` four") == "`````"


@pytest.mark.integration
def test_summary_entries_carry_the_case_text(tiny_run):
    for entry in storage.read_json(tiny_run / "summary.json")["items"]:
        assert entry["source"].lstrip().startswith(f"- id: {entry['case']}")


def test_a_training_item_page_shows_both_loss_curves_and_the_mindformers_verdict(tmp_path):
    """A synthetic run folder (summary entry + JSONL): the page draws the loss figure beside the divergence
    grid, states the figures of the `training` block and links the standard's source."""
    from conformance.report.run_report import render_item
    from conformance.results.entry import entry as blank_entry
    from conformance.results.entry import training_entry

    steps = 3000  # over MAX_POINTS: loss curves are window means
    (tmp_path / "steps").mkdir()
    with storage.StepWriter(tmp_path / "steps" / "t.jsonl") as writer:
        for step in range(1, steps + 1):
            metric = {"abs": 1e-6, "rel": 1e-6, "ulp": 3.0, "at": [0], "a": 0.0, "b": 0.0, "bad": 0}
            writer.write({"step": step, "pairs": {"torch~mindspore": {"params": {"w": metric}}},
                          "loss": {"torch": 2.0 / step, "mindspore": 2.0 / step * (1 + (step % 2) * 0.01)}})
    block = training_entry("digits", steps, "torch~mindspore", {"torch": 2.0 / steps, "mindspore": 2.0 / steps},
                           {"torch": 0.97, "mindspore": 0.96}, (2.0, 2.004), (2.0 / steps, 2.0 / steps), 1e-4, 0.005,
                           359)
    entry = blank_entry(nodeid="cases/real_data.yaml::t[cpu-float32]", case="t", file="cases/real_data.yaml",
                        device="cpu", dtype="float32", expect="conform", observed="conform", outcome="passed",
                        steps=steps, jsonl="steps/t.jsonl", training=block,
                        pairs={"torch~mindspore": {"role": "primary", "tolerance": {}}})
    page = render_item(tmp_path, {"id": "r"}, entry, "none")
    assert page.count("<svg") == 2 and "Training on digits" in page
    assert "training loss on digits" in page and "relative loss gap per step" in page
    assert "first loss within, mean loss within" in page and block["mindformers"]["source"] in page
    assert "0.97" in page and "0.96" in page and "the mean of each window of 2 steps" in page
    curves = read_curves(tmp_path / "steps" / "t.jsonl", steps, loss_pair=("torch", "mindspore"))
    x, y = curves.losses["mindspore"].points()
    assert len(x) == 1500 and x[0] == 1.5 and y[0] == pytest.approx((2.0 * 1.01 + 1.0) / 2)
    gx, gy = curves.loss_gap.points()
    assert gy.max() == pytest.approx(0.01) and len(gx) == 1500


def test_first_screen_gives_the_result_before_the_command_and_skip_reasons():
    from conformance.report.run_report import render_index
    from tests.report.docs_summary import item, summary

    data = summary()
    data["run"]["argv"] = ["-p", "no:cacheprovider", "-n", "2", "cases"]
    data["items"].append(item("cases/x.yaml::surprise[cpu-float32]", expect="conform", observed="diverge",
                              outcome="failed", message="expected conform, observed diverge (torch~mindspore)"))
    skipped = {"outcome": "skipped", "observed": "skipped", "reason": "torch has no CUDA device", "hparams": {}}
    for n in range(5):  # the largest group: items that did not run
        data["items"].append(item(f"cases/g.yaml::gpu_{n}[gpu-float32]", expect="conform", **skipped))
    html = render_index(data["run"], data["items"])
    result, details = html.index('<div id="result">'), html.index('<details id="run-details">')
    assert html.index('<p id="outcomes">') < result < details
    assert html.index("Command: <code>-p no:cacheprovider -n 2 cases</code>") > details
    assert html.index("torch has no CUDA device") > details  # skip reasons folded below the result
    first_screen = html[result:details]
    assert "eps_placement</code>: " in first_screen and "default_lr</code>: " in first_screen
    assert "Failed: 1 item" in first_screen and "surprise" in first_screen and "expected conform" in first_screen
    groups = re.findall(r"<tr><td>(.*?)</td><td class=\"num\">(\d+)", html.split('<table id="causes">', 1)[1])
    kinds = [text.startswith("skipped") for text, _ in groups]
    assert kinds == sorted(kinds) and kinds[-1]  # the groups of items that ran first, skipped ones last
    assert ("skipped: torch has no CUDA device", "5") in groups  # though larger than most
    clean = summary()
    assert "Failed: none." in render_index(clean["run"], clean["items"])
