"""The divergence search: drawn inputs are valid cases, known causes are recognised, and a small real
search (real torch and MindSpore, in a subprocess) is deterministic, writes cases that pass under pytest,
and never rewrites a case that is already there."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import find, given, settings
from hypothesis.errors import NoSuchExample

from conformance.cases import loader
from conformance.engine import models
from conformance.errors import CaseError
from conformance.search import explorer, found_cases, scoring, strategies
from tests.conftest import REPO, needs_frameworks


@settings(max_examples=60, deadline=None, database=None)
@given(strategies.entries(max_steps=20))
def test_every_draw_is_a_valid_case(tmp_path_factory, entry):
    case = explorer.load_case(entry, tmp_path_factory.mktemp("draw"))
    assert not isinstance(case, CaseError)
    assert case.gradients.mode == "replay" and case.devices == ("cpu",)
    assert case.dtypes == (entry["dtype"],) and case.steps == entry["steps"]


def test_float16_draws_search_weight_decay_on_small_parameters(tmp_path):
    """The float16 rounding of the decay (numerics/float16.py) shows where wd*p is a few float16 subnormal
    units: the float16 strategy reaches that region on purpose (a small init scale with weight decay), and
    only in float16."""
    def small(entry):
        return "init_scale" in entry["model"] and entry["optimizer"]["weight_decay"] > 0

    found = find(strategies.entries(("float16",), max_steps=5), small, settings=settings(database=None))
    scale, wd = found["model"]["init_scale"], found["optimizer"]["weight_decay"]
    assert 1e-8 <= scale * wd <= 1e-5 < 2.0 ** -14
    case = explorer.load_case(found, tmp_path)  # the draw is a valid case
    assert not isinstance(case, CaseError) and case.model.init_scale == scale
    with pytest.raises(NoSuchExample):
        find(strategies.entries(("float32", "float64"), max_steps=5), lambda e: "init_scale" in e["model"],
             settings=settings(database=None, max_examples=200))


def test_sign_flip_alternates_the_replayed_gradient():
    entry = {"model": {"kind": "linear", "in": 1, "out": 1},
             "gradients": {"mode": "replay", "distribution": "constant", "scale": 2.0, "sign_flip": True},
             "steps": 4, "dtype": "float32"}
    spec = loader._gradients(entry["gradients"])  # noqa: SLF001 - the loader's reading of `gradients:`
    stream = models.generated_gradients(spec, ["dense0.weight", "dense0.bias"], [(1, 1), (1,)])
    assert [float(next(stream)[0][0, 0]) for _ in range(4)] == [2.0, -2.0, 2.0, -2.0]


def test_budget_reads_examples_or_time_and_says_what_it_wants():
    assert explorer.Budget.parse("300") == explorer.Budget(examples=300)
    assert explorer.Budget.parse("90s").seconds == 90 and explorer.Budget.parse("20m").seconds == 1200
    assert "not deterministic" in explorer.Budget.parse("1m").describe()
    with pytest.raises(ValueError, match="number of examples"):
        explorer.Budget.parse("lots")


def test_fingerprint_ignores_the_id_and_expectations_but_not_the_input():
    entry = {"id": "a", "steps": 3, "optimizer": {"lr": 0.1}}
    assert found_cases.fingerprint(entry) == found_cases.fingerprint({**entry, "id": "b", "expect": "diverge"})
    assert found_cases.fingerprint(entry) != found_cases.fingerprint({**entry, "steps": 4})


def _entry(**changes) -> dict:
    entry = {"model": {"kind": "linear", "in": 2, "out": 2},
             "gradients": {"mode": "replay", "seed": 1, "distribution": "normal", "scale": 1.0},
             "optimizer": {"lr": 1e-3, "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0.0},
             "steps": 3, "dtype": "float32"}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            entry[section] = {**entry[section], name: value}
        else:
            entry[section] = value
    return entry


def _pair(role: str, observed: str, ulp: float, abs_: float = 0.0) -> dict:
    bound = {"atol": 1e-6, "rtol": 0.0, "ulp": 8.0}
    return {"role": role, "observed": observed, "tolerance": {"params": bound, "state": bound, "loss": bound},
            "max": {"params": {"abs": abs_, "rel": 0.0, "ulp": ulp}, "state": None, "loss": None}}


def test_ratio_to_the_bound_agrees_with_the_verdict():
    assert scoring.pair_ratio(_pair("primary", "diverge", ulp=80, abs_=1e-3)) == pytest.approx(10.0)
    assert scoring.pair_ratio(_pair("primary", "conform", ulp=80, abs_=1e-9)) <= 1.0  # abs saved it
    assert scoring.pair_ratio(_pair("oracle", "diverge", ulp=4)) == 1.0  # element-wise atol decided
    assert scoring.pair_ratio(_pair("primary", "diverge", ulp=float("inf"), abs_=float("inf"))) == scoring.SCORE_CAP


def test_findings_are_labelled_by_attribution_and_oracle_departures_come_first():
    attribution = {"pair": "torch~mindspore", "causes": ["float64_in_float32", "eps_placement"], "explained": True}
    result = {"observed": "diverge", "attribution": attribution, "pairs": {
        "torch~mindspore": {"observed": "diverge"}, "torch~oracle": {"observed": "diverge"},
        "mindspore~oracle": {"observed": "conform"}}}
    found = scoring.categories(_entry(dtype="float64"), result)
    assert [c.key for c in found] == ["torch~oracle|float64|unexplained",
                                      "torch~mindspore|float64|eps_placement+float64_in_float32"]
    assert not found[0].explained and found[1].explained
    assert found[1].cause_ids == ["eps_placement", "float64_in_float32"]
    unexplained = scoring.categories(_entry(), {**result, "attribution": {**attribution, "explained": False}})
    assert unexplained[-1].key == "torch~mindspore|float32|unexplained"


def test_a_found_case_declares_its_attributed_causes():
    attribution = {"pair": "torch~mindspore", "causes": ["decay_name_filter"], "explained": True}
    result = {"observed": "diverge", "attribution": attribution, "pairs": {"torch~mindspore": {"observed": "diverge"}}}
    (category,) = scoring.categories(_entry(), result)
    entry = found_cases.case_entry(found_cases.Finding(category, _entry(), result, {}))
    assert entry["cause"] == ["decay_name_filter"] and entry["expect"] == "diverge"
    assert "attributed: decay_name_filter (MindSpore skips weight decay" in entry["reason"]
    lost = {**result, "attribution": {**attribution, "explained": False}}
    (category,) = scoring.categories(_entry(), lost)
    assert found_cases.case_entry(found_cases.Finding(category, _entry(), lost, {}))["cause"] == "unknown"


def _search(cwd: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "conformance", "search", "--seed", "3", "--budget", "16",
                           "--max-steps", "4", "--dtype", "float32", "--dtype", "float64", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.integration
@needs_frameworks
def test_small_real_search_is_deterministic_writes_passing_cases_and_never_rewrites(project):
    """Real frameworks, 16 inputs of <= 4 steps, twice with the same seed into the same folder."""
    root = project.path
    _search(root, "--found-dir", "cases/found", "--run-dir", "run1")
    first = json.loads((root / "run1" / "search.json").read_text())
    assert first["inputs"] == 16 and first["findings"], first
    assert {f["status"] for f in first["findings"]} == {"written"}
    files = sorted((root / "cases" / "found").glob("*.yaml"))
    assert len(files) == len(first["findings"])
    text = files[0].read_text()
    assert "FOUND BY SEARCH, needs review" in text and "python -m conformance search --seed 3 --budget 16" in text
    assert not any(isinstance(c, CaseError) for f in files for c in loader.load_file(f))
    reviewed = text.replace("needs review (not reviewed)", "REVIEWED by a person")
    files[0].write_text(reviewed)

    _search(root, "--found-dir", "cases/found", "--run-dir", "run2")
    second = json.loads((root / "run2" / "search.json").read_text())
    key = [(f["category"], f["fingerprint"]) for f in first["findings"]]
    assert [(f["category"], f["fingerprint"]) for f in second["findings"]] == key  # same seed, same budget
    assert {f["status"] for f in second["findings"]} == {"exists"}
    assert files[0].read_text() == reviewed and len(list((root / "cases" / "found").glob("*.yaml"))) == len(files)

    ran = project.runpytest_subprocess("cases/found", "-p", "no:cacheprovider", "--no-html")
    ran.assert_outcomes(passed=len(files))


@pytest.mark.integration
def test_report_lists_the_search_findings_with_their_scores(tiny_run, tmp_path):
    """A run folder holding a search.json gets a Search section (text escaped like the rest)."""
    import shutil

    from conformance.report.run_report import write_report
    from conformance.results.storage import load_summary

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    finding = {"category": "mindspore~oracle|float32|unexplained", "explained": False,
               "scores": {"torch~mindspore": 2.5, "mindspore~oracle": 0.1}, "file": "cases/found/x<b>.yaml",
               "status": "written"}
    (run_dir / "search.json").write_text(json.dumps({"command": "python -m conformance search --seed 0",
                                                     "inputs": 7, "rounds": 1, "seconds": 3.0,
                                                     "findings": [finding]}))
    html = write_report(run_dir, load_summary(run_dir)).read_text()
    section = html.split("<h2>Search</h2>", 1)[1].split("<h2>", 1)[0]
    assert "mindspore~oracle|float32|unexplained" in section and "UNEXPLAINED" in section
    assert "torch~mindspore 2.5" in section and "7 inputs" in section
    assert "x&lt;b&gt;.yaml" in section
    (run_dir / "search.json").unlink()
    assert "<h2>Search</h2>" not in write_report(run_dir, load_summary(run_dir)).read_text()
