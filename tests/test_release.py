"""Release compare and baseline commands, on a real small run's summary.json doctored into each kind of change.

The run is made once per module by the real plugin on real torch and MindSpore (two replay cases, one that
conforms and one that diverges); every test copies its summary and changes what a new release could change.
"""
from __future__ import annotations

import configparser
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import release
from conformance.__main__ import main
from conformance.commands.baseline import pins
from tests.conftest import _frameworks_missing, case_yaml

ROOT = Path(__file__).resolve().parents[1]
AGREE = "cases/a.yaml::agree[cpu-float32]"
EPS = "cases/a.yaml::eps[cpu-float32]"


@pytest.fixture(scope="module")
def real_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """summary.json of a real 2-item run (a subprocess: frameworks cannot be imported twice in one process)."""
    if _frameworks_missing():
        pytest.skip("needs torch and mindspore on the CPU")
    folder = tmp_path_factory.mktemp("run")
    (folder / "conftest.py").write_text('pytest_plugins = ["conformance.plugin"]\n')
    (folder / "cases").mkdir()
    (folder / "cases" / "a.yaml").write_text(
        "cases:\n" + case_yaml("agree")
        + case_yaml("eps", scale=1e-8, expect="diverge", reason="eps placement",
                    tolerance="{params: {atol: 1.0e-9}, state: {ulp: 4}}"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOG_v": "3"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-html",
                           "--run-id=real"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "reports" / "real" / "summary.json").read_text())


def _item(summary: dict, nodeid: str) -> dict:
    return next(i for i in summary["items"] if i["nodeid"] == nodeid)


