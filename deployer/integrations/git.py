"""Gantry's local mirror of each service's git repository: fetch, list branches, archive a sha.

Only workers call this. Every git call gets an argument list (never a shell),
`--` before positional arguments, and a timeout.
"""

from __future__ import annotations

import base64
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from deployer.lib.redact import redacted
from deployer.lib.refs import is_full_sha


class GitError(Exception):
    """A git command failed; the message carries git's own words (credentials in URLs redacted: it is
    shown on pages, in deploy reasons and in Slack)."""

    def __init__(self, message: str) -> None:
        super().__init__(redacted(message))


@dataclass(frozen=True)
class BranchInfo:
    name: str
    sha: str
    author: str
    committed_at: datetime
    message: str


def mirror_path(service_name: str) -> Path:
    return settings.REPO_MIRROR_DIR / f"{service_name}.git"


def _auth_env() -> dict[str, str]:
    """GitHub's token as an HTTP header scoped to GitHub's URL, passed through the
    environment: never in a URL or on a command line (ps, error messages, logs)."""
    if not settings.GITHUB_TOKEN:
        return {}
    basic = base64.b64encode(f"x-access-token:{settings.GITHUB_TOKEN}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"http.{settings.GITHUB_WEB_URL}/.extraheader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
    }


def _git(*args: str, cwd: Path | None = None) -> str:
    return _git_bytes(*args, cwd=cwd).decode("utf-8", errors="replace")


def _git_bytes(*args: str, cwd: Path | None = None) -> bytes:
    # Without the variables that change what a pathspec means (GIT_LITERAL_PATHSPECS=1 would match no
    # migration glob, and the schema guard and the migration check would see nothing).
    inherited = {k: v for k, v in os.environ.items() if not (k.startswith("GIT_") and k.endswith("_PATHSPECS"))}
    env = {**inherited, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", **_auth_env()}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=settings.GIT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {args[0]} took longer than {settings.GIT_TIMEOUT} s") from exc
    if done.returncode != 0:
        stderr = done.stderr.decode("utf-8", errors="replace").strip()
        raise GitError(stderr.splitlines()[-1] if stderr else f"git {args[0]} failed")
    return done.stdout


