"""Files only Gantry may read (its secret key, its SSH private key): created 0600 from the first byte.

Writing then chmod-ing leaves a moment in which the file has the umask's
permissions (often world-readable); O_CREAT with the mode closes it, and
O_EXCL makes a second writer (another process starting at once) back off.
"""

from __future__ import annotations

import os
from pathlib import Path


def private_file_write(path: Path, data: bytes) -> bool:
    """Create `path` (mode 0600) holding `data`; False when it already exists (it is left as it is)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        file.write(data)
    return True
