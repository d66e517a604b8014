"""Backups of one Gantry and their restore on a fresh machine.

A backup is a directory (0700, files 0600) with everything Gantry cannot make again: the database (which
holds the history, the audit log, the trust store of host keys, grants and tokens), consistent while
Gantry runs — SQLite through its online backup API, PostgreSQL through pg_dump's snapshot —, the
SECRET_KEY made for this install (signed links and remembered secret digests need it), and the SSH key
file. What Gantry makes again by itself is left out: git mirrors, the embedded broker's queue, static
files. A manifest says what is in it and from which Gantry.

Written by hand over sqlite3/pg_dump: no well-kept library backs up a Django install's database together
with the files it cannot lose (django-dbbackup covers the database only, and not SQLite's online API).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from deployer.lib.private_file import private_dir, private_file_write
from deployer.version import VERSION

MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
PG_TIMEOUT = 3600


class BackupError(Exception):
    """A backup or a restore could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class Made:
    path: Path
    files: list[str]
    notes: list[str]


def backup_write(into: Path) -> Made:
    """A new backup directory under `into` (made if missing), named by its time."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    target = into / f"gantry-backup-{stamp}"
    if target.exists():
        raise BackupError(f"{target} exists already; wait a second or pick another directory")
    private_dir(target)
    files, notes = [_database_backup(target)], []
    if settings.SECRET_KEY_FROM_ENV:
        notes.append("SECRET_KEY comes from the environment: keep it where it is set (it is not in this backup)")
    else:
        files.append(_copy(settings.VAR_DIR / "secret_key", target / "secret_key"))
    if os.environ.get("GANTRY_SSH_PRIVATE_KEY"):
        notes.append("the SSH key comes from GANTRY_SSH_PRIVATE_KEY: keep it where it is set (not in this backup)")
    elif settings.GANTRY_SSH_KEY.exists():
        files.append(_copy(settings.GANTRY_SSH_KEY, target / "ssh" / "id_ed25519"))
    else:
        notes.append("no SSH key file yet (manage.py ssh_key makes one)")
    manifest = {
        "gantry": VERSION,
        "made_at": timezone.now().isoformat(),
        "engine": connection.vendor,
        "files": {name: _sha256(target / name) for name in files},
        "notes": notes,
    }
    private_file_write(target / MANIFEST, json.dumps(manifest, indent=2).encode(), replace=True)
    return Made(target, files, notes)


def _database_backup(target: Path) -> str:
    if connection.vendor == "sqlite":
        out = sqlite3.connect(target / SQLITE_FILE)
        try:
            source = sqlite3.connect(str(settings.DATABASES["default"]["NAME"]))
            try:
                source.backup(out)  # consistent while Gantry writes: SQLite's online backup
            finally:
                source.close()
        finally:
            out.close()
        (target / SQLITE_FILE).chmod(0o600)
        return SQLITE_FILE
    if connection.vendor == "postgresql":
        _pg("pg_dump", "--format=custom", "--no-owner", f"--file={target / PG_FILE}")
        (target / PG_FILE).chmod(0o600)
        return PG_FILE
    raise BackupError(f"backups know SQLite and PostgreSQL, not {connection.vendor}")


def backup_restore(source: Path, *, force: bool = False) -> list[str]:
    """Put a backup in place on this machine (its database must be empty of Gantry's data unless `force`);
    what was done. Nothing of Gantry may run meanwhile; `migrate` follows (the backup may be older)."""
    manifest = _manifest(source)
    if not force and _has_data():
        raise BackupError(
            "this Gantry's database has data already; restore into a fresh one (or --force to replace it)"
        )
    done = []
    if (source / SQLITE_FILE).exists():
        if connection.vendor != "sqlite":
            raise BackupError("the backup is of SQLite, this Gantry uses PostgreSQL: restore it on SQLite first")
        connection.close()
        database = Path(str(settings.DATABASES["default"]["NAME"]))
        for stale in (database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(source / SQLITE_FILE, database)
        database.chmod(0o600)
        done.append(f"database: {database}")
    elif (source / PG_FILE).exists():
        if connection.vendor != "postgresql":
            raise BackupError("the backup is of PostgreSQL, this Gantry uses SQLite: point DATABASE_URL at PostgreSQL")
        connection.close()
        _pg("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", str(source / PG_FILE))
        done.append("database: restored with pg_restore")
    if (source / "secret_key").exists():
        if settings.SECRET_KEY_FROM_ENV:
            done.append("SECRET_KEY is set in the environment here: the backup's key file was not used")
        else:
            private_file_write(settings.VAR_DIR / "secret_key", (source / "secret_key").read_bytes(), replace=True)
            done.append(f"secret key: {settings.VAR_DIR / 'secret_key'}")
    if (source / "ssh" / "id_ed25519").exists():
        private_dir(settings.GANTRY_SSH_KEY.parent)
        private_file_write(settings.GANTRY_SSH_KEY, (source / "ssh" / "id_ed25519").read_bytes(), replace=True)
        done.append(f"SSH key: {settings.GANTRY_SSH_KEY}")
    done += [f"note from the backup: {note}" for note in manifest.get("notes", [])]
    return done


def _manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{source} is not a Gantry backup (no readable {MANIFEST}: {exc})") from exc
    for name, digest in manifest.get("files", {}).items():
        if not (source / name).exists() or _sha256(source / name) != digest:
            raise BackupError(f"{source / name} is missing or damaged (its sha256 is not the manifest's)")
    return manifest


def _has_data() -> bool:
    from django.contrib.auth import get_user_model

    from deployer.models import Deploy, Service

    try:
        return Service.objects.exists() or Deploy.objects.exists() or get_user_model().objects.exists()
    except Exception:  # no tables yet: a fresh database
        return False


def _pg(program: str, *args: str) -> None:
    """pg_dump/pg_restore on Gantry's database; the password goes in the environment, never the command line."""
    db = settings.DATABASES["default"]
    env = {**os.environ, "PGPASSWORD": str(db.get("PASSWORD") or "")}
    argv = [program, *args, f"--dbname={db['NAME']}", f"--host={db.get('HOST') or 'localhost'}"]
    argv += [f"--port={db.get('PORT') or 5432}", f"--username={db.get('USER') or 'postgres'}"]
    if shutil.which(program) is None:
        raise BackupError(f"{program} is not installed: apt-get install postgresql-client (the server's version)")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT)
    if done.returncode:
        raise BackupError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-1000:]}")


def _copy(source: Path, target: Path) -> str:
    private_dir(target.parent)
    private_file_write(target, source.read_bytes(), replace=True)
    return str(target.relative_to(target.parent if target.parent.name != "ssh" else target.parent.parent))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
