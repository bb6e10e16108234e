"""Writing the AdaMax API-mapping pages: each language's Markdown (templates/api_mapping.md.j2 with that
language's words), its HTML rendering, the appendix, and, with a checkout of MindSpore's docs repository,
the pages where that repository keeps them and the row of each language's mapping index.

The layout and link forms are those of the docs repository's pages (its master branch, read in 2025):
`<checkout>/docs/mindspore/source_en/note/api_mapping/pytorch_diff/<Name>.md` and `source_zh_cn/...`, a badge
under the title, and per language `pytorch_api_mapping.md` whose `## torch.optim` table holds one row per
API: `| [torch API](PyTorch docs) | [MindSpore API](MindSpore docs) | [diff](the diff page) |`. The badge
links the page's source on atomgit.com, where MindSpore 2.10's own docstrings place the docs repository.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markdown_it import MarkdownIt

from conformance.cases import causes
from conformance.report import docs_page, markdown, pages
from conformance.results import storage

LANGUAGES = causes.LANGUAGES
WORDS_FILE = Path(__file__).with_name("docs_words.yaml")
BRANCH = "master"  # the docs branch new pages land on; links and the badge name it as the repository's pages do
PAGE_NAME = "AdaMax.md"  # the name the page had in the docs repository until January 2025
FOLDER = "docs/mindspore/source_{lang}/note/api_mapping"
SITE = {"en": "https://www.mindspore.cn/docs/en/{branch}/", "zh_cn": "https://www.mindspore.cn/docs/zh-CN/{branch}/"}
BADGE = {"en": "logo_source_en.svg", "zh_cn": "logo_source.svg"}
BADGE_IMAGE = "https://mindspore-website.obs.cn-north-4.myhuaweicloud.com/website-images/{branch}/resource/_static/{logo}"
SOURCE = "https://atomgit.com/mindspore/docs/blob/{branch}/{path}"
TORCH_DOC = "https://pytorch.org/docs/stable/generated/torch.optim.Adamax.html"
INDEX_TORCH_DOC = "https://pytorch.org/docs/2.1/generated/torch.optim.Adamax.html"  # the index lists PyTorch 2.1 APIs
INDEX_SECTION = "## torch.optim"
OUT_STEMS = {"en": "differences", "zh_cn": "differences.zh_cn"}  # the pages' names in --out (and the run folder)
APPENDIX_STEM = "differences-appendix"


class DocsRepoError(ValueError):
    """--docs-repo is not a checkout of MindSpore's docs: names the file or heading that is missing."""


@functools.lru_cache(maxsize=1)
def words() -> dict[str, Any]:
    """Each language's words, checked to have the same keys in every language."""
    table = yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8"))

    def keys(node: Any, prefix: str = "") -> set[str]:
        if not isinstance(node, dict):
            return {prefix}
        return {k for key, value in node.items() for k in keys(value, f"{prefix}{key}.")}

    for lang in LANGUAGES:
        if lang not in table:
            raise ValueError(f"{WORDS_FILE}: no `{lang}:` block; languages: {', '.join(LANGUAGES)}")
        if keys(table[lang]) != keys(table["en"]):
            raise ValueError(f"{WORDS_FILE}: `{lang}` and `en` differ in keys: "
                             f"{', '.join(sorted(keys(table[lang]) ^ keys(table['en'])))}")
    return table


def page_path(lang: str) -> str:
    """The page's path in the docs repository."""
    return f"{FOLDER.format(lang=lang)}/pytorch_diff/{PAGE_NAME}"


def index_path(lang: str) -> str:
    return f"{FOLDER.format(lang=lang)}/pytorch_api_mapping.md"


def doc_urls(lang: str) -> dict[str, str]:
    site = SITE[lang].format(branch=BRANCH)
    return {"torch.optim.Adamax": TORCH_DOC,
            "mindspore.nn.AdaMax": f"{site}api_python/nn/mindspore.nn.AdaMax.html",
            "mindspore.experimental.optim.Adamax":
                f"{site}api_python/experimental/optim/mindspore.experimental.optim.Adamax.html"}


def index_row(lang: str) -> str:
    """The page's row of the language's `pytorch_api_mapping.md` table."""
    site = SITE[lang].format(branch=BRANCH)
    diff = words()[lang]["index_diff"]
    mindspore = doc_urls(lang)["mindspore.nn.AdaMax"]
    return (f"| [torch.optim.Adamax]({INDEX_TORCH_DOC}) | [mindspore.nn.AdaMax]({mindspore}) "
            f"| [{diff}]({site}note/api_mapping/pytorch_diff/{PAGE_NAME.removesuffix('.md')}.html) |")


def rst_links(text: str) -> str:
    """A docstring's reStructuredText links (`Text <url>`_) as Markdown links; the rest as it is."""
    return re.sub(r"`([^`<]+?)\s*<(https?://[^>\s]+)>`_", r"[\1](\2)", text)


def lower_first(text: str) -> str:
    """A title continuing a sentence: its first letter in lower case, unless its first word is a name
    (MindSpore, NaN: a capital after the first letter) or it starts with no letter of a cased script."""
    first = text.split(" ", 1)[0]
    if not first[:1].isupper() or any(ch.isupper() for ch in first[1:]):
        return text
    return text[0].lower() + text[1:]


