"""Real OpenSSH sshd processes on loopback addresses, standing in for hosts.

`make run` (through `manage.py demo_hosts`) and the tests start them. Each has
its own host key, config, pid file and authorized_keys, so it needs no system
configuration; started by root it can log in as any user, otherwise only as
the user that started it.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from deployer.integrations.ssh_keys import ed25519_key_write

SSHD_PACKAGE_HINT = (
    "OpenSSH's sshd is not installed: install the Debian package openssh-server (apt-get install openssh-server)"
)


def sshd_path() -> str:
    found = shutil.which("sshd", path=f"/usr/sbin:/usr/local/sbin:/sbin:{os.environ.get('PATH', '')}")
    if not found:
        raise RuntimeError(SSHD_PACKAGE_HINT)
    return os.path.abspath(found)


@dataclass
class SshdHost:
    directory: Path
    address: str
    port: int
    user: str = field(default_factory=getpass.getuser)

    @property
    def config_path(self) -> Path:
        return self.directory / "sshd_config"

    @property
    def host_key_path(self) -> Path:
        return self.directory / "ssh_host_ed25519_key"

    def prepare(self, authorized_key: str) -> None:
        """Write the host key (once), authorized_keys and the sshd config."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.host_key_path.exists():
            ed25519_key_write(self.host_key_path, f"host@{self.address}")
        (self.directory / "authorized_keys").write_text(authorized_key.strip() + "\n")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        self.config_path.write_text(
            f"ListenAddress {self.address}:{self.port}\n"
            f"HostKey {self.host_key_path}\n"
            f"PidFile {self.directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}\n"
            f"AllowUsers {self.user}\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nPrintMotd no\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )

    def is_running(self) -> bool:
        """Whether this host's sshd (started from its directory) runs now."""
        try:
            pid = int((self.directory / "sshd.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def host_key(self) -> paramiko.PKey:
        return paramiko.Ed25519Key(filename=str(self.host_key_path))

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([sshd_path(), "-D", "-e", "-f", str(self.config_path)])
        self.wait_ready(process)
        return process

    def wait_ready(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sshd for {self.address}:{self.port} exited with status {process.returncode}")
            try:
                # Exchange banners rather than just connecting: sshd logs a bare connect as an error.
                with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        sock.sendall(b"SSH-2.0-gantry-probe\r\n")
                        return
            except OSError:
                time.sleep(0.05)
        process.kill()
        raise RuntimeError(f"sshd for {self.address}:{self.port} did not start listening within {timeout} s")
