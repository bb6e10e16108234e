"""The pytest plugin end to end, on real frameworks: collection, messages, errors, summary, xdist."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import case_yaml, needs_frameworks


def _write(project: pytest.Pytester, name: str, text: str) -> Path:
    path = project.path / "cases" / name
    path.write_text(text, encoding="utf-8")
    return path


def _summary(project: pytest.Pytester) -> dict:
    return json.loads((project.path / "reports" / "latest" / "summary.json").read_text())


@pytest.mark.integration
def test_collects_items_per_device_and_dtype(project):
    _write(project, "a.yaml", "cases:\n" + case_yaml("one").replace("devices: [cpu]", "devices: [cpu, gpu]")
           + "    dtype: [float32, float64]\n")
    result = project.runpytest_subprocess("--collect-only", "-q")
    result.stdout.fnmatch_lines(["cases/a.yaml::one[[]cpu-float32[]]", "cases/a.yaml::one[[]cpu-float64[]]",
                                 "cases/a.yaml::one[[]gpu-float32[]]", "cases/a.yaml::one[[]gpu-float64[]]"])


@pytest.mark.integration
@needs_frameworks
def test_conform_case_that_diverges_fails_in_the_case_language(project):
    _write(project, "eps.yaml", "cases:\n" + case_yaml("tiny_grads", scale=1e-8,
                                                       tolerance="{params: {atol: 1.0e-9}, state: {ulp: 4}}"))
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "cases/eps.yaml:2: case 'tiny_grads' [[]cpu-float32[]]: expected conform, observed diverge (torch~mindspore)",
        "  first divergent step 1: state tensor u:dense0.* element [[]*[]]: torch=* mindspore=*",
        "  element abs=* rel=* ulp=*; tensor max abs=* rel=* ulp=*",
        "  tolerance atol=0 rtol=0 ulp=4 (* element(s) outside)",
        "  rerun: pytest 'cases/eps.yaml::tiny_grads[[]cpu-float32[]]'",
    ])
    assert "Traceback" not in result.stdout.str()
    item = _summary(project)["items"][0]
    assert item["observed"] == "diverge" and item["outcome"] == "failed" and item["first_divergent_step"] == 1


@pytest.mark.integration
@needs_frameworks
def test_expected_divergence_that_conforms_fails_and_says_stale(project):
    _write(project, "s.yaml", "cases:\n" + case_yaml("no_diff", expect="diverge", reason="claimed difference"))
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expected diverge (claimed difference), observed conform*", "*stale*"])


@pytest.mark.integration
@needs_frameworks
def test_broken_case_fails_alone_and_is_recorded(project):
    _write(project, "mixed.yaml", "cases:\n" + case_yaml("fine") + case_yaml("broken").replace("steps: 5", "stepz: 5"))
    _write(project, "bad.yaml", "cases:\n  - id: x\n    model: {kind: linear\n")
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "cases/bad.yaml:4:1: invalid YAML: *",
        "cases/mixed.yaml:14: case 'broken': key 'stepz': unknown key 'stepz'; did you mean 'steps'? Allowed keys: *",
    ])
    items = {i["nodeid"]: i for i in _summary(project)["items"]}
    assert items["cases/mixed.yaml::fine[cpu-float32]"]["outcome"] == "passed"
    assert items["cases/mixed.yaml::broken[error]"]["error"]["key"] == "stepz"
    assert items["cases/bad.yaml::[error]"]["observed"] == "error"


@pytest.mark.integration
@needs_frameworks
def test_duplicate_id_across_files_is_an_error_item(project):
    _write(project, "a.yaml", "cases:\n" + case_yaml("same"))
    _write(project, "b.yaml", "cases:\n" + case_yaml("same"))
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["cases/b.yaml:2: case 'same': key 'id': duplicate case id; "
                                 "first defined at cases/a.yaml:2*"])


@pytest.mark.integration
@needs_frameworks
def test_summary_and_jsonl_have_the_documented_fields(project):
    _write(project, "a.yaml", "cases:\n" + case_yaml("one", steps=4))
    project.runpytest_subprocess("-q").assert_outcomes(passed=1)
    data = _summary(project)
    assert {"id", "start", "end", "argv", "python", "torch", "mindspore", "numpy", "platform", "cpu",
            "git_commit", "complete"} <= set(data["run"])
    (item,) = data["items"]
    assert {"nodeid", "case", "file", "device", "dtype", "expect", "observed", "outcome", "reason", "steps",
            "first_divergent_step", "final", "max", "pairs"} <= set(item)
    assert set(item["final"]) == {"params", "state", "loss"} and set(item["final"]["params"]) == {"abs", "rel", "ulp"}
    assert set(item["pairs"]) == {"torch~mindspore", "torch~oracle", "mindspore~oracle"}
    lines = (project.path / "reports" / "latest" / item["jsonl"]).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert (project.path / "reports" / "latest" / "index.html").exists()


def _verdicts(summary: dict) -> list:
    keep = ("nodeid", "observed", "outcome", "first_divergent_step", "final", "max", "pairs")
    return [{k: item.get(k) for k in keep} for item in summary["items"]]


@pytest.mark.integration
@needs_frameworks
def test_parallel_run_equals_serial(project):
    _write(project, "a.yaml", "cases:\n" + case_yaml("one", steps=20) + case_yaml("two", steps=20, scale=1e-8,
                                                                             expect="diverge", reason="eps placement"))
    _write(project, "b.yaml", "cases:\n" + case_yaml("three", steps=20).replace("seed: 5", "seed: 6"))
    serial = project.runpytest_subprocess("-q", "--run-id", "serial")
    serial.assert_outcomes(passed=3)
    parallel = project.runpytest_subprocess("-q", "-n", "2", "--run-id", "parallel")
    parallel.assert_outcomes(passed=3)
    reports = project.path / "reports"
    one = json.loads((reports / "serial" / "summary.json").read_text())
    two = json.loads((reports / "parallel" / "summary.json").read_text())
    assert _verdicts(one) == _verdicts(two)
    for name in ("one__cpu-float32.jsonl", "two__cpu-float32.jsonl"):
        serial_bytes = (reports / "serial" / "steps" / name).read_bytes()
        assert serial_bytes == (reports / "parallel" / "steps" / name).read_bytes()
    pinned = [re.search(r"gw\d pinned to CPUs (.*)", (reports / "parallel" / "logs" / f"{w}.log").read_text()).group(1)
              for w in ("gw0", "gw1")]
    if len(os.sched_getaffinity(0)) >= 2:  # each worker on its own share of the CPUs
        assert pinned[0] != pinned[1] and "None" not in pinned


class _Worker:
    def __init__(self, workerid: str):
        self.workerinput = {"workerid": workerid}


@pytest.mark.parametrize("count, workerid, expect", [("2", "gw1", "share"), ("2", "gw0", "share"),
                                                     ("1", "gw0", None), ("999", "gw3", None)])
def test_pin_worker_takes_its_share_of_the_cpus(monkeypatch, count, workerid, expect):
    from conformance.plugin import _pin_worker

    before = os.sched_getaffinity(0)
    cpus = sorted(before)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
    try:
        got = _pin_worker(_Worker(workerid))
        if expect is None or len(cpus) < int(count):
            assert got is None and os.sched_getaffinity(0) == before
        else:
            index, n = int(workerid[2:]), int(count)
            assert got == set(cpus[index::n]) == os.sched_getaffinity(0)
        monkeypatch.setenv("CONFORMANCE_PIN_WORKERS", "0")
        os.sched_setaffinity(0, before)
        assert _pin_worker(_Worker(workerid)) is None and os.sched_getaffinity(0) == before
    finally:
        os.sched_setaffinity(0, before)
