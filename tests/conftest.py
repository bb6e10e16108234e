"""Fixtures for the harness's own tests: a pytester project with the plugin and a `cases/` folder."""
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def case_yaml(id: str, *, steps: int = 5, scale: float = 1.0, expect: str = "conform",
              tolerance: str = "{params: {atol: 1.0e-6}, state: {atol: 1.0e-6}}", reason: str = "") -> str:
    """One small replay case on the CPU: real frameworks, the optimizer alone, a few steps."""
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

