"""Faults in real runs: broken cases, frameworks that fail to import or raise mid-run, a dying xdist
worker, interrupts, concurrent runs, hostile strings and paths. Each runs the real frameworks in a
pytest subprocess (pytester) and reads what the run left on disk.
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import case_yaml, needs_frameworks

pytestmark = pytest.mark.integration  # every test here runs pytest in a subprocess (pytester)


def _write(project: pytest.Pytester, name: str, text: str) -> Path:
    path = project.path / "cases" / name
    path.write_text(text, encoding="utf-8")
    return path


def _summary(project: pytest.Pytester, run: str = "latest") -> dict:
    return json.loads((project.path / "reports" / run / "summary.json").read_text())


def _items(summary: dict) -> dict[str, dict]:
    return {i["nodeid"]: i for i in summary["items"]}


BROKEN = """cases:
  - {id: good, model: {kind: linear}, gradients: {mode: replay}, steps: 2, devices: [cpu]}
  - {id: kind, model: {kind: cnn}, steps: 2}
  - {id: loss, model: {kind: linear}, steps: 2, loss: hinge}
  - {id: dtype, model: {kind: linear}, steps: 2, dtype: float8}
  - {id: device, model: {kind: linear}, steps: 2, devices: [tpu]}
  - {id: typed, model: {kind: linear}, steps: ten}
  - {id: nosteps, model: {kind: linear}}
  - {id: why, model: {kind: linear}, steps: 2, expect: diverge}
  - {id: typo, model: {kind: linear}, steps: 2, optimizer: {betaz: [0.9, 0.99]}}
  - {id: big, model: {kind: linear}, steps: 2, data: {batch: 1000000000}}
  - {id: good, model: {kind: linear}, steps: 3}
  - {id: grid, model: {kind: linear}, gradients: {mode: replay}, devices: [cpu], steps: 2, matrix: {steps: [2, 2]}}
