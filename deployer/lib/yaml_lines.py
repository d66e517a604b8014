"""YAML read with ruamel's round-trip loader keeps each key's line: plain data for
validation, and the line of a location for error messages (catalog, test suites).

Both files are untrusted (a test file comes from any branch), so before either
is composed `yaml_refusal` turns away what makes a small file expensive:
anchors and aliases (300 bytes of them expand to millions of nodes), files
over a size, and nesting deeper than MAX_DEPTH.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

MAX_DEPTH = 32


def yaml_refusal(text: str, *, max_bytes: int) -> tuple[int | None, str] | None:
    """(line, why) for the first thing that makes `text` unsafe to load; None when it may be loaded.

    Reads the event stream only, so nothing is expanded or built. Syntax errors
    are left to the loader, which reports them with their own words.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        return None, f"the file is {size // 1024} KB; at most {max_bytes // 1024} KB is read"
    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
                return line, "anchors and aliases (&name, *name, <<:) are not allowed here; write the values out"
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return line, f"nested deeper than {MAX_DEPTH} levels; flatten it"
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except YAMLError:
        return None
    return None


def plain(node: Any) -> Any:
    """ruamel's round-trip types → plain dicts and lists for pydantic."""
    if isinstance(node, CommentedMap):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [plain(v) for v in node]
    return node


def line_of(root: CommentedMap, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the deepest part of `loc` that exists in the file."""
    node: Any = root
    line = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            # (a section the catalog's included files made has no line of its own; its entries do)
            line = node.lc.key(part)[0] + 1 if part in (node.lc.data or {}) else line
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def unknown_key_hint(model: type[BaseModel] | None, key: object) -> str:
    """What to say about `key`, which `model` does not have: the closest key (aliases count), or the keys it has."""
    if model is None:
        return "remove it"
    allowed = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"allowed keys here: {', '.join(allowed)}"
