"""Markdown output: the one jinja2 environment for Markdown templates and the escaping its filters use.

Case-supplied text reaches Markdown pages (the docs pages, the history and frameworks pages); `md` makes it
inert there and fit for a table cell, `prose` does the same but leaves underscores inside words as they are
(literal in CommonMark: `learning_rate` reads as written in a page's source), `code` makes it an inline code
span that no text can close, and `fence` gives a code fence that no case text can close.
"""
from __future__ import annotations

import re
from typing import Any

import jinja2

from conformance import numbers

MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#])")
PROSE_SPECIAL = re.compile(r"([\\`*{}\[\]<>|#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def md(text: Any) -> str:
    """Plain text made inert in Markdown and fit for a table cell (no `|`, no line break)."""
    return MD_SPECIAL.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))


def prose(text: Any) -> str:
    """`md`, but an underscore between two letters or digits stays bare (it cannot start emphasis)."""
    return PROSE_SPECIAL.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))


def code(text: Any) -> str:
    """Text as one inline code span, fit for a table cell: a backtick run longer than any inside, `|` escaped."""
    text = " ".join(str(text if text is not None else "").split()).replace("|", "\\|")
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`, so case text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def environment(**filters: Any) -> jinja2.Environment:
    """The Markdown templates' environment (no autoescape: `md` escapes), with the number filters and
    any page-specific `filters`."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("conformance.report", "templates"), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md, prose=prose, code=code, fence=fence, num=numbers.num, short=numbers.short, **filters)
    return env