"""


@needs_frameworks
def test_every_broken_case_is_one_error_item_and_the_good_case_still_runs(project):
    _write(project, "broken.yaml", BROKEN)
    _write(project, "tagged.yaml", "cases:\n  - !!python/object/apply:os.system ['echo hacked']\n")
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(passed=2, failed=12)
    assert "hacked" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    items = _items(_summary(project))
    assert items["cases/broken.yaml::good[cpu-float32]"]["outcome"] == "passed"
    expected = {  # case id -> (line, key, words the message must contain)
        "kind": (3, "model.kind", "'linear', 'mlp', 'layernorm_mlp'"), "loss": (4, "loss", "'l1', 'mse'"),
        "dtype": (5, "dtype", "float16"), "device": (6, "devices.0", "cpu"),
        "typed": (7, "steps", "'ten' is not of type 'integer'"), "nosteps": (8, "steps", "required"),
        "why": (9, "reason", "root cause"), "typo": (10, "optimizer.betaz", "did you mean 'betas'"),
        "big": (11, "data.batch", "CONFORMANCE_MAX_MEMORY_MB"),
        "good": (12, "id", "first defined at cases/broken.yaml:2"),
        "grid.steps=2": (13, "id", "first defined at cases/broken.yaml:13"),
    }
    errors = {i["case"]: i for i in items.values() if i["outcome"] == "error"}
    assert set(errors) == set(expected) | {None}
    for case_id, (line, key, words) in expected.items():
        error = errors[case_id]["error"]
        assert (error["file"], error["line"], error["key"]) == ("cases/broken.yaml", line, key), error
        assert words in error["message"], error
        result.stdout.fnmatch_lines([f"*cases/broken.yaml:{line}: case '{case_id}*': key '{key}': *"])
    tagged = errors[None]["error"]
    assert (tagged["file"], tagged["line"], tagged["column"]) == ("cases/tagged.yaml", 2, 5)
    assert "tags that build Python objects are not allowed" in tagged["message"]
    assert not (project.path / "reports" / "latest" / "steps" / "big__cpu-float32.jsonl").exists()


NAN_TOLERANCE = case_yaml("nan_tolerance", expect="diverge", reason="a check that cannot fail",
                          tolerance="{params: {atol: .nan}, state: {atol: 1.0e-6}}")


@needs_frameworks
def test_a_file_that_is_not_utf8_is_one_error_item_and_every_other_case_runs(project):
    """3,000 random bytes beside good cases: pytest collection used to stop at a UnicodeDecodeError
    ("Interrupted: 1 error during collection", nothing ran). Now: one error item naming the file and
    where decoding failed; a `.nan` tolerance is refused the same way; the good case passes."""
    (project.path / "cases" / "x.yaml").write_bytes(random.Random(14).randbytes(3000))
    _write(project, "good.yaml", "cases:\n" + case_yaml("good", steps=3) + NAN_TOLERANCE)
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=2)
    assert "Interrupted" not in result.stdout.str() and "UnicodeDecodeError" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*cases/x.yaml:1:5: not UTF-8 text: byte 0xe5 at byte offset 4 cannot be decoded*"])
    result.stdout.fnmatch_lines(["*cases/good.yaml:16: case 'nan_tolerance': key 'tolerance.params.atol': .nan is "
                                 "not a finite number; allowed here: a finite number >= 0*"])
    items = _items(_summary(project))
    assert items["cases/good.yaml::good[cpu-float32]"]["outcome"] == "passed"
    undecodable = items["cases/x.yaml::[error]"]
    assert undecodable["outcome"] == "error"
    assert {k: undecodable["error"][k] for k in ("file", "line", "column", "case", "key")} == \
        {"file": "cases/x.yaml", "line": 1, "column": 5, "case": None, "key": None}
    nan = items["cases/good.yaml::nan_tolerance[error]"]
    assert nan["outcome"] == "error" and nan["error"]["line"] == 16 and nan["error"]["key"] == "tolerance.params.atol"
    page = (project.path / "reports" / "latest" / "index.html").read_text(encoding="utf-8")
    assert "cases/x.yaml:1:5: not UTF-8 text" in page and "nan_tolerance" in page


def test_limits_are_checked_without_importing_a_framework_and_can_be_raised(project):
    _write(project, "huge.yaml", "cases:\n  - {id: long, model: {kind: linear}, steps: 100000000}\n"
                                 "  - {id: wide, model: {kind: linear, in: 100000, out: 10000}, steps: 1}\n")
    probe = ("import sys; from pathlib import Path; from conformance.cases.loader import load_file; "
             "print([getattr(r, 'message', 'ok') for r in load_file(Path('cases/huge.yaml'))]); "
             "print('frameworks imported:', sorted({'torch', 'mindspore'} & set(sys.modules)))")
    refused = project.run(sys.executable, "-c", probe)
    refused.stdout.fnmatch_lines(["*100000000 steps exceeds the limit of 100000; set CONFORMANCE_MAX_STEPS*"
                                  "1000010000 parameters exceeds the limit of 50000000; set CONFORMANCE_MAX_PARAMS*",
                                  "frameworks imported: []"])
    os.environ["CONFORMANCE_MAX_STEPS"] = "100000000"
    try:
        raised = project.run(sys.executable, "-c", probe)
    finally:
        del os.environ["CONFORMANCE_MAX_STEPS"]
    raised.stdout.fnmatch_lines(["['ok', *CONFORMANCE_MAX_PARAMS*"])


BLOCKER = '''
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    """Make `import mindspore` fail in this process, as a broken or missing install would."""
    def find_spec(self, name, path=None, target=None):
        if name == "mindspore" or name.startswith("mindspore."):
            raise {exc}
        return None

sys.meta_path.insert(0, Block())
pytest_plugins = ["conformance.plugin"]
'''


@pytest.mark.parametrize("exc, reason", [
    ("ImportError('libmindspore_backend.so: cannot open shared object file')",
     "mindspore failed to import: ImportError: libmindspore_backend.so: cannot open shared object file"),
    ("ModuleNotFoundError(\"No module named 'mindspore'\", name='mindspore')",
     "mindspore is not installed in this environment"),
])
def test_framework_that_cannot_import_skips_its_side_and_keeps_the_other_oracle(project, exc, reason):
    project.makeconftest(BLOCKER.format(exc=exc))
    _write(project, "a.yaml", "cases:\n" + case_yaml("one", steps=4))
    result = project.runpytest_subprocess("-q", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*mindspore: {reason} (control checks that ran and held: torch~oracle)*"])
    (item,) = _summary(project)["items"]
    assert item["outcome"] == "skipped" and item["skipped_sides"] == {"mindspore": reason}
    assert set(item["pairs"]) == {"torch~oracle"} and item["pairs"]["torch~oracle"]["steps"] == 4
    assert item["pairs"]["torch~oracle"]["observed"] == "conform"


FAULT_AT_STEP_3 = '''
import mindspore

_original = mindspore.nn.AdaMax.construct
_calls = []

def construct(self, gradients):
    """A real MindSpore optimizer that raises inside its own step 3, as a rejected input would."""
    _calls.append(1)
    if len(_calls) == 3:
        raise RuntimeError("For 'AdaMax', injected fault: the device rejected this kernel launch")
    return _original(self, gradients)

mindspore.nn.AdaMax.construct = construct
pytest_plugins = ["conformance.plugin"]
'''


@needs_frameworks
def test_framework_exception_mid_run_is_an_error_with_its_message_and_step(project):
    project.makeconftest(FAULT_AT_STEP_3)
    _write(project, "a.yaml", "cases:\n" + case_yaml("faulty", steps=6))
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "cases/a.yaml:2: case 'faulty' [[]cpu-float32[]]: mindspore raised RuntimeError at step 3: "
        "For 'AdaMax', injected fault: the device rejected this kernel launch",
        "  rerun: pytest 'cases/a.yaml::faulty[[]cpu-float32[]]'"])
    assert "Traceback" not in result.stdout.str()
    (item,) = _summary(project)["items"]
    assert (item["outcome"], item["observed"], item["steps"]) == ("error", "error", 2)
    lines = (project.path / "reports" / "latest" / item["jsonl"]).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


@needs_frameworks
def test_framework_refusing_the_configuration_is_an_error_at_step_0(project):
    """Real MindSpore: nn.AdaMax requires eps > 0 (torch accepts 0). No injection."""
    _write(project, "a.yaml", "cases:\n" + case_yaml("zero_eps").replace("{lr: 0.002}", "{lr: 0.002, eps: 0.0}")
           + case_yaml("fine"))
    result = project.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*case 'zero_eps' [[]cpu-float32[]]: mindspore raised ValueError at step 0: "
                                 "For 'AdaMax', the 'eps' must be float and must > 0*"])
    items = _items(_summary(project))
    assert items["cases/a.yaml::zero_eps[cpu-float32]"]["outcome"] == "error"
    assert items["cases/a.yaml::fine[cpu-float32]"]["outcome"] == "passed"


CRASHER = '''
import os
pytest_plugins = ["conformance.plugin"]

def pytest_runtest_call(item):
    if item.name.startswith("doomed["):
        os._exit(17)  # the worker process dies on the spot: no report, no teardown
'''


@needs_frameworks
def test_dying_xdist_worker_loses_only_its_item(project):
    project.makeconftest(CRASHER)
    _write(project, "a.yaml", "cases:\n" + case_yaml("before") + case_yaml("doomed") + case_yaml("after"))
    _write(project, "b.yaml", "cases:\n" + case_yaml("other").replace("seed: 5", "seed: 6"))
    result = project.runpytest_subprocess("-q", "-n", "2")
    result.assert_outcomes(passed=3, failed=1)
    summary = _summary(project)
    items = _items(summary)
    assert summary["run"]["complete"] is True
    assert [items[f"cases/a.yaml::{n}[cpu-float32]"]["outcome"] for n in ("before", "after")] == ["passed"] * 2
    assert items["cases/b.yaml::other[cpu-float32]"]["outcome"] == "passed"
    doomed = items["cases/a.yaml::doomed[cpu-float32]"]
    assert (doomed["outcome"], doomed["case"], doomed["device"], doomed["dtype"]) == \
        ("crashed", "doomed", "cpu", "float32")
    assert "crashed" in doomed["reason"] and summary["run"]["counts"]["crashed"] == 1


def _wait_for_steps(path: Path, lines: int, proc, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= lines:
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.2)
    raise AssertionError(f"{path} never reached {lines} lines")


@needs_frameworks
@pytest.mark.parametrize("sig, workers", [(signal.SIGINT, []), (signal.SIGTERM, []),
                                          (signal.SIGTERM, ["-n", "2"])])
def test_interrupted_run_is_marked_incomplete_and_latest_is_kept(project, sig, workers):
    _write(project, "a.yaml", "cases:\n" + case_yaml("short", steps=3))
    project.runpytest_subprocess("-q", "--run-id", "first").assert_outcomes(passed=1)
    latest_before = (project.path / "reports" / "latest" / "summary.json").read_bytes()
    _write(project, "b.yaml", "cases:\n" + case_yaml("endless", steps=100000))
    proc = project.popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--run-id", "second",
                          *workers], stdout=open(project.path / "out.txt", "w"), stderr=-2)
    jsonl = project.path / "reports" / "second" / "steps" / "endless__cpu-float32.jsonl"
    _wait_for_steps(jsonl, 5, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) != 0
    assert os.readlink(project.path / "reports" / "latest") == "first"
    assert (project.path / "reports" / "latest" / "summary.json").read_bytes() == latest_before
    second = _summary(project, "second")
    assert second["run"]["complete"] is False
    assert "cases/b.yaml::endless[cpu-float32]" in second["run"]["unfinished"]
    steps = [json.loads(line)["step"] for line in jsonl.read_text().splitlines()]  # every line whole
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 100000
    assert "incomplete" in (project.path / "reports" / "second" / "index.html").read_text()
    assert not list((project.path / "reports").glob("**/.*.tmp"))


@needs_frameworks
def test_concurrent_runs_do_not_overwrite_each_other(project):
    _write(project, "a.yaml", "cases:\n" + case_yaml("one", steps=30))
    procs = [project.popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           stdout=open(project.path / f"out{i}.txt", "w"), stderr=-2) for i in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    runs = sorted(p for p in (project.path / "reports").iterdir() if not p.is_symlink())
    assert len(runs) == 2
    for run in runs:
        data = json.loads((run / "summary.json").read_text())
        assert data["run"]["id"] == run.name and data["run"]["complete"] is True
        assert [i["outcome"] for i in data["items"]] == ["passed"]
        assert (run / "steps" / "one__cpu-float32.jsonl").read_text().count("\n") == 30
    assert os.readlink(project.path / "reports" / "latest") in {r.name for r in runs}
    # the same run id twice is refused before anything is written into the first run's folder
    first = runs[0]
    before = {p: p.stat().st_mtime_ns for p in first.rglob("*")}
    again = project.runpytest_subprocess("-q", "--run-id", first.name)
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines([f"*{first.name} already exists: another run used this --run-id*"])
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == before


@pytest.mark.parametrize("run_id", ["../escaped", "/tmp/escaped", "latest", "a/b", ".."])
def test_run_id_cannot_leave_the_reports_folder(project, run_id):
    _write(project, "a.yaml", "cases:\n" + case_yaml("one", steps=1))
    # one token: ".." must not be taken as a path
    result = project.runpytest_subprocess("-q", f"--run-id={run_id}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--run-id*letters, digits and _.=+- only*"])
    assert not (project.path / "escaped").exists() and not Path("/tmp/escaped").exists()


@needs_frameworks
def test_case_ids_cannot_make_paths_and_reports_dir_is_honoured(project, tmp_path_factory):
    # ids are pattern-checked ([A-Za-z0-9_.=+-]); a matrix value can put a path into an id only to be refused
    _write(project, "a.yaml", "cases:\n" + case_yaml("ok.=+-_", steps=1) + case_yaml("ok.=_-_", steps=1)
           + "  - {id: '../../x', model: {kind: linear}, steps: 1}\n"
           + "  - {id: m, model: {kind: linear}, steps: 1, matrix: {description: ['/../../y']}}\n")
    elsewhere = tmp_path_factory.mktemp("out") / "reports"
    result = project.runpytest_subprocess("-q", "--reports-dir", str(elsewhere), "--run-id", "r")
    result.assert_outcomes(passed=2, failed=2)
    written = {p.relative_to(elsewhere).as_posix() for p in elsewhere.rglob("*") if p.is_file()}
    # ids differing only in '+' vs '_' get their own files (a slug collision would overwrite one)
    assert {"r/steps/ok.=+-___cpu-float32.jsonl", "r/steps/ok.=_-___cpu-float32.jsonl", "r/summary.json"} <= written
    assert all(p.startswith("r/") for p in written)
    assert not (project.path / "reports").exists() or not list((project.path / "reports").rglob("*.jsonl"))
    errors = [i for i in json.loads((elsewhere / "r" / "summary.json").read_text())["items"] if i["outcome"] == "error"]
    assert sorted(e["error"]["key"] for e in errors) == ["id", "id"]
    assert not (project.path.parent / "x").exists() and not (project.path.parent / "y").exists()
