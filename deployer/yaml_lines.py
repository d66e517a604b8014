"""YAML read with ruamel's round-trip loader keeps each key's line: plain data for
validation, and the line of a location for error messages (catalog, test suites)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel
from ruamel.yaml.comments import CommentedMap, CommentedSeq


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
            line = node.lc.key(part)[0] + 1
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
