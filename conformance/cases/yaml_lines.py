"""Reading case files as YAML with line numbers: bytes to text (encoding errors named by line and
column), yaml.safe_load with a size limit, and the line of every entry and key."""
from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

from conformance.errors import CaseError

# A case file is a few hundred nodes. Aliases can make a tiny file expand into billions of nodes
# ("billion laughs"); every later walk (defaults, matrix, schema, messages) would then hang.
MAX_YAML_NODES = 100_000


class _LineDict(dict):
    """A mapping that remembers the line of itself and of each key (1-based)."""

    line: int = 0
    key_lines: dict


class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no executable tags, ever) that records line numbers of mappings and keys."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value its explicit tag cannot build (`!!int x`, `!!bool maybe`) is a YAML error at its line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {node.tag}: {exc}", node.start_mark) from None


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineDict:
    """Line-aware mapping. A key written twice is refused (PyYAML would keep the last one silently);
    keys brought in by a `<<:` merge may be overridden, as YAML intends."""
    explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
    loader.flatten_mapping(node)
    result = _LineDict()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    written: set = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found a key that is a list or mapping; keys must be plain names", key_node.start_mark) from None
        if id(key_node) in explicit:
            if key in written:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} twice in one mapping; keep one", key_node.start_mark)
            written.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _line_of(entry: Any, path: list) -> int | None:
    """Deepest known line for a key path inside an entry."""
    line = getattr(entry, "line", None)
    node = entry
    for key in path:
        if isinstance(node, dict):
            line = node.key_lines.get(key, line) if hasattr(node, "key_lines") else line
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            break
    return line


def expanded_size(doc: Any, limit: int = MAX_YAML_NODES) -> int:
    """Nodes in `doc` counting every alias use, computed per distinct node; stops early past `limit`."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else \
            (list(node) if isinstance(node, list) else [])
        if children_done or not children:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes.get(id(c), 1) for c in children))
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes[id(doc)]


def _where(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column), 1-based, of a byte offset in valid UTF-8 `data[:offset]`; columns count characters
    as an editor shows them (a byte-order mark is not one)."""
    start = data.rfind(b"\n", 0, offset) + 1
    before = data[start:offset].decode("utf-8", "replace")
    return data.count(b"\n", 0, offset) + 1, len(before.removeprefix("\ufeff") if start == 0 else before) + 1


def read_text(path: Path, file: str) -> str:
    """The text of a case file, which must be UTF-8 (a leading byte-order mark is dropped, CRLF line ends
    read as LF). Anything else becomes a CaseError that says where and what to do, never an exception
    from the decoder: a stray Latin-1 or binary file in cases/ must not stop the other files' cases."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise CaseError(file, None, None, None, "this is a folder, not a case file; rename it "
                        "(only case files may end in .yaml or .yml)") from None
    except OSError as exc:
        raise CaseError(file, None, None, None, f"cannot read the file ({exc.strerror or exc}); "
                        "check that it exists and that its permissions let this user read it") from None
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CaseError(file, 1, None, None, "the file is UTF-16 or UTF-32 text (it starts with that "
                        "byte-order mark); save it as UTF-8", column=1)
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text, undecodable = data[skip:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        text, undecodable = "", exc
    nul = data.find(b"\0")  # whichever problem comes first is reported: a NUL early on says "UTF-16"
    if nul >= 0 and (undecodable is None or nul < skip + undecodable.start):
        line, column = _where(data, nul)
        raise CaseError(file, line, None, None, f"a NUL byte at byte offset {nul}: a case file is text, and "
                        "NUL appears only in binary or UTF-16 files; save it as UTF-8", column=column)
    if undecodable is not None:
        offset = skip + undecodable.start
        line, column = _where(data, offset)
        raise CaseError(file, line, None, None, f"not UTF-8 text: byte 0x{data[offset]:02x} at byte offset "
                        f"{offset} cannot be decoded ({undecodable.reason}); a case file is UTF-8 text: save it "
                        "as UTF-8, or move a file that is not a case file out of cases/", column=column)
    return text.replace("\r\n", "\n")


def parse_text(text: str, file: str) -> Any:
    """Parse YAML safely; syntax errors and executable tags become a CaseError with line and column."""
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except RecursionError:
        raise CaseError(file, None, None, None, "invalid YAML: nested too deeply for a case file") from None
    except yaml.reader.ReaderError as exc:  # a control character; the reader gives a position, no line
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise CaseError(file, line, None, None, f"invalid YAML: character U+{exc.character:04X} is not allowed "
                        "(YAML text has no control characters); remove it", column=column) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        if "could not determine a constructor" not in str(exc.problem):
            raise CaseError(file, mark.line + 1 if mark else None, None, None, f"invalid YAML: {exc.problem}",
                            column=mark.column + 1 if mark else None) from None
        raise CaseError(file, mark.line + 1 if mark else None, None, None,
                        f"refused: {exc.problem}. Case files are plain data; tags that build Python "
                        "objects are not allowed", column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise CaseError(file, mark.line + 1 if mark else None, None, None,
                        f"invalid YAML: {problem}", column=mark.column + 1 if mark else None) from None
    if expanded_size(doc) > MAX_YAML_NODES:
        raise CaseError(file, None, None, None,
                        f"refused: the document expands to more than {MAX_YAML_NODES} values (through YAML "
                        "aliases?); a case file is small plain data: split it or drop the aliases")
    return doc
