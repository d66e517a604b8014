"""SSH to hosts, the one place that imports Fabric (paramiko: here and in ssh_keys.py, the keys).

Fabric accepts any host key by default; Gantry trusts only the keys its caller
hands over (the trust store in the database, read by every worker) and refuses
unknown or changed ones; its own key is ssh_keys.identity(). A host behind
bastions (`via`, the catalog's proxy_jump) is reached over a direct-tcpip channel
of one connection per chain of hops and worker process (each hop's key checked
the same way), shared by every host behind it and opened again when it died. Fabric opens the
connection; commands run on a paramiko channel of it. Every remote command runs
under the remote `timeout` utility (a local timeout alone would leave it
running) and under a local silence timeout too, in case the connection hangs.
"""

from __future__ import annotations

import binascii
import codecs
import hashlib
import secrets
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import paramiko
from django.conf import settings
from fabric import Config, Connection

from deployer.errors import StepFailed
from deployer.integrations.ssh_keys import HostKey, fingerprint, identity
from deployer.integrations.ssh_sessions import planned_next, session_started, spares_open
from deployer.integrations.ssh_slots import SlotConnection, slot_take

# Exit status of coreutils `timeout` when it had to stop the command.
TIMEOUT_EXIT = 124


@dataclass(frozen=True)
class Target:
    address: str
    port: int
    user: str
    via: tuple[Target, ...] = ()  # the jump hosts, in order (the first is reached directly)

    def __str__(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


class HostKeyError(StepFailed):
    """The host's key is unknown or differs from the one Gantry trusts; `offered` is the key it showed (under
    `name`, as known_hosts names the host), for a person to check and trust."""

    def __init__(self, message: str, *, name: str, offered: HostKey) -> None:
        super().__init__(message)
        self.name, self.offered = name, offered


class Unreachable(StepFailed):
    """Nothing answers at the host's address and port (connection refused, timed out, no route)."""


class _RefuseUnknownKey(paramiko.MissingHostKeyPolicy):
    """Refuse hosts whose key Gantry does not know, saying how to trust them."""

    def __init__(self, target: Target) -> None:
        self.target = target

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"{self.target.address}:{self.target.port} offered host key {fingerprint(key)} ({key.get_name()}), "
            f"which Gantry does not trust. If you expect this host and fingerprint, trust it on its service's "
            f"page (host keys) or with: manage.py trust_host {self.target.address}:{self.target.port} "
            f"--fingerprint {fingerprint(key)}",
            name=self.target.known_hosts_name,
            offered=HostKey.of(key),
        )


def open_connection(
    target: Target, trusted: Sequence[HostKey], hop_keys: Mapping[str, Sequence[HostKey]] | None = None
) -> Connection:
    """An open connection to `target`, whose key must be one of `trusted` (each of its hops' one of
    `hop_keys[hop.known_hosts_name]`), holding one of the process's connection slots (ssh_slots.py); the
    caller closes it."""
    slot = slot_take(str(target))
    try:
        sock = _through(target, hop_keys or {}) if target.via else None
    except BaseException:
        slot.release()
        raise
    conn = _connection(target, trusted, SlotConnection, sock)
    conn.hold(slot)
    try:
        _open(conn, target)
        if sock is None:  # Small packets at once: else each command waits on Nagle + delayed ACK (~40 ms a round).
            conn.client.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        conn.close()
        raise
    return conn


def _connection(target: Target, trusted: Sequence[HostKey], kind: type[Connection], sock: object) -> Connection:
    """A Fabric connection (not open yet) that accepts only `trusted` keys and Gantry's own identity."""
    connect_kwargs: dict[str, object] = {
        "pkey": identity(),
        "look_for_keys": False,
        "allow_agent": False,
        "banner_timeout": settings.SSH_CONNECT_TIMEOUT,
        "auth_timeout": settings.SSH_CONNECT_TIMEOUT,
    }
    if sock is not None:
        connect_kwargs["sock"] = sock
    conn = kind(
        host=target.address,
        port=target.port,
        user=target.user,
        connect_timeout=settings.SSH_CONNECT_TIMEOUT,
        config=Config(overrides={"load_ssh_configs": False}),
        connect_kwargs=connect_kwargs,
    )
    known = conn.client.get_host_keys()
    for key in trusted:
        try:
            known.add(target.known_hosts_name, key.key_type, key.pkey())
        except (ValueError, TypeError, binascii.Error, paramiko.SSHException):
            continue  # a key paramiko cannot read is one it could never match
    conn.client.set_missing_host_key_policy(_RefuseUnknownKey(target))
    return conn


_gateways: dict[tuple[str, ...], Connection] = {}
_gateways_lock = threading.RLock()  # (re-entered: a second hop opens through the first)


def _through(target: Target, hop_keys: Mapping[str, Sequence[HostKey]]) -> paramiko.Channel:
    """A channel to `target` through its hops (bounded by the connect timeout: paramiko's default is an hour)."""
    last = target.via[-1]
    gateway = _gateway(target.via, hop_keys)
    try:
        return gateway.client.get_transport().open_channel(
            "direct-tcpip", (target.address, target.port), ("", 0), timeout=settings.SSH_CONNECT_TIMEOUT
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:  # ChannelException: the bastion could not connect
        raise Unreachable(f"cannot connect to {target} through {last.address}:{last.port}: {exc}") from exc


def _gateway(hops: tuple[Target, ...], hop_keys: Mapping[str, Sequence[HostKey]]) -> Connection:
    """The open connection to the last of `hops` (through the ones before it), shared in this process."""
    chain = tuple(str(hop) for hop in hops)
    with _gateways_lock:  # one opening at a time: hosts behind one bastion share its connection
        gateway = _gateways.get(chain)
        if gateway is not None and gateway.is_connected:
            return gateway
        if gateway is not None:
            gateway.close()
        hop = hops[-1]
        sock = _through(replace(hop, via=hops[:-1]), hop_keys) if len(hops) > 1 else None
        gateway = _connection(hop, hop_keys.get(hop.known_hosts_name, ()), Connection, sock)
        try:
            _open(gateway, hop)
        except BaseException:
            gateway.close()
            raise
        _gateways[chain] = gateway
        return gateway


def _open(conn: Connection, target: Target) -> None:
    try:
        conn.open()
    except paramiko.BadHostKeyException as exc:
        raise HostKeyError(
            f"the host key of {target.address}:{target.port} CHANGED: it offered {fingerprint(exc.key)}, "
            f"Gantry trusts {fingerprint(exc.expected_key)}. This is what a man-in-the-middle looks like; if the "
            f"host was rebuilt, check the new fingerprint with its owner, then trust it on its service's page "
            f"(host keys) or run: manage.py trust_host {target.address}:{target.port} --replace --fingerprint "
            f"{fingerprint(exc.key)}",
            name=target.known_hosts_name,
            offered=HostKey.of(exc.key),
        ) from exc
    except paramiko.AuthenticationException as exc:
        raise StepFailed(
            f"{target} refused Gantry's SSH key: add the public key (manage.py ssh_key prints it) "
            f"to ~{target.user}/.ssh/authorized_keys on {target.address}"
        ) from exc
    except OSError as exc:  # refused, timed out, no route: nothing answers there
        raise Unreachable(f"cannot connect to {target}: {exc}") from exc
    except paramiko.SSHException as exc:
        raise StepFailed(f"cannot connect to {target}: {exc}") from exc


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
