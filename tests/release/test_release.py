"""Release compare and baseline commands, on a real small run's summary.json doctored into each kind of change.

The run (tests/conftest.py: real_summary) is made once per session by the real plugin on real torch and
MindSpore (two replay cases, one that conforms and one that diverges); every test copies its summary and
changes what a new release could change.
"""
from __future__ import annotations

import configparser
import copy
import json
import os
import sys
from pathlib import Path

import pytest

from conformance import numbers
from conformance.__main__ import main
from conformance.release import baseline as baselines
from conformance.release import comparison, rules, virtualenvs
from conformance.release.pins import pins
from tests.conftest import AGREE, EPS, REPO
from tests.conftest import summary_item as _item


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
    result = comparison.compare(baselines.from_summary(old), baselines.from_summary(new))
    return {c.nodeid: (c.kind, c.label) for c in result.items}


@pytest.mark.integration
def test_real_run_has_the_fingerprint_and_both_verdicts(real_summary):
    run = real_summary["run"]
    assert run["build"]["torch"]["version"] == run["torch"] and run["build"]["torch"]["threads"] >= 1
    assert run["build"]["mindspore"]["version"] == run["mindspore"]
    assert "CPU" in run["build"]["mindspore"]["device_targets"]
    assert run["build"]["mindspore"]["host_blocking_run"] == os.environ.get("MS_DEV_HOST_BLOCKING_RUN", "1")
    notices = run["api"]["mindspore"]["notices"]  # the docstring's announced changes, recorded with the API
    if tuple(int(p) for p in run["mindspore"].split(".")[:2]) >= (2, 9):
        assert any("`learning_rate` will be renamed to `lr`" in n for n in notices)
    assert run["api"]["torch"]["notices"] == []
    assert _item(real_summary, AGREE)["observed"] == "conform"
    assert _item(real_summary, EPS)["observed"] == "diverge"


