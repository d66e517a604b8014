"""Secrets never live in the catalog or the database: each environment reads them, at every deploy, from
its own source: a file of NAME=value lines (mode 0600, outside any repository), or a command the worker runs
(`sops -d …`, `vault kv get …`) that prints such lines or a JSON object. An environment without a source
reads the workers' environment variables (GANTRY_SECRET_<NAME>), which every environment shares.

Whoever uses them (post-deploy API tests, a release's config) is granted names per environment in the
catalog; this module only reads what a source holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import re
import shlex
import signal
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
logger = logging.getLogger(__name__)
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


def secrets_read(source: SecretSource, *, timeout: int = COMMAND_TIMEOUT) -> Held:
    """Read `source` now (it is read again at every deploy, so a rotated value needs no worker restart)."""
    if source.file:
        return Held(_parsed(_file_text(Path(source.file)), str(source)), source)
    if source.command:
        return Held(_parsed(_command_output(source.command, timeout), str(source)), source)
    return Held(worker_secrets(), source)


def worker_secrets() -> dict[str, str]:
    """Every secret this worker holds, by NAME (from GANTRY_SECRET_NAME); empty values do not count."""
    return {
        name.removeprefix(SECRET_ENV_PREFIX): value
        for name, value in os.environ.items()
        if name.startswith(SECRET_ENV_PREFIX) and value
    }


def _file_text(path: Path) -> str:
    """The file's text, checked on the descriptor that is read (no swap between the check and the read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SecretSourceError(
            f"the secrets file {path} cannot be read on this worker ({exc.strerror}); create it on every worker "
            "(NAME=value lines, mode 0600, owned by the user the workers run as; not a symlink)"
        ) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretSourceError(f"the secrets file {path} is not a regular file; point secrets.file at one")
        if info.st_mode & 0o077 or info.st_uid != os.geteuid():
            raise SecretSourceError(
                f"the secrets file {path} may be read or changed by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}); Gantry reads no secret others can: "
                f"chown it to the workers' user and chmod 600 {path}"
            )
        data = file.read(SOURCE_MAX_BYTES + 1)
    if len(data) > SOURCE_MAX_BYTES:
        raise SecretSourceError(f"the secrets file {path} is over {SOURCE_MAX_BYTES} bytes; it holds secrets only")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretSourceError(f"the secrets file {path} is not UTF-8 text") from None


def _command_output(argv: tuple[str, ...], timeout: int) -> str:
    """The command's standard output, bounded in time and size (a file, so no pipe can hold the worker)."""
    shown = shlex.join(argv)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:  # a session of its own: on timeout its whole process group goes (`sh -c "vault ... | jq"`)
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, env=_command_env()
            )
        except OSError as exc:
            raise SecretSourceError(
                f"the secrets command `{shown}` cannot run on this worker ({exc.strerror}); install it on every "
                "worker or fix secrets.command in the catalog"
            ) from None
        try:
            status = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise SecretSourceError(f"the secrets command `{shown}` ran over {timeout} s; it was stopped") from None
        if status != 0:
            # What it said may quote a value: the worker's own log gets it, not the deploy's reason.
            err.seek(0)
            logger.warning("secrets command `%s` exited %s: %s", shown, status, err.read(4096).decode(errors="replace"))
            raise SecretSourceError(
                f"the secrets command `{shown}` exited {status}; what it printed on stderr is in the worker's log"
            )
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
    # A stray line may be a value itself (a token pasted without its name): say which entry, never its text.
    for number, (name, value) in enumerate(values.items(), start=1):
        if not SECRET_NAME_RE.fullmatch(name) or value is None:
            raise SecretSourceError(
                f"{where}: entry {number} is not NAME=value with a name of letters, digits and _; fix that line"
            )
    return {name: value for name, value in values.items() if value}


# What a secrets command never needs from the worker: its own keys and tokens (the command may be any
# program the catalog names; sops, vault and the cloud CLIs read their own variables, which stay).
WORKER_ONLY = (
    "GANTRY_SSH_PRIVATE_KEY",
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "GITHUB_TOKEN",
    "GITHUB_WEBHOOK_SECRET",
    "JENKINS_TOKEN",
    "JENKINS_WEBHOOK_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "GANTRY_METRICS_TOKEN",
)


def _command_env() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if name not in WORKER_ONLY and not name.startswith(SECRET_ENV_PREFIX)
    }


def value_digest(key: str, value: str) -> str:
    """A keyed digest of a value alone (whatever its name or environment), to notice the same value in two
    places without keeping either."""
    return hmac.new(key.encode(), f"value\0{value}".encode(), hashlib.sha256).hexdigest()


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