def _environment(lang: str) -> jinja2.Environment:
    env = markdown.environment(rst_links=rst_links, lower_first=lower_first)
    table = words()[lang]
    compiled: dict[str, jinja2.Template] = {}

    def say(key: str, **slots: Any) -> Any:
        value: Any = table
        for part in key.split("."):
            value = value[part]
        if not isinstance(value, str):
            return value
        if key not in compiled:
            compiled[key] = env.from_string(value)
        return compiled[key].render(**slots)

    env.globals.update(say=say, words=lambda cause: cause.words(lang), notes=set(table["notes"]),
                       doc_urls=doc_urls(lang),
                       badge={"image": BADGE_IMAGE.format(branch=BRANCH, logo=BADGE[lang]),
                              "source": SOURCE.format(branch=BRANCH, path=page_path(lang))})
    return env


def render_page(ctx: dict[str, Any], lang: str) -> str:
    """The page in one language, as Markdown for the docs repository."""
    text = _environment(lang).get_template("api_mapping.md.j2").render(**ctx)
    return re.sub(r"\n{3,}", "\n\n", text)


def to_html(text: str, title: str, lang: str) -> str:
    """A Markdown page rendered as HTML (CommonMark and tables, raw HTML escaped), to look at and to screenshot."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return pages.environment().get_template("api_mapping.html.j2").render(
        body=body, title=title, lang="zh-CN" if lang == "zh_cn" else "en")


def _title(markdown_text: str) -> str:
    return markdown_text.split("\n", 1)[0].removeprefix("# ")


def insert_row(index: str, row: str, source: str) -> str:
    """`index` with `row` in its `## torch.optim` table, in order of the PyTorch API name (case-insensitive),
    replacing an earlier row of the same API (torch.optim.Adamax, or the old page's torch.optim.AdaMax)."""
    lines = index.split("\n")
    try:
        at = next(i for i, line in enumerate(lines) if line.strip() == INDEX_SECTION) + 1
    except StopIteration:
        raise DocsRepoError(f"{source}: no `{INDEX_SECTION}` heading, whose table the row belongs in") from None
    while at < len(lines) and not lines[at].startswith(("|", "#")):
        at += 1
    end = at
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    if end - at < 2:
        raise DocsRepoError(f"{source}: no table (header and separator lines) under `{INDEX_SECTION}`")
    api = re.compile(r"^\|\s*\[([^\]]+)\]")
    rows = [r for r in lines[at + 2:end] if (api.match(r) or [None, ""])[1].lower() != "torch.optim.adamax"]
    before = sum(1 for r in rows if (api.match(r) or [None, ""])[1].lower() < "torch.optim.adamax")
    rows.insert(before, row)
    return "\n".join(lines[:at + 2] + rows + lines[end:])


def write_docs(data: dict[str, Any], out_dir: Path, run_dir: Path | None = None, report_url: str | None = None,
               docs_repo: Path | None = None) -> list[Path]:
    """Write both languages' pages (Markdown and its HTML rendering) and the appendix into out_dir, and, with
    `docs_repo`, the Markdown pages and index rows into that checkout; return the paths written."""
    report = report_url.rstrip("/") + "/" if report_url else None
    rel = os.path.relpath((run_dir or out_dir).resolve(), out_dir.resolve()).replace(os.sep, "/")
    local = "" if rel == "." else rel + "/"  # the run folder from out_dir: where the appendix links items
    ctx = docs_page.context(data, report=report, local_report=local)
    indexes = {}
    if docs_repo is not None:  # check the checkout before writing anything
        for lang in LANGUAGES:
            path = docs_repo / index_path(lang)
            try:
                indexes[lang] = insert_row(path.read_text(encoding="utf-8"), index_row(lang), str(path))
            except OSError as exc:
                raise DocsRepoError(f"{path}: cannot read the mapping index ({exc.strerror}); --docs-repo must be "
                                    f"a checkout of MindSpore's docs repository") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written, texts = [], {}
    for lang in LANGUAGES:
        text = texts[lang] = render_page(ctx, lang)
        for path, content in ((out_dir / f"{OUT_STEMS[lang]}.md", text),
                              (out_dir / f"{OUT_STEMS[lang]}.html", to_html(text, _title(text), lang))):
            storage.atomic_write_text(path, content)
            written.append(path)
        if docs_repo is not None:
            for path, content in ((docs_repo / page_path(lang), text), (docs_repo / index_path(lang), indexes[lang])):
                path.parent.mkdir(parents=True, exist_ok=True)
                storage.atomic_write_text(path, content)
                written.append(path)
    appendix = {**ctx, "link": ctx["item_href"], "report": report or local,
                "title": _title(texts["en"])}
    for suffix, env in ((".md", markdown.environment()), (".html", pages.environment())):
        path = out_dir / f"{APPENDIX_STEM}{suffix}"
        storage.atomic_write_text(path, env.get_template(f"differences_appendix{suffix}.j2").render(**appendix))
        written.append(path)
    return written
