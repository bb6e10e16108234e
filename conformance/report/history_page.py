"""The "AdaMax behaviour across releases" page (Markdown and its HTML twin), from the data of
conformance.release.across_releases."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance import numbers
from conformance.report import markdown, pages
from conformance.results import storage

TITLE = "AdaMax behaviour across releases"


def size(value: dict[str, Any] | None) -> str:
    """A cell's size as text: params and state max abs difference, each with its ULP."""
    if not value:
        return ""
    return "; ".join(f"{q} {numbers.short(f['abs'])} ({numbers.short(f['ulp'])} ULP)" for q, f in value.items())


def _environment(html: bool):
    if html:
        env = pages.environment()
    else:
        env = markdown.environment()
    env.filters["size"] = size
    return env


def write(data: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write history.md and history.html into out_dir; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "history.md", out_dir / "history.html"
    storage.atomic_write_text(paths[0], _environment(False).get_template("history.md.j2").render(title=TITLE, **data))
    storage.atomic_write_text(paths[1], _environment(True).get_template("history.html.j2").render(title=TITLE, **data))
    return paths
