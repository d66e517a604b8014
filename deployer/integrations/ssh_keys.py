"""SSH keys: hosts' public keys (what Gantry trusts, as known_hosts writes them) and Gantry's own key pair.

Gantry's private key comes from the environment (GANTRY_SSH_PRIVATE_KEY: the
key's text) or a file (GANTRY_SSH_KEY); every machine that deploys needs the
same one, and it never goes into the database. Plain values in and out: the
trust store itself is the domain's (environments/host_keys.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings

from deployer.errors import StepFailed
from deployer.lib.private_file import private_file_write


@dataclass(frozen=True)
class HostKey:
    """A host's public key as known_hosts writes it: its type and its base64 text."""

    key_type: str
    base64: str

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    @classmethod
    def of(cls, key: paramiko.PKey) -> HostKey:
        return cls(key.get_name(), key.get_base64())

    def pkey(self) -> paramiko.PKey:
        return paramiko.PKey.from_type_string(self.key_type, base64.b64decode(self.base64))


def fingerprint(key: paramiko.PKey) -> str:
    return HostKey.of(key).fingerprint


def host_key_scan(address: str, port: int) -> HostKey:
    """Ask a host for its key (like ssh-keyscan), without authenticating; StepFailed when it cannot."""
    try:
        with socket.create_connection((address, port), timeout=settings.SSH_CONNECT_TIMEOUT) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=settings.SSH_CONNECT_TIMEOUT)
                return HostKey.of(transport.get_remote_server_key())
            finally:
                transport.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise StepFailed(f"cannot reach {address}:{port}: {exc or exc.__class__.__name__}") from exc


def known_hosts_parse(text: str) -> list[tuple[str, HostKey]]:
    """(host name, key) of each entry of a known_hosts file's text; hashed names cannot be read back
    (`|1|...`): those entries, and lines paramiko cannot read, are left out."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        except (paramiko.hostkeys.InvalidHostKey, paramiko.SSHException, ValueError):
            continue
        if entry is None or entry.key is None:
            continue
        for name in entry.hostnames:
            if not name.startswith("|"):
                found.append((name, HostKey.of(entry.key)))
    return found


def known_hosts_line(name: str, key: HostKey) -> str:
    return f"{name} {key.key_type} {key.base64}"


# --- Gantry's own key --------------------------------------------------------


class IdentityMissing(StepFailed):
    """This machine has no private key for Gantry (or an unreadable one)."""


def identity() -> paramiko.PKey:
    """Gantry's private key: GANTRY_SSH_PRIVATE_KEY (the key's text) when set, else the file GANTRY_SSH_KEY.
    Every machine that runs deploys must have the same one; it never goes into the database."""
    if settings.GANTRY_SSH_PRIVATE_KEY:
        return _key_from_text(settings.GANTRY_SSH_PRIVATE_KEY, "GANTRY_SSH_PRIVATE_KEY")
    path = settings.GANTRY_SSH_KEY
    try:
        text = path.read_text()
    except OSError as exc:
        raise IdentityMissing(
            f"Gantry's SSH private key is not on this machine ({path}: {exc.strerror}): set "
            "GANTRY_SSH_PRIVATE_KEY to the key's text, or GANTRY_SSH_KEY to a file holding it, the same on "
            "every machine that deploys (manage.py ssh_key prints the public key of the one it finds)"
        ) from exc
    return _key_from_text(text, str(path))


@functools.lru_cache(maxsize=4)
def _key_from_text(text: str, where: str) -> paramiko.PKey:
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text.strip() + "\n"))
        except (paramiko.SSHException, ValueError, TypeError, binascii.Error):
            continue
    raise IdentityMissing(
        f"{where} does not hold an unencrypted OpenSSH or PEM private key (ed25519, ECDSA or RSA) that Gantry can read"
    )


def public_key_line(key: paramiko.PKey, comment: str = "gantry") -> str:
    return f"{key.get_name()} {key.get_base64()} {comment}"


def ed25519_key_write(private: Path, comment: str) -> None:
    """Write a new OpenSSH ed25519 key pair to `private` and `private`.pub."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    if not private_file_write(private, pem):
        return  # another process wrote it first: that pair is the one
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private.with_name(private.name + ".pub").write_text(f"{line.decode()} {comment}\n")


def ssh_key_ensure() -> str:
    """Gantry's public key line. On a machine with no key configured at all (one box, first use) a new pair
    is made in GANTRY_SSH_KEY; a key given in GANTRY_SSH_PRIVATE_KEY is never replaced."""
    if not settings.GANTRY_SSH_PRIVATE_KEY and not settings.GANTRY_SSH_KEY.exists():
        ed25519_key_write(settings.GANTRY_SSH_KEY, f"gantry@{socket.gethostname()}")
    return public_key_line(identity())
