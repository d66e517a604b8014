"""SSH sessions opened ahead of their commands: each session's login shell (its rc files: nvm, rbenv or pyenv
there cost a tenth of a second or more) starts on the host while the previous command runs or a build goes on
here. The caller hands over its plan (how many commands will run); this module decides when to open them."""

from __future__ import annotations

import shlex
import threading
import weakref

import paramiko
from django.conf import settings
from fabric import Connection

from deployer.errors import StepFailed

# What every session runs: it waits for one script on its standard input ("<timeout> <token> <bytes>\n",
# then the script) and runs it under the remote `timeout`, as a background job whose pid it prints (so it
# can be stopped: `timeout` passes a TERM on to the script's whole process group, then KILLs it 5 s later).
# The rest of standard input is the script's (a background job's stdin is /dev/null unless handed over,
# here as fd 3). The outer shell turns a death by signal into an exit status (128 + the signal): sshd
# would report "exit-signal", which paramiko ignores, and the step would read as a lost connection.
#
# stderr joins stdout on the host: sshd forwards them apart, splicing a line written in pieces with another.
# The script comes after the session has started so that a session can be opened ahead of its command:
# the host's login shell reads its rc files (nvm, rbenv or pyenv there cost a tenth of a second or more
# per session) while the previous command runs. A session that never gets a script (its connection
# closed) exits without doing anything.
_LOADER = (
    "IFS=' ' read -r limit token size || exit 0\n"
    'case "$limit.$size" in *[!0-9.]*|.*|*.) exit 0;; esac\n'
    'case "$token" in ""|*[!0-9a-f]*) exit 0;; esac\n'
    'script=$(dd bs=1 count="$size" 2>/dev/null; echo x)\n'
    "script=${script%x}\n"
    "exec 3<&0\n"
    'timeout -k 5 "$limit" sh -c "$script" <&3 3<&- 2>&1 &\n'
    "exec 3<&-\n"
    'echo "GANTRY-PID-$token $!"\n'
    "wait $!\n"
    "exit $?"
)
# The sessions opened ahead for each connection, oldest first; the commands still planned on each.
_spares: weakref.WeakKeyDictionary[paramiko.Transport, list[paramiko.Channel]] = weakref.WeakKeyDictionary()
_planned: weakref.WeakKeyDictionary[paramiko.Transport, int] = weakref.WeakKeyDictionary()
_spares_lock = threading.Lock()


def _session(transport: paramiko.Transport) -> paramiko.Channel:
    """A new session waiting for its script (its login shell starting on the host meanwhile)."""
    channel = transport.open_session(timeout=settings.SSH_CONNECT_TIMEOUT)
    channel.set_combine_stderr(True)
    channel.exec_command(f"sh -c {shlex.quote(_LOADER)}")
    return channel


def spares_open(transport: paramiko.Transport, count: int) -> None:
    """Have `count` sessions waiting on the connection. A failure here only loses the head start: the next
    command opens its own session and reports what is wrong."""
    while True:
        with _spares_lock:
            if len(_spares.setdefault(transport, [])) >= count:
                return
        try:
            channel = _session(transport)
        except (OSError, paramiko.SSHException):
            return
        with _spares_lock:
            _spares[transport].append(channel)


def commands_planned(conn: Connection, count: int) -> None:
    """The caller's plan: `count` commands will run on `conn`, the next one first. While each runs, the
    session of the one after it is opened (the caller never says, command by command, what follows)."""
    if conn.client and (transport := conn.client.get_transport()) is not None:
        with _spares_lock:
            _planned[transport] = count


def planned_next(transport: paramiko.Transport) -> bool:
    """A command starts: is another planned after it?"""
    with _spares_lock:
        left = _planned.get(transport, 0) - 1
        _planned[transport] = max(left, 0)
    return left > 0


def sessions_ahead(conn: Connection, count: int) -> None:
    """Open the sessions of the next `count` commands on `conn` now: the host's login shell reads its rc
    files (which may cost a tenth of a second or more each time) while the caller waits for a build."""
    transport = conn.client.get_transport() if conn.client else None
    if transport is not None and transport.is_active():
        spares_open(transport, count)


def session_started(transport: paramiko.Transport, script: str, timeout: int, token: str) -> paramiko.Channel:
    """A session running `script`: the one opened ahead when it still waits, else a new one."""
    body = script.encode()
    header = f"{int(timeout)} {token} {len(body)}\n".encode()
    while True:
        with _spares_lock:
            waiting = _spares.get(transport)
            spare = waiting.pop(0) if waiting else None
        if spare is None:
            break
        if not spare.closed and not spare.exit_status_ready():
            try:
                spare.settimeout(timeout + 15)  # sending: the most a host may take to accept more of the upload
                spare.sendall(header + body)
                return spare
            except (OSError, paramiko.SSHException):
                pass  # it went away meanwhile: the next one, or a new session that tells what is wrong
        spare.close()
    try:
        channel = _session(transport)
        channel.settimeout(timeout + 15)  # sending: the most a host may take to accept more of the upload
        channel.sendall(header + body)
    except (OSError, paramiko.SSHException) as exc:
        raise StepFailed(f"lost the connection: {exc or exc.__class__.__name__}") from exc
    return channel
