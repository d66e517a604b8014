"""HTTP to addresses someone else chose (an API test's URL from a branch, a webhook's URL from the catalog):
never to a link-local or cloud-metadata address (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200,
metadata.google.internal). Checked on the name, on what the name resolves to, and on the address the socket
actually connected to (a name that resolves elsewhere a second time is caught there). The worker's proxy
settings and ~/.netrc are ignored (a proxy would make the address check meaningless; netrc would hand out the
worker's passwords); answers are read up to MAX_BODY bytes, and `deadline` bounds a whole exchange.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

Origin = tuple[str, str, int]  # scheme, lower-case host, port

MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
METADATA_NAMES = {"metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
METADATA_ADDRESSES = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AnswerRefused(Exception):
    """The answer came but is not read (too large, too many redirects); the message says why."""


def origin_of(url: str) -> Origin:
    """The origin of an http(s) URL; ValueError when it is not one."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"{url!r} has an invalid port") from exc
    return parts.scheme, parts.hostname.lower().rstrip("."), port


def show_origin(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if _DEFAULT_PORTS[scheme] == port else f":{port}")


def blocked_address(address: str) -> bool:
    """Link-local or a cloud's metadata service (also when written as an IPv4-mapped IPv6 address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip in METADATA_ADDRESSES


def blocked_host(host: str) -> str:
    """Why `host` (a name or an address) is never a target; "" when it may be one."""
    name = host.strip("[]").lower().rstrip(".")
    if name in METADATA_NAMES:
        return f"{name} is a cloud metadata service"
    if blocked_address(name):
        return f"{name} is a link-local or cloud metadata address"
    return ""


class AddressRefused(Exception):
    """The name resolves to an address never called; the message says which."""


def check_resolution(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return  # the request itself will say it cannot resolve the name
    for info in infos:
        address = str(info[4][0])
        if blocked_address(address):
            raise AddressRefused(f"{host} resolves to {address}, a link-local or cloud metadata address; not called")


class BlockedConnection(NewConnectionError):
    """The socket connected to an address no API test may reach (a name that resolved elsewhere this time)."""


# The connections opened while a step runs, so its deadline can cut them (see `deadline`).
_opened: ContextVar[list[HTTPConnection] | None] = ContextVar("apitest_connections", default=None)


class _GuardedConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        peer = str(sock.getpeername()[0])
        if blocked_address(peer):
            sock.close()
            raise BlockedConnection(self, f"{self.host} connected to {peer}, a link-local or cloud metadata address")
        opened = _opened.get()
        if opened is not None:
            opened.append(self)
        return sock


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedPool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedPool, "https": _GuardedHTTPSPool}


def guarded_session() -> requests.Session:
    """A session that checks every connection's address and ignores the worker's proxies and netrc."""
    session = requests.Session()
    session.trust_env = False
    adapter = _GuardedAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextmanager
def deadline(session: requests.Session, seconds: float) -> Iterator[Callable[[], bool]]:
    """Bound everything the block does with `session` to `seconds` in all.

    requests' timeout bounds each socket operation, not the exchange: a server
    sending one byte just under the timeout keeps a request alive for ever. At
    the deadline a timer shuts the block's sockets, which ends any read. The
    block's connections are not reused afterwards, so each step gets its own.
    Yields a function that says whether the deadline cut the block short.
    """
    opened: list[HTTPConnection] = []
    fired = threading.Event()

    def cut() -> None:
        fired.set()
        for connection in list(opened):
            sock = connection.sock  # after TLS: the wrapped socket (None only during the handshake)
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    token = _opened.set(opened)
    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield fired.is_set
    finally:
        timer.cancel()
        _opened.reset(token)
        for adapter in session.adapters.values():
            adapter.close()


def blocked_reason(exc: BaseException) -> str:
    """The BlockedConnection message inside a requests error, or ""."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return ""
        if isinstance(seen, BlockedConnection):
            return str(seen).split(": ", 1)[-1]
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = reason if isinstance(reason, BaseException) else nested or seen.__cause__ or seen.__context__
    return ""


def body_read(response: requests.Response) -> bytes:
    """The answer's body; AnswerRefused when it is larger than MAX_BODY (the rest is not read)."""
    chunks = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise AnswerRefused(f"the answer is larger than {MAX_BODY // 1024} KB; not read further")
        chunks.append(chunk)
    return b"".join(chunks)