def mirror_update(service_name: str, repo_url: str) -> Path:
    """Clone the repository as a bare mirror on first use, else fetch (pruning deleted branches).

    One update of a mirror at a time on this machine (a file lock): two fetches into one mirror race on
    its refs ("cannot lock ref ... expected ..."), as a worker's sync and a deploy's fetch would.
    """
    path = mirror_path(service_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.with_name(f"{path.name}.lock")):
        if not (path / "HEAD").exists():
            _git("clone", "--mirror", "--quiet", "--", repo_url, str(path))
        else:
            _git("remote", "set-url", "origin", "--", repo_url, cwd=path)
            _git("fetch", "--prune", "--quiet", "origin", cwd=path)
    return path


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` for the block; GitError after GIT_TIMEOUT s of waiting."""
    deadline = time.monotonic() + settings.GIT_TIMEOUT
    with lock_path.open("a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GitError(
                        f"another update of {lock_path.stem} took longer than {settings.GIT_TIMEOUT} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def branches_list(service_name: str) -> list[BranchInfo]:
    fmt = "%(refname:strip=2)%00%(objectname)%00%(authorname)%00%(committerdate:unix)%00%(contents:subject)"
    out = _git("for-each-ref", f"--format={fmt}", "refs/heads/", cwd=mirror_path(service_name))
    branches = []
    for line in out.splitlines():
        name, sha, author, when, subject = line.split("\0", 4)
        branches.append(
            BranchInfo(
                name=name,
                sha=sha,
                author=author,
                committed_at=datetime.fromtimestamp(int(when), tz=UTC),
                message=subject[:500],
            )
        )
    return branches


def tags_list(service_name: str) -> list[BranchInfo]:
    """The mirror's tags that name a commit, each with that commit (an annotated tag peeled once; a tag of
    a tree, a blob or another tag is left out: nothing to deploy)."""
    fields = ("refname:strip=2", "objecttype", "objectname", "authorname", "committerdate:unix", "contents:subject")
    fmt = "%00".join([f"%({f})" for f in fields] + [f"%(*{f})" for f in fields[1:]])
    out = _git("for-each-ref", f"--format={fmt}", "refs/tags/", cwd=mirror_path(service_name))
    tags = []
    for line in out.splitlines():
        parts = line.split("\0")
        if len(parts) != 2 * len(fields) - 1:
            continue  # a NUL inside a message: the fields cannot be told apart, so this tag is left out
        name, kind, sha, author, when, subject, *peeled = parts
        if kind == "tag":
            kind, sha, author, when, subject = peeled
        if kind != "commit" or not when.isdigit():
            continue
        tags.append(
            BranchInfo(
                name=name,
                sha=sha,
                author=author[:255],
                committed_at=datetime.fromtimestamp(int(when), tz=UTC),
                message=subject[:500],
            )
        )
    return tags


def archive(service_name: str, repo_url: str, sha: str, dest: Path) -> Path:
    """Write a .tar.gz of the tree at `sha` to `dest`, fetching first if the mirror lacks it."""
    if not is_full_sha(sha):
        raise GitError(f"{sha!r} is not a full commit sha")
    path = mirror_path(service_name)
    if not _has_commit(path, sha):
        mirror_update(service_name, repo_url)
        if not _has_commit(path, sha):
            raise GitError(f"commit {sha} is not in {repo_url}; was the branch force-pushed or deleted?")
    _git("archive", "--format=tar.gz", f"--output={dest}", sha, cwd=path)
    return dest


def _has_commit(path: Path, sha: str) -> bool:
    if not (path / "HEAD").exists():
        return False
    try:
        _git("cat-file", "-e", f"{sha}^{{commit}}", cwd=path)
    except GitError:
        return False
    return True


def commits_ensure(service_name: str, repo_url: str, *shas: str) -> Path:
    """The mirror, fetched first when it lacks one of `shas`; GitError when the repository lacks one."""
    path = mirror_path(service_name)
    if not all(_has_commit(path, sha) for sha in shas):
        mirror_update(service_name, repo_url)
        missing = [sha for sha in shas if not _has_commit(path, sha)]
        if missing:
            raise GitError(f"commit {missing[0]} is not in {repo_url}")
    return path


def is_ancestor(service_name: str, repo_url: str, ancestor: str, descendant: str) -> bool:
    """True if `ancestor` is `descendant` or one of its ancestors."""
    path = commits_ensure(service_name, repo_url, ancestor, descendant)
    try:
        _git("merge-base", "--is-ancestor", ancestor, descendant, cwd=path)
    except GitError:
        return False
    return True


def ahead_count(service_name: str, repo_url: str, base: str, head: str) -> int:
    """How many commits `head` has that `base` does not."""
    path = commits_ensure(service_name, repo_url, base, head)
    return int(_git("rev-list", "--count", f"{base}..{head}", cwd=path).strip())


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    committed_at: datetime
    subject: str
    email: str = ""


def commit_log(service_name: str, base: str, head: str, *, limit: int) -> tuple[int, list[CommitInfo]]:
    """Commits in `head` but not in `base` (newest first, at most `limit`) and how many there are in all.

    Reads the local mirror only (it never fetches: pages call this); GitError if it lacks either commit.
    """
    path = mirror_path(service_name)
    for sha in (base, head):
        if not _has_commit(path, sha):
            raise GitError(f"commit {sha[:12]} is not in this machine's mirror of {service_name} yet")
    total = int(_git("rev-list", "--count", f"{base}..{head}", cwd=path).strip())
    fmt = "%H%x00%an%x00%ae%x00%ct%x00%s"
    out = _git("log", f"--format={fmt}", f"--max-count={int(limit)}", f"{base}..{head}", "--", cwd=path)
    commits = []
    for line in out.splitlines():
        sha, author, email, when, subject = line.split("\0", 4)
        commits.append(CommitInfo(sha, author, datetime.fromtimestamp(int(when), tz=UTC), subject[:300], email))
    return total, commits


def changed_files(
    service_name: str, base: str, head: str, *, limit: int = 5000, globs: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(change, path) for each file that differs from `base` to `head`: A added, M modified, D deleted
    (a rename is a delete and an add), only those matching `globs` when given (matched by git before the
    limit, so thousands of other changed files cannot push a match out). Reads the local mirror only;
    GitError if it lacks either commit."""
    path = mirror_path(service_name)
    for sha in (base, head):
        if not _has_commit(path, sha):
            raise GitError(f"commit {sha[:12]} is not in this machine's mirror of {service_name} yet")
    # ":(top)" and no other magic: git's default pathspec match is fnmatch's, `*` crossing directories.
    specs = [f":(top){glob}" for glob in globs]
    out = _git_bytes("diff", "--name-status", "--no-renames", "-z", base, head, "--", *specs, cwd=path)
    fields = out.decode("utf-8", errors="replace").split("\0")
    changes = []
    for status, name in zip(fields[0::2], fields[1::2], strict=False):
        if status and name:
            changes.append((status[0] if status[0] in "AD" else "M", name))
        if len(changes) >= limit:
            break
    return changes


def branch_head(name: str, branch: str) -> str:
    """The sha `branch` points at in the local mirror `name` (GitError when it has no such branch)."""
    try:
        return _git(
            "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", cwd=mirror_path(name)
        ).strip()
    except GitError:
        raise GitError(f"the repository has no branch {branch!r}") from None


def paths_at(service_name: str, sha: str) -> set[str]:
    """Every file path in commit `sha` of the local mirror (GitError if it lacks the commit)."""
    out = _git_bytes("ls-tree", "-r", "-z", "--name-only", sha, cwd=mirror_path(service_name))
    return {name for name in out.decode("utf-8", errors="replace").split("\0") if name}


def blob_id(service_name: str, sha: str, path: str) -> str | None:
    """Git's id of the content of `path` at commit `sha` of the local mirror (None: no such file)."""
    try:
        found = _git("rev-parse", "--verify", "--quiet", f"{sha}:{path}", cwd=mirror_path(service_name)).strip()
    except GitError:
        return None
    return found or None


class FileTooLarge(GitError):
    """A file from a branch is larger than its reader takes; it was not read."""


def file_at(service_name: str, sha: str, path: str, *, max_bytes: int) -> str | None:
    """The text of `path` in commit `sha` of the local mirror; None when the commit has no such file.

    The file comes from a branch: FileTooLarge beyond `max_bytes` (checked before
    it is read), and bytes that are not UTF-8 are replaced rather than fatal.
    """
    mirror = mirror_path(service_name)
    if not _has_commit(mirror, sha):
        raise GitError(f"commit {sha[:12]} is not in this machine's mirror of {service_name}")
    try:
        kind = _git("cat-file", "-t", f"{sha}:{path}", cwd=mirror).strip()
    except GitError:
        return None
    if kind != "blob":
        raise FileTooLarge(f"{path} is a {kind}, not a file")
    size = int(_git("cat-file", "-s", f"{sha}:{path}", cwd=mirror).strip())
    if size > max_bytes:
        raise FileTooLarge(f"{path} is {size // 1024} KB; at most {max_bytes // 1024} KB is read")
    return _git_bytes("cat-file", "blob", f"{sha}:{path}", cwd=mirror).decode("utf-8", errors="replace")
