"""Secrets never live in the catalog or the database: each environment reads them, at every deploy, from
its own source: a file of NAME=value lines (mode 0600, outside any repository), or a command the worker runs
(`sops -d …`, `vault kv get …`) that prints such lines or a JSON object. An environment without a source
reads the workers' environment variables (GANTRY_SECRET_<NAME>), which every environment shares.

Whoever uses them (post-deploy API tests, a release's config) is granted names per environment in the
catalog; this module only reads what a source holds.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import shlex
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

SECRET_ENV_PREFIX = "GANTRY_SECRET_"
# A secret named in a template: {{secret.DB_PASSWORD}}
SECRET_TEMPLATE_RE = re.compile(r"\{\{\s*secret\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
MASK = "••••"
SOURCE_MAX_BYTES = 1024 * 1024  # a secrets file or a command's output: more is a mistake, not secrets
COMMAND_TIMEOUT = 30  # seconds a secrets command may run (sops, vault: well under a second)


class SecretSourceError(Exception):
    """The source cannot be read as asked; the message says what is wrong with it and how to fix it."""


@dataclass(frozen=True)
class SecretSource:
    """Where one environment's secrets come from: a file, a command, or (neither) the workers' variables."""

    file: str = ""
    command: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.file:
            return f"the secrets file {self.file}"
        if self.command:
            return f"the secrets command `{shlex.join(self.command)}`"
        return "the workers' GANTRY_SECRET_* variables"

    def __bool__(self) -> bool:
        """Whether the environment names a source of its own (False: the workers' variables)."""
        return bool(self.file or self.command)

    def missing(self, name: str) -> str:
        """How to provide `name` from this source."""
        if self.file:
            return f"add a line {name}=... to {self.file} on every worker"
        if self.command:
            return f"make `{shlex.join(self.command)}` print {name} (a {name}=... line or a JSON key)"
        return f"set {SECRET_ENV_PREFIX}{name} in every worker's environment"


@dataclass(frozen=True)
class Held:
    """What a source held when it was read: the values by name, and the source (for messages)."""

    values: dict[str, str] = field(default_factory=dict)
    source: SecretSource = SecretSource()


def secrets_read(source: SecretSource) -> Held:
    """Read `source` now (it is read again at every deploy, so a rotated value needs no worker restart)."""
    if source.file:
        return Held(_parsed(_file_text(Path(source.file)), str(source)), source)
    if source.command:
        return Held(_parsed(_command_output(source.command), str(source)), source)
    return Held(worker_secrets(), source)


def worker_secrets() -> dict[str, str]:
    """Every secret this worker holds, by NAME (from GANTRY_SECRET_NAME); empty values do not count."""
    return {
        name.removeprefix(SECRET_ENV_PREFIX): value
        for name, value in os.environ.items()
        if name.startswith(SECRET_ENV_PREFIX) and value
    }


def _file_text(path: Path) -> str:
    try:
        info = path.stat()
    except OSError as exc:
        raise SecretSourceError(
            f"the secrets file {path} cannot be read on this worker ({exc.strerror}); create it on every worker "
            "(NAME=value lines, mode 0600, owned by the user the workers run as)"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretSourceError(f"the secrets file {path} is not a regular file; point secrets.file at one")
    if info.st_mode & 0o077:
        raise SecretSourceError(
            f"the secrets file {path} may be read by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"Gantry reads no secret others can: chmod 600 {path}"
        )
    if info.st_size > SOURCE_MAX_BYTES:
        raise SecretSourceError(f"the secrets file {path} is over {SOURCE_MAX_BYTES} bytes; it holds secrets only")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretSourceError(f"the secrets file {path} cannot be read as UTF-8 text ({exc})") from None


def _command_output(argv: tuple[str, ...]) -> str:
    """The command's standard output, bounded in time and size (a file, so no pipe can hold the worker)."""
    shown = shlex.join(argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SecretSourceError(
                f"the secrets command `{shown}` ran over {COMMAND_TIMEOUT} s; it was stopped"
            ) from None
        except OSError as exc:
            raise SecretSourceError(
                f"the secrets command `{shown}` cannot run on this worker ({exc.strerror}); install it on every "
                "worker or fix secrets.command in the catalog"
            ) from None
        if done.returncode != 0:
            err.seek(0)
            last = err.read(4096).decode(errors="replace").strip().splitlines()[-1:] or ["(nothing on stderr)"]
            raise SecretSourceError(f"the secrets command `{shown}` exited {done.returncode}: {last[0][:300]}")
        if out.tell() > SOURCE_MAX_BYTES:
            raise SecretSourceError(f"the secrets command `{shown}` printed over {SOURCE_MAX_BYTES} bytes")
        out.seek(0)
        try:
            return out.read().decode("utf-8")
        except UnicodeDecodeError:
            raise SecretSourceError(f"the secrets command `{shown}` printed something that is not UTF-8") from None


def _parsed(text: str, where: str) -> dict[str, str]:
    """NAME=value lines (dotenv, as sops writes them) or one JSON object of strings; names checked."""
    if text.lstrip().startswith("{"):
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise SecretSourceError(f"{where} printed JSON that does not parse ({exc})") from None
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise SecretSourceError(f"{where} printed JSON that is not one object of string values")
        values: dict[str, str | None] = found
    else:
        values = dict(dotenv_values(stream=io.StringIO(text), interpolate=False))
    for name, value in values.items():
        if not SECRET_NAME_RE.fullmatch(name):
            raise SecretSourceError(f"{where} holds {name[:40]!r}, which is not a secret name (letters, digits, _)")
        if value is None:
            raise SecretSourceError(f"{where} names {name} without a value; write {name}=value")
    return {name: value for name, value in values.items() if value}


def fingerprint(key: str, scope: str, name: str, value: str) -> str:
    """A keyed digest of one value, to notice a change without keeping the value (`key`: Django's SECRET_KEY)."""
    return hmac.new(key.encode(), f"{scope}\0{name}\0{value}".encode(), hashlib.sha256).hexdigest()


# The values being hidden in this process now: one list per deploy running here (its secrets, added as
# they are read). Every text Gantry stores or sends about a deploy passes through `scrubbed` on its way to
# the database (deployer/models/scrub.py); Slack and GitHub messages are made from those rows.
_hiding: list[list[str]] = []
_hiding_lock = threading.Lock()


@contextmanager
def hiding() -> Iterator[list[str]]:
    """A list whose values `scrubbed` masks in this process while the block runs (add to it as they come)."""
    values: list[str] = []
    with _hiding_lock:
        _hiding.append(values)
    try:
        yield values
    finally:
        with _hiding_lock:
            _hiding.remove(values)


def scrubbed(text: str) -> str:
    """`text` with every value hidden in this process masked (see `hiding`)."""
    with _hiding_lock:
        values = [value for hidden in _hiding for value in hidden]
    return masked(text, values) if values else text


class ScrubFilter(logging.Filter):
    """Gantry's own log (the console handler) masks what `scrubbed` masks: a failure's reason, logged by
    the worker, carries the output of the command that failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrubbed(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = scrubbed(logging.Formatter().formatException(record.exc_info))
        return True


def masked(text: str, hidden: list[str]) -> str:
    """`text` with every value of `hidden` (4 characters or more; longest first) replaced by ••••."""
    for value in sorted(hidden, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text