@pytest.mark.integration
def test_same_run_is_unchanged_and_exits_zero(real_summary, tmp_path, capsys):
    code, out, _ = _compare(tmp_path, real_summary, real_summary, capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[2] == "items: 2: 2 UNCHANGED (2 bitwise identical)" and lines[3] == "API changes: none"
    assert "changes: none" in lines and "unchanged: 2 items (listed with -v)" in lines
    assert AGREE not in out and out.rstrip().endswith("result: UNCHANGED: no item and no API changed (exit 0)")
    assert "environment: equivalent for bits" in out

    code, out, _ = _compare(tmp_path, real_summary, real_summary, "-v", capsys=capsys)
    assert code == 0 and "unchanged: 2 items\n" in out
    assert f"UNCHANGED  {AGREE}\n      conform, bitwise identical" in out


@pytest.mark.integration
def test_figure_moved_beyond_the_factor_is_reported_within_it_is_not(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    figures = _item(new, EPS)["max"]["state"]
    old_abs = figures["abs"]
    figures["abs"] *= 3
    figures["ulp"] = max(figures["ulp"], 100.0)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1
    assert _kinds(real_summary, new)[EPS] == ("moved", "MOVED")
    moved = f"max state abs: {numbers.fmt(old_abs)} -> {numbers.fmt(old_abs * 3)} (x3)"
    # the moved figure says which part of the noise rule flagged it, with the ULP figures it was judged by
    assert (f"{moved}: flagged: more than x2, and not within 4 ULP on both sides "
            f"(ULP {numbers.short(figures['ulp'])} -> {numbers.short(figures['ulp'])})") in out

    figures["abs"] = old_abs * 1.5  # within x2: a changed figure, but not beyond the rule
    assert _kinds(real_summary, new)[EPS] == ("unchanged", "UNCHANGED")
    result = comparison.compare(baselines.from_summary(real_summary), baselines.from_summary(new))
    assert "within the noise rule" in next(c for c in result.items if c.nodeid == EPS).details[0]


@pytest.mark.integration
def test_moves_within_a_few_ulp_are_noise_and_the_divergent_step_always_counts(real_summary):
    new = copy.deepcopy(real_summary)
    agree = _item(new, AGREE)
    agree["final"]["params"] = {"abs": 1e-7, "rel": 1e-7, "ulp": 2.0}  # was ~0: a huge factor, but 2 ULP
    base = copy.deepcopy(real_summary)
    _item(base, AGREE)["final"]["params"] = {"abs": 0.0, "rel": 0.0, "ulp": 0.0}
    assert _kinds(base, new)[AGREE][0] == "unchanged"
    assert not rules.NoiseRule().moved(0.0, 1e-7, 0.0, 2.0)  # within 4 ULP on both sides: noise
    assert rules.NoiseRule(min_ulp=1).moved(0.0, 1e-7, 0.0, 2.0)  # the floor is min_ulp, read by moved
    assert rules.NoiseRule(min_ulp=1e9).moved(1.0, 5.0, 3.0, float("nan"))  # NaN ULP is never within
    assert not rules.NoiseRule(min_ulp=0).moved(1.0, 1.5, 10.0, 20.0)  # within the factor
    rule = rules.NoiseRule(min_ulp=1)
    result = comparison.compare(baselines.from_summary(base), baselines.from_summary(new), rule)
    assert next(c for c in result.items if c.nodeid == AGREE).kind == "moved"

    _item(new, EPS)["first_divergent_step"] = 7
    assert _kinds(real_summary, new)[EPS][0] == "moved"


@pytest.mark.integration
def test_new_divergence_is_a_regression_or_an_intended_change(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, AGREE).update(observed="diverge", outcome="failed", first_divergent_step=3)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "REGRESSION" in out and "now: diverge from step 3" in out

    _item(new, AGREE).update(expect="diverge", outcome="passed")
    assert _kinds(real_summary, new)[AGREE] == ("new divergence", "INTENDED CHANGE (case expects diverge)")


@pytest.mark.integration
def test_vanished_divergence_is_a_stale_expectation_naming_the_case_file(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, EPS).update(observed="conform", outcome="failed", first_divergent_step=None)
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "STALE EXPECTATION" in out
    assert "update cases/a.yaml: case 'eps' says expect: diverge; set expect: conform" in out


@pytest.mark.integration
def test_a_pair_other_than_the_first_that_changes_is_a_change(real_summary, tmp_path, capsys):
    """A release can change one framework against its own oracle (or an N-way item's other pair) while
    the first pair's figures stay bitwise identical: torch.compile's float16 step from torch 2.14.1."""
    new = copy.deepcopy(real_summary)
    agree = _item(new, AGREE)
    agree["pairs"]["torch~oracle"].update(observed="nonfinite", first_divergent_step=1)
    agree["outcome"] = "failed"
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and _kinds(real_summary, new)[AGREE] == ("pair changed", "NEW FAILURE")
    assert (f"  NEW FAILURE {AGREE}\n      outcome passed -> failed; first pair still conform\n"
            "      torch~oracle: conform -> nonfinite from step 1\n") in out
    assert _kinds(new, real_summary)[AGREE] == ("pair changed", "FAILURE GONE")
    agree["outcome"] = "passed"  # a pair that changed while the item still passes (its expectation allows it)
    assert _kinds(real_summary, new)[AGREE] == ("pair changed", "PAIRS CHANGED")
    old = baselines.from_summary(real_summary)
    for item in old["items"].values():
        item.pop("pairs")  # a baseline from before pairs were kept: nothing to compare them with
    result = comparison.compare(old, baselines.from_summary(new))
    assert next(c for c in result.items if c.nodeid == AGREE).kind == "unchanged"


@pytest.mark.integration
def test_new_errors_and_skips_and_items_that_run_again(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    _item(new, AGREE).update(observed="error", outcome="error", reason="mindspore raised TypeError at step 1: x")
    _item(new, EPS).update(observed="skipped", outcome="skipped", reason="mindspore is not installed")
    code, out, _ = _compare(tmp_path, real_summary, new, "--accept-environment", capsys=capsys)
    assert code == 1
    assert _kinds(real_summary, new) == {AGREE: ("error/skip", "NEW ERROR"), EPS: ("error/skip", "NEW SKIP")}
    # one line per item, its reason once in the numbered list after them
    assert (f"  NEW ERROR (1): ran in the reference, errors now\n    was conform, now error, reason [1] (1):\n"
            f"      {AGREE}\n") in out
    assert "  [1] mindspore raised TypeError at step 1: x\n" in out
    code, out, _ = _compare(tmp_path, real_summary, new, "--accept-environment", "-v", capsys=capsys)
    assert "now: error: mindspore raised TypeError at step 1: x" in out  # -v: every item with its details
    assert _kinds(new, real_summary)[AGREE] == ("error/skip", "RUNS AGAIN")


@pytest.mark.integration
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
    assert "  NEW ITEM (1): in the run, not in the reference" in out
    assert "    conform (1):\n      cases/b.yaml::added[cpu-float32]\n" in out


@pytest.mark.integration
def test_new_skipped_items_are_one_line_each_and_their_reasons_are_given_once_by_side(real_summary, tmp_path,
                                                                                        capsys):
    new = copy.deepcopy(real_summary)
    gpu = "torch: no CUDA device here; mindspore: MindSpore GPU needs a driver; none here"
    matrix = gpu + "; keras: keras is not installed; keras@cpu: keras is not installed"
    added = []
    for index, reason in enumerate([gpu, gpu, matrix]):
        item = copy.deepcopy(_item(new, AGREE))
        item.update(nodeid=f"cases/g.yaml::g{index}[gpu-float32]", device="gpu", observed="skipped",
                    outcome="skipped", reason=reason, final=None, max=None)
        added.append(item)
    new["items"] = [*new["items"], *added]
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1
    lines = out.splitlines()
    start = lines.index("  NEW ITEM (3): in the run, not in the reference: the case library grew; "
                        "refresh the baseline once reviewed")
    assert lines[start + 1:start + 6] == [
        "    skipped, reason [1] (2):", "      cases/g.yaml::g0[gpu-float32]", "      cases/g.yaml::g1[gpu-float32]",
        "    skipped, reason [2] (1):", "      cases/g.yaml::g2[gpu-float32]"]
    assert out.count("MindSpore GPU needs a driver") == 2  # once per distinct reason, not once per item
    reasons = lines[lines.index("reasons:"):]
    gpu_lines = ["torch: no CUDA device here", "      mindspore: MindSpore GPU needs a driver; none here"]
    assert reasons[1:6] == [f"  [1] {gpu_lines[0]}", gpu_lines[1], f"  [2] {gpu_lines[0]}", gpu_lines[1],
                            "      keras, keras@cpu: keras is not installed"]


@pytest.mark.integration
def test_api_changes_renamed_parameter_and_new_default(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    params = new["run"]["api"]["mindspore"]["params"]
    params["epsilon"] = params.pop("eps")
    params["learning_rate"]["default"] = "0.002"
    new["run"]["api"]["mindspore"]["notices"] = ["Non-backward-compatible change: x"]
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 1 and "items: 2: 2 UNCHANGED (2 bitwise identical)" in out  # the API alone makes it a change
    assert "API changes: 2" in out.splitlines()[3]
    assert "(not an API change) mindspore.nn.AdaMax: new docstring warning: Non-backward-compatible change: x" in out
    assert "mindspore.nn.AdaMax: parameter renamed? eps -> epsilon (same default 1e-08)" in out
    assert "mindspore.nn.AdaMax: default of learning_rate changed: 0.001 -> 0.002" in out


@pytest.mark.integration
def test_a_different_kernel_build_alone_is_ignored_and_said_so(real_summary, tmp_path, capsys):
    old, new = copy.deepcopy(real_summary), copy.deepcopy(real_summary)
    old["run"]["platform"] = "Linux-6.18.44-fc-v769-x86_64-with-glibc2.36"
    new["run"]["platform"] = "Linux-6.18.44-fc-v669-x86_64-with-glibc2.36"
    code, out, err = _compare(tmp_path, old, new, capsys=capsys)
    assert code == 0 and err == ""
    assert "environment: equivalent for bits" in out
    assert "ignored (does not change bits): kernel build: '6.18.44-fc-v769' -> '6.18.44-fc-v669'" in out


def test_os_strings_split_into_what_can_and_cannot_change_bits():
    assert rules.os_parts("Linux-6.18.44-fc-v769-x86_64-with-glibc2.36") == {
        "system": "Linux", "kernel": "6.18.44-fc-v769", "arch": "x86_64", "libc": "glibc2.36"}
    env = rules.Environment()
    rules._os_differences("macOS-14.2-arm64-arm-64bit", "macOS-14.3-arm64-arm-64bit", env)
    assert env.ignored == [] and env.material[0].startswith("operating system and its math libraries: ")
    env = rules.Environment()
    rules._os_differences("Linux-6.1-x86_64-with-glibc2.36", "Linux-6.2-aarch64-with-glibc2.36", env)
    assert env.material == ["CPU architecture: other kernels: 'x86_64' -> 'aarch64'"]
    assert env.ignored == ["kernel build: '6.1' -> '6.2'"]


@pytest.mark.integration
def test_what_can_change_bits_is_named_and_compared_under_the_noise_rule(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    new["run"]["cpu"] = "AMD EPYC 9654"
    new["run"]["build"]["torch"]["threads"] = 64
    new["run"]["build"]["torch"]["cpu_capability"] = "AVX2"
    new["run"]["platform"] = real_summary["run"]["platform"].replace("glibc", "glibc9.")
    new["run"]["cpu_count"] = 128
    code, out, err = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 0 and err == ""
    assert "environment: differs in what can change bits" in out
    assert "can change bits: CPU model: libraries choose kernels per CPU: " in out and "'AMD EPYC 9654'" in out
    threads = real_summary["run"]["build"]["torch"]["threads"]
    assert f"can change bits: torch thread count: changes reduction order: {threads} -> 64" in out
    assert "can change bits: CPU ISA level torch dispatches to (e.g. AVX2 vs AVX512 kernels): " in out
    assert "can change bits: C library: its libm computes exp/log/pow: " in out
    assert "ignored (does not change bits): CPU count (threads are compared on their own): " in out


@pytest.mark.integration
def test_cpu_vector_extensions_are_recorded_and_a_difference_names_the_flags(real_summary, tmp_path, capsys):
    """One model string and one torch capability cover machines whose AVX-512 subsets and AMX differ (what
    MKL, oneDNN and MindSpore choose kernels by): a run records them, a compare names those that differ."""
    isa = real_summary["run"]["cpu_isa"]
    assert isinstance(isa, list) and isa == sorted(isa)
    assert all(flag.startswith(("sse", "ssse3", "avx", "amx", "fma", "f16c", "asimd", "sve", "neon")) for flag in isa)
    new = copy.deepcopy(real_summary)
    new["run"]["cpu_isa"] = [f for f in isa if not f.startswith("amx")] + ["avx512_4vnniw"]
    code, out, _ = _compare(tmp_path, real_summary, new, capsys=capsys)
    gone = " ".join(f"-{f}" for f in isa if f.startswith("amx"))
    assert code == 0
    assert f"can change bits: CPU vector extensions (AVX-512 subsets, AMX, VNNI): MKL, oneDNN, MindSpore choose " \
           f"kernels: {gone} +avx512_4vnniw".replace("  ", " ") in out
    del new["run"]["cpu_isa"]  # a reference from before the extensions were recorded
    code, out, _ = _compare(tmp_path, new, real_summary, capsys=capsys)
    assert "choose kernels: recorded on one side only" in out


@pytest.mark.integration
def test_misleading_comparisons_are_refused_with_what_to_do(real_summary, tmp_path, capsys):
    new = copy.deepcopy(real_summary)
    for nodeid in (AGREE, EPS):
        _item(new, nodeid).update(observed="skipped", outcome="skipped", reason="no float32 here")
    code, out, err = _compare(tmp_path, real_summary, new, capsys=capsys)
    assert code == 2 and out == ""
    assert "refused: this comparison would mislead" in err
    assert "devices/dtypes that ran: cpu-float32 -> none: no device/dtype ran on both sides" in err
    assert "--accept-environment" in err

    cut = copy.deepcopy(real_summary)
    cut["run"]["complete"] = False
    code, out, err = _compare(tmp_path, real_summary, cut, capsys=capsys)
    assert code == 2 and "the run (real) was interrupted" in err and "run the suite to the end" in err
    code, out, err = _compare(tmp_path, real_summary, cut, "--accept-environment", capsys=capsys)
    assert code == 0 and "WARNING: compared although it may mislead" in err


def test_unreadable_inputs_say_what_to_pass(tmp_path, capsys):
    code = main(["compare", str(tmp_path / "nothing.json"), str(tmp_path)])
    assert code == 2 and "pass a baseline file (cases/baseline.json) or a run folder" in capsys.readouterr().err


def _pin(project: Path, torch: str, mindspore: str) -> None:
    """A pyproject.toml whose suite extra pins these two releases (where `baseline --project` reads them)."""
    project.write_text(f'[project]\nname = "x"\nversion = "0"\n\n[project.optional-dependencies]\n'
                       f'suite = ["numpy>=1.26", "torch=={torch}", "mindspore=={mindspore}"]\n')


@pytest.mark.integration
def test_baseline_command_writes_reviewed_text_and_refuses_unpinned_runs(real_summary, tmp_path, capsys):
    run = _write(tmp_path, "run", real_summary)
    project = tmp_path / "pyproject.toml"
    version = real_summary["run"]["mindspore"]
    _pin(project, real_summary["run"]["torch"].split("+")[0], version)
    target = tmp_path / "baseline.json"
    assert main(["baseline", str(run), "--write", str(target), "--project", str(project)]) == 0
    written = json.loads(target.read_text())
    assert written["format"] == baselines.FORMAT and set(written["items"]) == {AGREE, EPS}
    assert written["source"]["versions"]["mindspore"] == version
    assert written["items"][EPS]["max"] == _item(real_summary, EPS)["max"]
    assert main(["compare", str(target), str(run)]) == 0

    _pin(project, "2.13.0", "9.9.9")
    capsys.readouterr()
    assert main(["baseline", str(run), "--write", str(target), "--project", str(project)]) == 3
    assert f"mindspore {version} is not the pinned mindspore==9.9.9" in capsys.readouterr().err
    interrupted = copy.deepcopy(real_summary)
    interrupted["run"]["complete"] = False
    assert main(["baseline", str(_write(tmp_path, "cut", interrupted)), "--project", str(project),
                 "--force"]) == 0  # --force prints the baseline instead of refusing
    assert json.loads(capsys.readouterr().out)["source"]["complete"] is False


def test_committed_baseline_comes_from_the_pins_and_tox_defaults_repeat_them():
    pinned = pins(REPO / "pyproject.toml")
    baseline = baselines.load(REPO / "cases" / "baseline.json")
    for name in ("torch", "mindspore"):
        assert baseline["source"]["versions"][name].split("+")[0] == pinned[name]
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    commands = tox["testenv:conformance{,-ms29,-ms28}"]["commands"]
    assert f"--torch {{env:TORCH_VERSION:{pinned['torch']}}}" in commands
    assert f"--mindspore {{env:MINDSPORE_VERSION:{pinned['mindspore']}}}" in commands


# ---------------------------------------------------------------- validate: like with like on this machine

def _stored(envs: Path, reports: Path, pair: virtualenvs.Release, summary: dict) -> Path:
    """A release environment that needs no install (its python runs this one, with its packages) and a
    stored run made in it."""
    python = envs / pair.name / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (envs / pair.name / virtualenvs.STAMP).write_text(json.dumps(virtualenvs.stamp(pair, REPO)))
    run_dir = reports / pair.name / f"{pair.name}-stored"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / virtualenvs.FINGERPRINT).write_text(json.dumps(virtualenvs.fingerprint(python, REPO, [])))
    return run_dir


@pytest.mark.integration
def test_validate_compares_two_runs_of_this_machine_and_the_baseline_across_machines(
        real_summary, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    pinned = pins(REPO / "pyproject.toml")
    envs, reports = tmp_path / "envs", tmp_path / "reports"
    reference = copy.deepcopy(real_summary)
    reference["run"].update(id="pinned-here", mindspore=pinned["mindspore"])
    _stored(envs, reports, virtualenvs.Release(pinned["torch"], pinned["mindspore"]), reference)
    candidate = copy.deepcopy(reference)
    candidate["run"].update(id="candidate-here", mindspore="2.9.0")
    _item(candidate, AGREE).update(observed="diverge", outcome="failed", first_divergent_step=2)  # doctored
    candidate_dir = _stored(envs, reports, virtualenvs.Release(pinned["torch"], "2.9.0"), candidate)
    (candidate_dir / "index.html").write_text("stale")
    other_machine = baselines.from_summary(copy.deepcopy(reference))
    reference_os = rules.os_parts(reference["run"]["platform"])
    other_machine["source"]["machine"]["os"] = reference["run"]["platform"].replace(reference_os["kernel"], "0.0-other")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(other_machine))

    code = main(["validate", "--mindspore", "2.9.0", "--envs-dir", str(envs), "--reports-dir", str(reports),
                 "--baseline", str(baseline)])
    out = capsys.readouterr().out
    assert code == 1
    assert "reusing run" in out and out.count("reusing run") == 2  # both fingerprints match: nothing re-ran
    like = out[out.index("(candidate) vs"):out.index("this machine's pinned run vs")]
    assert "items: 2: 1 REGRESSION, 1 UNCHANGED (1 bitwise identical)" in like
    assert f"REGRESSION {AGREE}" in like and "now: diverge from step 2" in like
    assert "versions: mindspore " + pinned["mindspore"] + " -> 2.9.0" in like
    across = out[out.index("this machine's pinned run vs"):]
    assert "ignored (does not change bits): kernel build: '0.0-other' -> " in across
    assert "items: 2: 2 UNCHANGED (2 bitwise identical)" in across
    assert out.rstrip().endswith("CHANGED something (exit 1)")
    page = (candidate_dir / "index.html").read_text()
    assert f"Changes since torch {pinned['torch']} + MindSpore {pinned['mindspore']} (pinned, this machine)" in page
    assert 'href="items/' in page and "REGRESSION" in page
    assert json.loads((candidate_dir / "compare.json").read_text())["label_counts"] == {"REGRESSION": 1, "UNCHANGED": 1}


@pytest.mark.integration
def test_a_stored_run_is_reused_only_while_its_fingerprint_matches(real_summary, tmp_path):
    pair = virtualenvs.Release("2.13.0", "2.9.0")
    run_dir = _stored(tmp_path / "envs", tmp_path / "reports", pair, real_summary)
    wanted = json.loads((run_dir / virtualenvs.FINGERPRINT).read_text())
    assert virtualenvs.reusable_run(tmp_path / "reports" / pair.name, wanted) == run_dir
    for key, value in (("packages", [*wanted["packages"], "mindspore==2.9.1"]), ("suite", "other"),
                       ("run_args", ["-k", "eps"])):
        assert virtualenvs.reusable_run(tmp_path / "reports" / pair.name, {**wanted, key: value}) is None
    machine = {**wanted["machine"], "settings": {"OMP_NUM_THREADS": "4"}}
    assert virtualenvs.reusable_run(tmp_path / "reports" / pair.name, {**wanted, "machine": machine}) is None
    interrupted = copy.deepcopy(real_summary)
    interrupted["run"]["complete"] = False
    (run_dir / "summary.json").write_text(json.dumps(interrupted))
    assert virtualenvs.reusable_run(tmp_path / "reports" / pair.name, wanted) is None
    with pytest.raises(virtualenvs.ReleaseEnvError, match="give a release number such as 2.9.0"):
        virtualenvs.Release("2.13.0", "../x")


def test_suite_digest_follows_what_decides_results_only(tmp_path):
    for path, text in (("cases/a.yaml", "cases: []"), ("conformance/engine/runner.py", "x = 1"), ("conftest.py", ""),
                       ("conformance/report/page.py", "y = 1"), (".tox/env/lib/conftest.py", "")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    digest = virtualenvs.suite_digest(tmp_path)
    (tmp_path / "conformance/report/page.py").write_text("y = 2")  # presentation: the figures stay
    (tmp_path / ".tox/env/lib/conftest.py").write_text("z = 1")  # a virtualenv's files are not the suite's
    (tmp_path / "conformance/release/baseline.py").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "conformance/release/baseline.py").write_text("reads runs")
    assert virtualenvs.suite_digest(tmp_path) == digest
    (tmp_path / "conformance/engine/runner.py").write_text("x = 2")
    assert virtualenvs.suite_digest(tmp_path) != digest
    (tmp_path / "cases/a.yaml").write_text("cases: [] # edited")
    assert virtualenvs.suite_digest(tmp_path) != digest


@pytest.mark.integration
def test_changes_section_of_a_merged_report_shows_each_items_origin(real_summary, tmp_path, capsys):
    from conformance.results.merge import merge

    halves = []
    for run_id, keep in (("half-a", AGREE), ("half-b", EPS)):
        half = copy.deepcopy(real_summary)
        half["run"]["id"] = run_id
        half["items"] = [_item(half, keep)]
        halves.append(_write(tmp_path, run_id, half))
    merged = tmp_path / "merged"
    merge(halves, merged)
    reference = _write(tmp_path, "reference", real_summary)
    code = main(["compare", str(reference), str(merged), "--into-report"])
    out = capsys.readouterr().out
    assert code == 0 and f"report: {(merged / 'index.html').resolve()}" in out
    page = (merged / "index.html").read_text()
    changes = page[page.index('<h2 id="changes">'):page.index("</table>", page.index('<h2 id="changes">'))]
    assert f"Changes since {reference}" in changes and "<th>origin run</th>" in changes
    for nodeid, origin in ((AGREE, "half-a"), (EPS, "half-b")):
        row = changes[changes.index(nodeid):]
        assert row[:row.index("</tr>")].endswith(f"<td>{origin}</td>")
    assert main(["compare", str(reference), str(merged / "summary.json"), "--into-report"]) == 2
    assert "--into-report needs a run folder" in capsys.readouterr().err
