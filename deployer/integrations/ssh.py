"""SSH to hosts: connections (opened by ssh_connect.py, through bastions by ssh_gateways.py) and the commands
run on them (Fabric: here and in those two; paramiko: also ssh_keys.py, the keys).

Fabric accepts any host key by default; Gantry trusts only the keys its caller
hands over (the trust store in the database, read by every worker) and refuses
unknown or changed ones; its own key is ssh_keys.identity(). Fabric opens the
connection; commands run on a paramiko channel of it. Every remote command runs
under the remote `timeout` utility (a local timeout alone would leave it
running) and under a local silence timeout too, in case the connection hangs.
"""

from __future__ import annotations

import codecs
import hashlib
import secrets
import shlex
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import paramiko
from django.conf import settings
from fabric import Connection

from deployer.errors import StepFailed
from deployer.integrations.ssh_connect import (  # noqa: F401 (HostKeyError, Target, Unreachable: ssh.X for callers)
    HostKeyError,
    Target,
    Unreachable,
    connection_new,
    connection_open,
)
from deployer.integrations.ssh_gateways import through
from deployer.integrations.ssh_keys import HostKey
from deployer.integrations.ssh_sessions import planned_next, session_started, spares_open
from deployer.integrations.ssh_slots import SlotConnection, slot_take

# Exit status of coreutils `timeout` when it had to stop the command.
TIMEOUT_EXIT = 124


def open_connection(
    target: Target, trusted: Sequence[HostKey], hop_keys: Mapping[str, Sequence[HostKey]] | None = None
) -> Connection:
    """An open connection to `target`, whose key must be one of `trusted` (each of its hops' one of
    `hop_keys[hop.known_hosts_name]`), holding one of the process's connection slots (ssh_slots.py); the
    caller closes it."""
    slot = slot_take(str(target))
    try:
        sock = through(target, hop_keys or {}) if target.via else None
    except BaseException:
        slot.release()
        raise
    conn = connection_new(target, trusted, SlotConnection, sock)
    conn.hold(slot)
    try:
        connection_open(conn, target)
        if sock is None:  # Small packets at once: else each command waits on Nagle + delayed ACK (~40 ms a round).
            conn.client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        conn.close()
        raise
    return conn


class _LineWriter:
    """A file-like sink for invoke that hands on whole lines of remote output."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.buffer = ""

    def write(self, text: str) -> None:
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            self.emit(line.rstrip("\r"))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buffer:
            self.emit(self.buffer)
            self.buffer = ""


class CommandStopped(StepFailed):
    """The command was stopped on request (its process group sent TERM, then KILL)."""


# How often a running command's caller is asked whether to stop it.
STOP_POLL_SECONDS = 1.0


def run(
    conn: Connection,
    script: str,
    *,
    timeout: int,
    output: Callable[[str], None],
    stdin: Sequence[bytes | Path] = (),
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run a POSIX shell script on the host, streaming each output line to `output`.

    `stdin` is sent to the script's standard input, in order (how releases are
    uploaded: one session, no SFTP round trips). Raise StepFailed on a non-zero
    exit (saying which signal, when one ended it), when it runs past `timeout`
    seconds, or when the host goes silent; CommandStopped when `stop` (asked
    about every second) said to stop it. When more commands are planned on this
    connection (commands_planned), the next one's session is opened while this one runs.
    """
    token = secrets.token_hex(8)
    transport = conn.client.get_transport() if conn.client else None
    if transport is None or not transport.is_active():
        raise StepFailed("lost the connection: it is closed")
    pid_mark = f"GANTRY-PID-{token} "
    remote_pid = ""

    def emit(line: str) -> None:
        nonlocal remote_pid
        if line.startswith(pid_mark) and not remote_pid:
            remote_pid = line.removeprefix(pid_mark).strip()
        else:
            output(line)

    writer = _LineWriter(emit)
    started = time.monotonic()
    channel = session_started(transport, script, timeout, token)
    stopped = False
    try:
        try:
            for part in stdin:
                _send(channel, part)
            channel.shutdown_write()
        except TimeoutError as exc:
            raise StepFailed(f"the host took no more of the upload for {timeout + 15} s") from exc
        except (OSError, paramiko.SSHException):
            if not channel.exit_status_ready():
                raise
            # The command stopped reading because it ended (it failed early): its output and status say why.
        if planned_next(transport):  # while this command runs: the next one's session, its login shell starting
            spares_open(transport, 1)
        channel.settimeout(STOP_POLL_SECONDS)  # reading: wake up every second to ask `stop`
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        heard = time.monotonic()
        while True:
            try:
                data = channel.recv(65536)
            except TimeoutError:
                if time.monotonic() - heard > timeout + 15:  # the remote `timeout` should have acted first
                    raise StepFailed(f"no answer from the host within {timeout + 15} s") from None
                if stop is not None and not stopped and remote_pid.isdigit() and stop():
                    stopped = True
                    _stop(transport, remote_pid)
                continue
            if not data:
                break
            heard = time.monotonic()
            writer.write(decoder.decode(data))
        writer.write(decoder.decode(b"", final=True))
        if not channel.status_event.wait(15):
            raise StepFailed("the host closed the command without an exit status")
        status = channel.exit_status
    except (OSError, paramiko.SSHException) as exc:
        raise StepFailed(f"lost the connection: {exc or exc.__class__.__name__}") from exc
    finally:
        writer.close()
        channel.close()
    _check_status(status, timeout, time.monotonic() - started, stopped)


