"""Hostile strings in case ids, descriptions, reasons and messages are escaped in every written page."""
from __future__ import annotations

import json

import pytest

from conformance.report.run_report import write_report

pytestmark = pytest.mark.torch_only

HOSTILE = "<script>alert('x')</script>\"'><img src=x onerror=alert(1)>"


def _item(i: int) -> dict:
    metric = {"abs": 1.0, "rel": 0.5, "ulp": 3.0}
    return {"nodeid": f"cases/a.yaml::{HOSTILE}{i}[cpu-float32]", "case": HOSTILE, "file": f"cases/{HOSTILE}.yaml",
            "line": 2, "device": "cpu", "dtype": "float32", "expect": "diverge", "observed": "diverge",
            "outcome": ["passed", "failed", "error", "skipped", "crashed"][i % 5], "reason": HOSTILE,
            "description": HOSTILE, "message": HOSTILE, "steps": 3, "requested_steps": 3,
            "first_divergent_step": 1, "final": {"params": metric, "state": metric, "loss": metric},
            "max": {"params": metric, "state": metric, "loss": metric}, "pairs": {}, "skipped_sides": {"x": HOSTILE},
            "error": {"file": HOSTILE, "line": 1, "column": 1, "case": HOSTILE, "key": HOSTILE, "message": HOSTILE}}


def test_every_page_escapes_hostile_strings(tmp_path):
    run = {"id": HOSTILE, "start": "s", "end": "e", "argv": [HOSTILE], "complete": False, "exitstatus": 2,
           "python": "3", "numpy": "1", "torch": HOSTILE, "mindspore": None, "platform": HOSTILE, "cpu": HOSTILE,
           "cpu_count": 2, "git_commit": HOSTILE, "api": {}, "unfinished": [HOSTILE],
           "counts": {"passed": 1, HOSTILE: 1}}
    data = {"run": run, "items": [_item(i) for i in range(5)]}
    (tmp_path / "summary.json").write_text(json.dumps(data))
    write_report(tmp_path, data)
    pages = list(tmp_path.rglob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "&lt;script&gt;" in html, page  # the string is shown, escaped
        lowered = html.lower()
        assert "<script>alert" not in lowered and "<img src=x" not in lowered and "onerror=alert(1)>" not in lowered
