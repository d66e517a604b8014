"""A builder that logs in as an account that is not root: `gantry-build`, made by `make test`
(`make test-accounts`). Its sshd and its build path live under /var/tmp, where that account can read and
write them; the account's home, crontab and processes are put back as new before and after a test."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployer.demo import setup
from deployer.demo.hosts import SshdHost

BUILD_USER = "gantry-build"


@dataclass(frozen=True)
class Builder:
    host: SshdHost
    path: Path  # the catalog's builder path, owned by the account
    home: Path


def account_reset(user: str = BUILD_USER) -> None:
    """Every process of the account ended, no crontab, no file of its in the shared temporary directories,
    its home as the skeleton made it."""
    subprocess.run(["pkill", "-KILL", "-u", user], check=False)
    for shared in ("/tmp", "/var/tmp", "/dev/shm"):
        subprocess.run(["find", shared, "-xdev", "-user", user, "-delete"], check=False, capture_output=True)
    subprocess.run(["crontab", "-r", "-u", user], check=False, capture_output=True)
    home = Path(pwd.getpwnam(user).pw_dir)
    for entry in home.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    subprocess.run(["cp", "-a", "/etc/skel/.", str(home)], check=True)
    subprocess.run(["chown", "-R", f"{user}:{user}", str(home)], check=True)


def crontab_of(user: str = BUILD_USER) -> str:
    found = subprocess.run(["crontab", "-l", "-u", user], capture_output=True, text=True, check=False)
    return found.stdout


def processes_of(user: str = BUILD_USER) -> list[str]:
    """What the account runs now, but its SSH sessions and zombies (a session ending reaps them)."""
    found = subprocess.run(["ps", "-u", user, "-o", "stat=,args="], capture_output=True, text=True, check=False)
    running = [line.split(None, 1) for line in found.stdout.splitlines() if line.strip()]
    return [args for stat, args in running if not stat.startswith("Z") and not args.startswith("sshd")]


@contextmanager
def builder_started(address: str, port: int) -> Iterator[Builder]:
    """An sshd on `address` that lets Gantry's key in as gantry-build, and a build path of its own."""
    try:
        account = pwd.getpwnam(BUILD_USER)
    except KeyError:
        pytest.fail(f"the builder tests log in as {BUILD_USER}: run  make test-accounts  (as root) first")
    account_reset()
    root = Path(tempfile.mkdtemp(prefix="gantry-test-builder-", dir="/var/tmp"))
    root.chmod(0o755)  # sshd reads authorized_keys as the account
    host = SshdHost(root / "sshd", address, port, user=BUILD_USER)
    setup.hosts_authorize([host])
    host.directory.chmod(0o755)
    (host.directory / "authorized_keys").chmod(0o644)
    path = root / "builds"
    path.mkdir()
    shutil.chown(path, BUILD_USER, BUILD_USER)
    process = host.start()
    try:
        yield Builder(host, path, Path(account.pw_dir))
    finally:
        process.terminate()
        process.wait(timeout=10)
        account_reset()
        shutil.rmtree(root, ignore_errors=True)
