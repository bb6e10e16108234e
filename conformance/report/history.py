"""The "AdaMax behaviour across releases" page (Markdown and its HTML twin) from conformance.history's data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import results
from . import pages
from .differences import md

TITLE = "AdaMax behaviour across releases"


def size(value: dict[str, Any] | None) -> str:
    """A cell's size as text: params and state max abs difference, each with its ULP."""
    if not value:
        return ""
    return "; ".join(f"{q} {pages.short(f['abs'])} ({pages.short(f['ulp'])} ULP)" for q, f in value.items())


def _environment(html: bool):
    import jinja2

    if html:
        env = pages.environment()
    else:
        env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"), autoescape=False,
                                 trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        env.filters.update(md=md, short=pages.short)
    env.filters["size"] = size
    return env


def write(data: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write history.md and history.html into out_dir; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "history.md", out_dir / "history.html"
    results.atomic_write_text(paths[0], _environment(False).get_template("history.md.j2").render(title=TITLE, **data))
    results.atomic_write_text(paths[1], _environment(True).get_template("history.html.j2").render(title=TITLE, **data))
    return paths
