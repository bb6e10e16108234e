"""HTML report of one run, rendered from summary.json alone (never from a re-run)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from . import results
from .compare import fmt

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"),
                          autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
_ENV.filters["num"] = fmt


def write_report(run_dir: Path, data: dict[str, Any]) -> Path:
    """Write run_dir/index.html atomically and return its path."""
    html = _ENV.get_template("index.html.j2").render(run=data["run"], items=data["items"])
    path = run_dir / "index.html"
    results.atomic_write_text(path, html)
    return path
