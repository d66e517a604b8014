"""Validation of the refs people ask Gantry to deploy.

A ref typed by a person is refused when `git check-ref-format --branch` would
refuse it, with a message naming the rule. What passes is still only ever
passed to a shell quoted, and the deploy itself uses the resolved sha.
"""

from __future__ import annotations

import re
from typing import Any

SHA_RE = re.compile(r"[0-9a-f]{40}")
MAX_REF_LENGTH = 255

# Characters git refuses anywhere in a ref name, and how to say so.
_FORBIDDEN_CHARS = {
    " ": "a space",
    "~": "'~'",
    "^": "'^'",
    ":": "':'",
    "?": "'?'",
    "*": "'*'",
    "[": "'['",
    "\\": "a backslash",
}


class RefError(ValueError):
    """The ref cannot be deployed; the message says why and what to do."""


def is_full_sha(ref: str) -> bool:
    return SHA_RE.fullmatch(ref) is not None


def version_key(name: str) -> list[tuple[int, int | str]]:
    """A ref's name as a person compares versions: numbers as numbers (v1.10.0 after v1.9.0)."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]


def newest_first_key(ref: Any) -> tuple[bool, Any, list[tuple[int, int | str]]]:
    """Sort key of a tag (or branch) row: its commit's date, then the version in its name (max: the newest)."""
    return (ref.committed_at is not None, ref.committed_at, version_key(ref.name))


def branch_name_check(name: str) -> str:
    """Return `name` if git would accept it as a branch name, else raise RefError."""
    problem = _branch_name_problem(name)
    if problem:
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise RefError(f"{shown!r} is not a valid branch name: {problem} (git check-ref-format refuses it)")
    return name


def _branch_name_problem(name: str) -> str:
    if not name:
        return "it is empty"
    if len(name) > MAX_REF_LENGTH:
        return f"it is longer than {MAX_REF_LENGTH} characters"
    if name.startswith("-"):
        return "it starts with '-'"
    if name in {"@", "HEAD"}:
        return f"{name!r} is reserved"
    for char in name:
        if ord(char) < 0o40 or ord(char) == 0o177:
            return "it contains a control character (newline, tab, ...)"
        if char in _FORBIDDEN_CHARS:
            return f"it contains {_FORBIDDEN_CHARS[char]}"
    return _structure_problem(name)


def _structure_problem(name: str) -> str:
    if ".." in name:
        return "it contains '..'"
    if "@{" in name:
        return "it contains '@{'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "it has an empty path component (a leading, trailing or doubled '/')"
    if name.endswith("."):
        return "it ends with '.'"
    for component in name.split("/"):
        if component.startswith("."):
            return "a path component starts with '.'"
        if component.endswith(".lock"):
            return "a path component ends with '.lock'"
    return ""
