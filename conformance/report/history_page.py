"""The "AdaMax behaviour across releases" page (Markdown and its HTML twin), from the data of
conformance.release.across_releases; its title names the framework whose releases vary ("across torch
releases"). `history --torch ... --out <folder> --name torch` writes the torch page."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance import numbers
from conformance.report import markdown, pages
from conformance.results import storage

TITLE = "AdaMax behaviour across releases"
AXIS_TITLES = {"torch": "AdaMax behaviour across torch releases",
               "mindspore": "AdaMax behaviour across MindSpore releases"}


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


def write(data: dict[str, Any], out_dir: Path, name: str = "history") -> tuple[Path, Path]:
    """Write <name>.md and <name>.html into out_dir; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / f"{name}.md", out_dir / f"{name}.html"
    title = AXIS_TITLES.get(data.get("axis", ""), TITLE)
    for path, html in ((paths[0], False), (paths[1], True)):
        template = _environment(html).get_template(f"history.{'html' if html else 'md'}.j2")
        storage.atomic_write_text(path, template.render(title=title, **data))
    return paths
