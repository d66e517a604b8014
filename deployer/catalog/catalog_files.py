"""A catalog in several files: the root file's `include:` names more files (globs relative to it, like
`teams/*.yml`), each holding `teams:` and/or `services:`; they are read as one catalog.

The files come from a directory (load_catalog) or from a commit of the catalog's repository (the
follower), both through CatalogFiles. A problem keeps the file it is in: an entry from an included file is
reported at that file's line. A name declared in two files is a problem, never a silent override; only the
root file holds `defaults:`, `access:` and `include:` (a team's defaults go with the team, in any file).
Everything in the files is the catalog repository's author's: patterns may not leave the root's directory,
and the files together are held to CATALOG_MAX_BYTES.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from deployer.catalog.problems import Problem, entry_of
from deployer.lib.yaml_lines import line_of, yaml_refusal

# Far above a catalog of 5,000 services (about 2 MB), far below what hurts a worker: all files together.
CATALOG_MAX_BYTES = 32 * 1024 * 1024
MAX_INCLUDED = 5000  # files; one per service of the largest catalog we measure
MAX_LISTED = 50_000  # paths looked at for the globs (a catalog directory, not a disk)
MAX_PATTERNS = 100
MAX_WILDCARDS = 10  # in one glob
SECTIONS = ("teams", "services")  # what an included file may declare


class CatalogError(Exception):
    """The catalog is invalid; `problems` says where (file and line) and how to fix each."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        # The root file first, then each file in the order an editor walks it (a whole-file problem first).
        self.problems = sorted(problems, key=lambda p: (p.file != "", p.file, p.line or 0))
        super().__init__("\n".join(p.render(filename) for p in self.problems))


class Unreadable(Exception):
    """A file the catalog names cannot be read; the message says why."""


class CatalogFiles(Protocol):
    """Where a catalog's files are: paths are POSIX, relative to the root file's directory."""

    def text(self, path: str) -> str | None:
        """The file's text; None when there is no such file; Unreadable when it cannot be read."""

    def paths(self) -> list[str]:
        """Every file there (for the include globs)."""


