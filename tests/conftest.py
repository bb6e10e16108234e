"""Fixtures and helpers shared by the harness's own tests (tests/<stage>/ mirrors conformance/<stage>/):
the repository root, a pytester project with the plugin and a `cases/` folder, and the real runs that
report, merge, docs, browser, release and history tests read.

Markers (registered in pyproject.toml): `integration` on every test that starts a process, a pytester
session or a real suite run (`-m "not integration"` is the fast subset); `torch_only` on the files that
run where only torch is installed (tox -e torch-only: `-m "torch_only or case"`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent  # the repository root, for every test file at any depth

pytest_plugins = ["pytester"]


def case_yaml(id: str, *, steps: int = 5, scale: float = 1.0, expect: str = "conform",
              tolerance: str = "{params: {atol: 1.0e-6}, state: {atol: 1.0e-6}}", reason: str = "",
              cause: str = "eps_placement") -> str:
    """One small replay case on the CPU: real frameworks, the optimizer alone, a few steps. A case that
    expects a difference declares `cause` (these cases' only difference is eps placement, the gradients
    being eps-sized or the tolerance tight)."""
    lines = [f"  - id: {id}",
             "    model: {kind: linear, in: 2, out: 3}",
             f"    gradients: {{mode: replay, seed: 5, scale: {scale}}}",
             "    optimizer: {lr: 0.002}",
             f"    steps: {steps}",
             "    devices: [cpu]",
             f"    tolerance: {tolerance}",
             f"    expect: {expect}"]
    if reason:
        lines.append(f"    reason: {reason}")
    if expect != "conform":
        lines.append(f"    cause: {cause}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder with the plugin registered and an empty `cases/` folder.

    Run it with `runpytest_subprocess`: in-process runs drop the modules they imported, and torch and
    MindSpore cannot be imported twice in one process.
    """
    pytester.makeconftest('pytest_plugins = ["conformance.plugin"]')
    (pytester.path / "cases").mkdir()
    return pytester


TINY_CASES = """\
cases:
  - id: tiny_matched
    description: "Matched hyper-parameters; text with <b>markup</b> & |pipes| must stay text"
    model: {kind: linear, in: 2, out: 3}
    gradients: {mode: replay, seed: 5}
    optimizer: {lr: 0.002}
    steps: 6
    devices: [cpu, gpu]
    tolerance: {params: {atol: 1.0e-6}, state: {atol: 1.0e-6}}
    expect: conform
  - id: tiny_eps
    description: eps-sized gradients
    model: {kind: linear, in: 2, out: 3}
    gradients: {mode: replay, seed: 12, scale: 1.0e-8}
    optimizer: {lr: 0.002}
    steps: 6
    devices: [cpu]
    tolerance: {params: {atol: 2.5e-7}, state: {rtol: 1.0e-3}}
    expect: diverge
    cause: eps_placement
    reason: "eps placement <script>alert(1)</script>: torch max(b2*u, |g|+eps), MindSpore m/(max(b2*v, |g|)+eps)"
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (real torch and MindSpore, 6 steps, CPU; its GPU item skips here) made once per session
    in a subprocess; returns its run folder. Report, merge, docs and browser tests read it."""
    if _frameworks_missing():  # e.g. tox -e torch-only: without MindSpore no item reaches a verdict
        pytest.skip("needs torch and mindspore on the CPU")
    root = tmp_path_factory.mktemp("tiny_run")
    (root / "conftest.py").write_text('pytest_plugins = ["conformance.plugin"]\n')
    (root / "cases").mkdir()
    (root / "cases" / "tiny.yaml").write_text(TINY_CASES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "--run-id", "tiny", "cases"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "reports" / "tiny"


def _frameworks_missing() -> bool:
    from conformance import backends

    return any(backends.get(n).unavailable("cpu", "float32") for n in ("torch", "mindspore"))


needs_frameworks = pytest.mark.skipif(_frameworks_missing(), reason="needs torch and mindspore on the CPU")


def load_case(tmp_path, body: str):
    """The one case of a `cases:` body written to tmp_path/c.yaml (shown as cases/c.yaml)."""
    from conformance.cases.loader import load_file

    path = tmp_path / "c.yaml"
    path.write_text("cases:\n" + body, encoding="utf-8")
    (case,) = load_file(path, "cases/c.yaml")
    return case


# ------------------------------------------------ a real 2-item run, doctored by release and history tests

AGREE = "cases/a.yaml::agree[cpu-float32]"
EPS = "cases/a.yaml::eps[cpu-float32]"


@pytest.fixture(scope="session")
def real_summary(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """summary.json of a real 2-item run (a subprocess: frameworks cannot be imported twice in one process):
    AGREE conforms, EPS diverges. Made once per session; tests deep-copy it before changing it."""
    if _frameworks_missing():
        pytest.skip("needs torch and mindspore on the CPU")
    folder = tmp_path_factory.mktemp("run")
    (folder / "conftest.py").write_text('pytest_plugins = ["conformance.plugin"]\n')
    (folder / "cases").mkdir()
    (folder / "cases" / "a.yaml").write_text(
        "cases:\n" + case_yaml("agree")
        + case_yaml("eps", scale=1e-8, expect="diverge", reason="eps placement",
                    tolerance="{params: {atol: 1.0e-9}, state: {ulp: 4}}"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "GLOG_v": "3"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-html",
                           "--run-id=real"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "reports" / "real" / "summary.json").read_text())


def summary_item(summary: dict, nodeid: str) -> dict:
    """The entry of `nodeid` in a summary.json's items."""
    return next(i for i in summary["items"] if i["nodeid"] == nodeid)