def _stop(transport: paramiko.Transport, pid: str) -> None:
    """TERM the remote `timeout` process (it passes the signal to the command's group)."""
    try:
        channel = transport.open_session(timeout=settings.SSH_CONNECT_TIMEOUT)
        channel.exec_command(f"kill -TERM {int(pid)} 2>/dev/null")
        channel.status_event.wait(10)
        channel.close()
    except (OSError, paramiko.SSHException):
        pass  # the command goes on to its own timeout


def _check_status(status: int, timeout: int, elapsed: float, stopped: bool) -> None:
    if status == -1:
        raise StepFailed("lost the connection: no exit status")
    if stopped:
        raise CommandStopped(f"stopped on request (exit status {status})" if status else "stopped on request")
    # `timeout` says 124, or 137 when the command ignored its TERM and needed the KILL five seconds later.
    if status == TIMEOUT_EXIT or (status == 128 + signal.SIGKILL and elapsed >= timeout):
        raise StepFailed(f"still running after {timeout} s; stopped")
    if status > 128 and (name := _signal_name(status - 128)):
        raise StepFailed(f"killed by signal {name} (exit status {status})")
    if status != 0:
        raise StepFailed(f"exited with status {status}")


def fetch(conn: Connection, path: str, dest: Path, *, timeout: int, max_bytes: int) -> str:
    """Copy the remote file `path` to `dest` (one session, bytes as they are); return its sha256.

    StepFailed when it cannot be read, is larger than `max_bytes`, or the copy takes more than `timeout` s
    in all (a host trickling bytes would otherwise hold the worker for ever)."""
    transport = conn.client.get_transport() if conn.client else None
    if transport is None or not transport.is_active():
        raise StepFailed("lost the connection: it is closed")
    digest = hashlib.sha256()
    try:
        channel = transport.open_session(timeout=settings.SSH_CONNECT_TIMEOUT)
        channel.settimeout(timeout)
        channel.exec_command(f"cat -- {shlex.quote(path)}")
        ends = time.monotonic() + timeout
        size = 0
        with dest.open("wb") as out:
            while data := channel.recv(256 * 1024):
                size += len(data)
                if size > max_bytes:
                    channel.close()
                    raise StepFailed(f"{path} is larger than {max_bytes // 2**20} MiB; not copied further")
                if time.monotonic() > ends:
                    channel.close()
                    raise StepFailed(f"copying {path} took over {timeout} s; stopped")
                out.write(data)
                digest.update(data)
        if not channel.status_event.wait(15):
            raise StepFailed("the host closed the copy without an exit status")
        status = channel.exit_status
        channel.close()
    except TimeoutError as exc:
        raise StepFailed(f"no data from the host within {timeout} s while copying {path}") from exc
    except (OSError, paramiko.SSHException) as exc:
        raise StepFailed(f"lost the connection while copying {path}: {exc}") from exc
    if status != 0:
        raise StepFailed(f"cannot read {path} (exit status {status})")
    return digest.hexdigest()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return ""


def _send(channel: paramiko.Channel, part: bytes | Path) -> None:
    if isinstance(part, bytes):
        channel.sendall(part)
        return
    with part.open("rb") as source:
        while chunk := source.read(256 * 1024):
            channel.sendall(chunk)