@dataclasses.dataclass(frozen=True)
class DirectoryFiles:
    """A catalog on disk (load_catalog; a CI job's checkout of the catalog's repository)."""

    root: Path

    def text(self, path: str) -> str | None:
        file = self.root / path
        try:
            # Only a regular file inside the catalog's directory (a symlink may point anywhere, a device or a
            # pipe never ends), and never more than the bound, whatever its size said.
            if not os.path.lexists(file):
                return None
            if not file.resolve().is_relative_to(self.root.resolve()) or not file.is_file():
                raise Unreadable("not a file in the catalog's directory (a link out of it, or a device)")
            with file.open("rb") as read:
                data = read.read(CATALOG_MAX_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unreadable(f"cannot read the file: {exc.strerror}") from exc
        if len(data) > CATALOG_MAX_BYTES:
            raise Unreadable(f"it is larger than {CATALOG_MAX_BYTES // 1024} KB")
        return data.decode("utf-8", errors="replace")

    def paths(self) -> list[str]:
        found: list[str] = []
        for top, dirs, names in os.walk(self.root):  # (symlinked directories are not followed)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found += [Path(top, name).relative_to(self.root).as_posix() for name in names]
            if len(found) > MAX_LISTED:
                raise Unreadable(f"{self.root} holds more than {MAX_LISTED} files; keep the catalog in its own one")
        return found


@dataclasses.dataclass(frozen=True)
class OneText:
    """A catalog given as one text (tests, a pasted file): it includes nothing."""

    name: str
    body: str

    def text(self, path: str) -> str | None:
        return self.body if path == PurePosixPath(self.name).name else None

    def paths(self) -> list[str]:
        return []


def yaml_map(text: str, filename: str) -> CommentedMap:
    """One file's mapping, with its lines; CatalogError (at this file) when it is not safe YAML or no mapping."""
    if refusal := yaml_refusal(text, max_bytes=CATALOG_MAX_BYTES):
        raise CatalogError(filename, [Problem(refusal[0], "", refusal[1])])
    try:
        data = YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise CatalogError(filename, [Problem(line, "", f"{exc.problem}; remove one of them")]) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = f"{exc.problem or exc.context} (is the indentation right? YAML needs spaces, not tabs)"
        raise CatalogError(filename, [Problem(line, "", message)]) from exc
    if not isinstance(data, CommentedMap):
        raise CatalogError(filename, [Problem(1, "", "the file must be a mapping with teams: and services:")])
    return data


def include_problem(pattern: object) -> str:
    """Why `pattern` cannot be an include glob ("" when it can)."""
    if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 200:
        return "an include is a glob of files next to the catalog, like teams/*.yml"
    if pattern.startswith("/") or "\\" in pattern or ".." in PurePosixPath(pattern).parts:
        return f"{pattern!r} leaves the catalog's directory; use a path relative to it, like teams/*.yml"
    if any(c in pattern for c in "\n\r\0"):
        return "an include is one line"
    if sum(pattern.count(c) for c in "*?[") > MAX_WILDCARDS:
        return f"at most {MAX_WILDCARDS} wildcards in an include; name a directory, like services/*.yml"
    return ""


def glob_match(pattern: str, path: str) -> bool:
    """Does the relative POSIX `path` match the shell glob `pattern`: `*` and `?` within one directory, a
    `**` segment across any? One segment at a time (fnmatch's own matching), memoised: no regex of the whole
    pattern to backtrack on a hostile name. (Python 3.11 has no glob.translate; pathlib's match is anchored
    at the right.)"""
    wanted, parts = pattern.split("/"), path.split("/")
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(wanted):
                memo[i, j] = j == len(parts)
            elif wanted[i] == "**":
                memo[i, j] = match(i + 1, j) or (j < len(parts) and match(i, j + 1))
            else:
                memo[i, j] = j < len(parts) and fnmatch.fnmatchcase(parts[j], wanted[i]) and match(i + 1, j + 1)
        return memo[i, j]

    return match(0, 0)


def gathered(root_name: str, files: CatalogFiles) -> tuple[CommentedMap, dict[str, str]]:
    """The root file with every included file's teams and services merged in, and where each entry came
    from ("services.web" → the file's name as shown); CatalogError with every problem of the files."""
    root_file = PurePosixPath(root_name).name
    try:
        text = files.text(root_file)
    except Unreadable as exc:
        raise CatalogError(root_name, [Problem(None, "", str(exc))]) from exc
    if text is None:
        raise CatalogError(root_name, [Problem(None, "", "no such file")])
    root = yaml_map(text, root_name)
    patterns = root.get("include")
    if patterns is None:
        return root, {}
    problems: list[Problem] = []
    paths = _included(root, root_file, patterns, files, problems)
    origins: dict[str, str] = {}
    budget = CATALOG_MAX_BYTES - len(text)
    for path in paths:
        shown = str(PurePosixPath(root_name).parent / path)
        try:
            part_text = files.text(path) or ""
            budget -= len(part_text)
            if budget < 0:
                raise Unreadable(f"the catalog's files together pass {CATALOG_MAX_BYTES // 1024} KB; make them smaller")
            part = yaml_map(part_text, shown)
        except Unreadable as exc:
            problems.append(Problem(None, "", str(exc), file=shown))
            continue
        except CatalogError as exc:
            problems += [dataclasses.replace(p, file=shown) for p in exc.problems]
            continue
        problems += _merged(root, root_name, part, shown, origins)
    if problems:
        raise CatalogError(root_name, problems)
    return root, origins


def _included(
    root: CommentedMap, root_file: str, patterns: object, files: CatalogFiles, problems: list[Problem]
) -> list[str]:
    if not isinstance(patterns, list):
        problems.append(Problem(line_of(root, ("include",)), "include", "must be a list of globs, like - teams/*.yml"))
        return []
    try:
        every = sorted(files.paths())
    except Unreadable as exc:
        problems.append(Problem(line_of(root, ("include",)), "include", str(exc)))
        return []
    if len(patterns) > MAX_PATTERNS:
        problems.append(Problem(line_of(root, ("include",)), "include", f"at most {MAX_PATTERNS} globs; use fewer"))
        return []
    chosen: dict[str, None] = {}  # (in order, each once)
    for index, pattern in enumerate(patterns):
        loc = ("include", index)
        if why := include_problem(pattern):
            problems.append(Problem(line_of(root, loc), f"include[{index}]", why))
            continue
        matched = [path for path in every if path != root_file and glob_match(str(pattern), path)]
        if not matched:
            problems.append(
                Problem(line_of(root, loc), f"include[{index}]", f"{pattern!r} matches no file; check the path")
            )
        chosen.update(dict.fromkeys(matched))
        if len(chosen) > MAX_INCLUDED:
            problems.append(Problem(line_of(root, ("include",)), "include", f"more than {MAX_INCLUDED} files match"))
            return []
    return list(chosen)


def _merged(
    root: CommentedMap, root_name: str, part: CommentedMap, shown: str, origins: dict[str, str]
) -> Iterable[Problem]:
    """Put `part`'s teams and services into `root` (each with its own line, in its own file)."""
    for key in part:
        if key not in SECTIONS:
            yield Problem(
                line_of(part, (key,)),
                str(key),
                f"an included file holds only teams: and services:; move {key}: to {root_name}",
                file=shown,
            )
    for section in SECTIONS:
        entries = part.get(section)
        if entries is None:
            continue
        if not isinstance(entries, CommentedMap):
            yield Problem(line_of(part, (section,)), section, "must be a mapping of names to settings", file=shown)
            continue
        target = root.get(section)
        if target is None:
            target = root[section] = CommentedMap()
        if not isinstance(target, CommentedMap):
            continue  # the root's own problem, reported when it is validated
        for name in entries:
            where = f"{section}.{name}"
            if name in target:
                first = origins.get(where, root_name)
                yield Problem(
                    line_of(part, (section, name)),
                    where,
                    f"also declared in {first}:{line_of(target, (name,)) or '?'}; declare it in one file only",
                    file=shown,
                )
                continue
            target[name] = entries[name]
            target.lc.add_kv_line_col(name, entries.lc.data[name])  # its line, in its own file
            origins[where] = shown


def located(problems: Iterable[Problem], origins: dict[str, str]) -> list[Problem]:
    """Each problem in the file its entry came from (a problem about services.web.* is in web's file)."""
    out: list[Problem] = []
    for problem in problems:
        entry = entry_of(problem.where)
        origin = origins.get(".".join(entry)) if entry else None
        out.append(dataclasses.replace(problem, file=origin) if origin and not problem.file else problem)
    return out