def _write(tmp_path: Path, name: str, summary: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _compare(tmp_path: Path, old: dict, new: dict, *options: str, capsys) -> tuple[int, str, str]:
    code = main(["compare", str(_write(tmp_path, "old", old)), str(_write(tmp_path, "new", new)), *options])
    out = capsys.readouterr()
    return code, out.out, out.err


def _kinds(old: dict, new: dict) -> dict[str, tuple[str, str]]:
    result = release.compare(release.from_summary(old), release.from_summary(new))
    return {c.nodeid: (c.kind, c.label) for c in result.items}


def test_real_run_has_the_fingerprint_and_both_verdicts(real_summary):
    run = real_summary["run"]
    assert run["build"]["torch"]["version"] == run["torch"] and run["build"]["torch"]["threads"] >= 1
    assert run["build"]["mindspore"]["version"] == run["mindspore"]
    assert "CPU" in run["build"]["mindspore"]["device_targets"]
    assert run["build"]["mindspore"]["host_blocking_run"] == os.environ.get("MS_DEV_HOST_BLOCKING_RUN", "1")
    assert _item(real_summary, AGREE)["observed"] == "conform"
    assert _item(real_summary, EPS)["observed"] == "diverge"


def test_same_run_is_unchanged_and_exits_zero(real_summary, tmp_path, capsys):
    code, out, _ = _compare(tmp_path, real_summary, real_summary, capsys=capsys)
    assert code == 0
    assert "items: 2: 2 unchanged" in out and out.count("bitwise identical") == 2
    assert "API changes: none" in out and out.rstrip().endswith("no change (exit 0)")


def test_figure_moved_beyond_the_factor_is_reported_within_it_is_not(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    figures = _item(new, EPS)["max"]["state"]
    old_abs = figures["abs"]
    figures["abs"] *= 3
    figures["ulp"] = max(figures["ulp"], 100.0)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1
    assert _kinds(real_summary, new)[EPS] == ("moved", "MOVED")
    assert f"max state abs: {release.fmt(old_abs)} -> {release.fmt(old_abs * 3)} (x3)" in out

    figures["abs"] = old_abs * 1.5  # within x2: a changed figure, but not beyond the rule
    assert _kinds(real_summary, new)[EPS] == ("unchanged", "UNCHANGED")
    result = release.compare(release.from_summary(real_summary), release.from_summary(new))
    assert "within the noise rule" in next(c for c in result.items if c.nodeid == EPS).details[0]


def test_moves_within_a_few_ulp_are_noise_and_the_divergent_step_always_counts(real_summary):
    new = copy.deepcopy(real_summary)
    agree = _item(new, AGREE)
    agree["final"]["params"] = {"abs": 1e-7, "rel": 1e-7, "ulp": 2.0}  # was ~0: a huge factor, but 2 ULP
    base = copy.deepcopy(real_summary)
    _item(base, AGREE)["final"]["params"] = {"abs": 0.0, "rel": 0.0, "ulp": 0.0}
    assert _kinds(base, new)[AGREE][0] == "unchanged"
    assert release.NoiseRule(min_ulp=1).moved(0.0, 1e-7)
    rule = release.NoiseRule(min_ulp=1)
    result = release.compare(release.from_summary(base), release.from_summary(new), rule)
    assert next(c for c in result.items if c.nodeid == AGREE).kind == "moved"

    _item(new, EPS)["first_divergent_step"] = 7
    assert _kinds(real_summary, new)[EPS][0] == "moved"


def test_new_divergence_is_a_regression_or_an_intended_change(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, AGREE).update(observed="diverge", outcome="failed", first_divergent_step=3)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "REGRESSION" in out and "now: diverge from step 3" in out

    _item(new, AGREE).update(expect="diverge", outcome="passed")
    assert _kinds(real_summary, new)[AGREE] == ("new divergence", "INTENDED CHANGE (case expects diverge)")


def test_vanished_divergence_is_a_stale_expectation_naming_the_case_file(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, EPS).update(observed="conform", outcome="failed", first_divergent_step=None)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "STALE EXPECTATION" in out
    assert "update cases/a.yaml: case 'eps' says expect: diverge; set expect: conform" in out


def test_new_errors_and_skips_and_items_that_run_again(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, AGREE).update(observed="error", outcome="error", reason="mindspore raised TypeError at step 1: x")
    _item(new, EPS).update(observed="skipped", outcome="skipped", reason="mindspore is not installed")
    code, out, _ = _compare(tmp_path, real_summary, new, "--accept-environment", capsys=capsys)
    assert code == 1
    assert _kinds(real_summary, new) == {AGREE: ("error/skip", "NEW ERROR"), EPS: ("error/skip", "NEW SKIP")}
    assert "now: error: mindspore raised TypeError at step 1: x" in out
    assert _kinds(new, real_summary)[AGREE] == ("error/skip", "RUNS AGAIN")


def test_new_and_removed_items(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    added = copy.deepcopy(_item(new, AGREE))
    added.update(nodeid="cases/b.yaml::added[cpu-float32]", case="added", file="cases/b.yaml")
    new["items"] = [added, _item(new, AGREE)]
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1
    kinds = _kinds(real_summary, new)
    assert kinds["cases/b.yaml::added[cpu-float32]"] == ("new item", "NEW ITEM")
    assert kinds[EPS] == ("removed item", "REMOVED ITEM") and kinds[AGREE][0] == "unchanged"


def test_api_changes_renamed_parameter_and_new_default(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    params = new["run"]["api"]["mindspore"]["params"]
    params["epsilon"] = params.pop("eps")
    params["learning_rate"]["default"] = "0.002"
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "items: 2: 2 unchanged" in out  # the API alone makes it a change
    assert "mindspore.nn.AdaMax: parameter renamed? eps -> epsilon (same default 1e-08)" in out
    assert "mindspore.nn.AdaMax: default of learning_rate changed: 0.001 -> 0.002" in out


def test_different_machine_is_refused_unless_accepted(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    new["run"]["cpu"] = "AMD EPYC 9654"
    new["run"]["build"]["torch"]["threads"] = 64
    code, out, err = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 3 and out == ""
    assert "machine cpu: " in err and "'AMD EPYC 9654'" in err and "machine torch_threads: " in err
    assert "--accept-environment" in err

    code, out, _ = _compare(tmp_path, real_summary, new, "--accept-environment", capsys=capsys)
    assert code == 0 and "WARNING: different environment (accepted with --accept-environment)" in out


def test_different_dtype_coverage_is_refused(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    for nodeid in (AGREE, EPS):
        _item(new, nodeid).update(observed="skipped", outcome="skipped", reason="no float32 here")
    code, _, err = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 3 and "devices/dtypes that ran: cpu-float32 -> none" in err


def test_unreadable_inputs_say_what_to_pass(tmp_path, capsys):
    code = main(["compare", str(tmp_path / "nothing.json"), str(tmp_path)])
    assert code == 2 and "pass a baseline file (cases/baseline.json) or a run folder" in capsys.readouterr().err


def test_baseline_command_writes_reviewed_text_and_refuses_unpinned_runs(real_summary, tmp_path, capsys):
    run = _write(tmp_path, "run", real_summary)
    requirements = tmp_path / "requirements.txt"
    version = real_summary["run"]["mindspore"]
    requirements.write_text(f"torch=={real_summary['run']['torch'].split('+')[0]}\nmindspore=={version}\n")
    target = tmp_path / "baseline.json"
    assert main(["baseline", str(run), "--write", str(target), "--requirements", str(requirements)]) == 0
    written = json.loads(target.read_text())
    assert written["format"] == release.FORMAT and set(written["items"]) == {AGREE, EPS}
    assert written["source"]["versions"]["mindspore"] == version
    assert written["items"][EPS]["max"] == _item(real_summary, EPS)["max"]
    assert main(["compare", str(target), str(run)]) == 0

    requirements.write_text("torch==2.13.0\nmindspore==9.9.9\n")
    capsys.readouterr()
    assert main(["baseline", str(run), "--write", str(target), "--requirements", str(requirements)]) == 3
    assert f"mindspore {version} is not the pinned mindspore==9.9.9" in capsys.readouterr().err
    interrupted = copy.deepcopy(real_summary)
    interrupted["run"]["complete"] = False
    assert main(["baseline", str(_write(tmp_path, "cut", interrupted)), "--requirements", str(requirements),
                 "--force"]) == 0  # --force prints the baseline instead of refusing
    assert json.loads(capsys.readouterr().out)["source"]["complete"] is False


def test_committed_baseline_comes_from_the_pins_and_tox_defaults_repeat_them():
    pinned = pins(ROOT / "requirements.txt")
    baseline = release.load(ROOT / "cases" / "baseline.json")
    for name in ("torch", "mindspore"):
        assert baseline["source"]["versions"][name].split("+")[0] == pinned[name]
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    deps = tox["testenv:conformance{,-ms29,-ms28}"]["deps"]
    assert f"torch=={{env:TORCH_VERSION:{pinned['torch']}}}" in deps
    assert f"mindspore=={{env:MINDSPORE_VERSION:{pinned['mindspore']}}}" in deps
