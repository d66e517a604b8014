"""Files only Gantry may read (its secret key, its SSH private key): created 0600 from the first byte.

Writing then chmod-ing leaves a moment in which the file has the umask's
permissions (often world-readable); O_CREAT with the mode closes it, and
O_EXCL makes a second writer (another process starting at once) back off.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def private_file_write(path: Path, data: bytes, *, replace: bool = False) -> bool:
    """Create `path` (mode 0600) holding `data`; False when it already exists (it is left as it is). With
    `replace`, an existing file is replaced at once (written beside it, then renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if replace:
        beside = path.with_name(f".{path.name}.{os.getpid()}.new")
        beside.unlink(missing_ok=True)
        private_file_write(beside, data)
        os.replace(beside, path)
        return True
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return True


def private_dir(path: Path) -> None:
    """Create `path` (and its parents) with only its owner allowed in (0700), and close an existing one
    this user owns: everything Gantry keeps there (its database, API tokens, sessions, keys) is its own."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid == os.getuid() and info.st_mode & 0o077:
        path.chmod(0o700)


SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def sqlite_files_private(database: str) -> None:
    """The SQLite file and its journal files readable by their owner only (the umask made them 0644)."""
    for suffix in SQLITE_COMPANIONS:
        with contextlib.suppress(FileNotFoundError, PermissionError):  # not there (yet), or not ours
            os.chmod(database + suffix, 0o600)
