"""Release archives as a CI build's output would be: the repository's tree with something the build added."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def with_file(archive: Path, name: str, data: bytes) -> bytes:
    """`archive` (.tar.gz) with one more file."""
    out = io.BytesIO()
    with tarfile.open(archive) as source, tarfile.open(fileobj=out, mode="w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        target.addfile(info, io.BytesIO(data))
    return out.getvalue()
