"""Everything `make run` needs for a demo that really deploys: a git repository
of the demo service, loopback sshd hosts that trust Gantry's key, a catalog,
and an admin to sign in with."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from deployer.demo.hosts import SshdHost
from deployer.integrations.ssh import Target, known_hosts_trust, ssh_key_ensure

APP_SOURCE = Path(__file__).resolve().parent / "app"
DEMO_ADDRESSES = ["127.0.0.2", "127.0.0.3"]
DEMO_SSH_PORT = 2222
DEMO_APP_PORT = 8081
DEMO_ADMIN = ("admin", "gantry-demo")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Gantry Demo",
    "GIT_AUTHOR_EMAIL": "demo@gantry.invalid",
    "GIT_COMMITTER_NAME": "Gantry Demo",
    "GIT_COMMITTER_EMAIL": "demo@gantry.invalid",
}


def demo_dir() -> Path:
    return settings.VAR_DIR / "demo"


def demo_hosts() -> list[SshdHost]:
    return [
        SshdHost(demo_dir() / "hosts" / f"host{n}", address, DEMO_SSH_PORT)
        for n, address in enumerate(DEMO_ADDRESSES, start=1)
    ]


def hosts_trust(hosts: list[SshdHost]) -> None:
    """Authorize Gantry's key on each host and trust each host's own key (we made both)."""
    public_key = ssh_key_ensure()
    for host in hosts:
        host.prepare(public_key)
        known_hosts_trust(Target(host.address, host.port, host.user), host.host_key(), replace=True)


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def repo_create(path: Path) -> None:
    """A git repository of the demo service with `main` and a few branches to try."""
    path.mkdir(parents=True)
    shutil.copytree(APP_SOURCE, path, dirs_exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "Demo service: a tiny HTTP app")
    repo_branch(path, "feature/shout", {"greeting.txt": "HELLO FROM THE GANTRY DEMO!\n"}, "Shout the greeting")
    repo_branch(path, "broken-health", {"UNHEALTHY": "this release fails its health check\n"}, "Break /healthz")


def repo_branch(path: Path, branch: str, files: dict[str, str], message: str, *, base: str = "main") -> str:
    """Commit `files` on `branch` (made from `base` if new); return the new head sha."""
    git(path, "checkout", "--quiet", "-B", branch, base)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", message)
    sha = git(path, "rev-parse", "HEAD").strip()
    git(path, "checkout", "--quiet", "main")
    return sha


def catalog_text(repo: Path, hosts: list[SshdHost]) -> str:
    host_lines = "".join(
        f"          - address: {h.address}\n            port: {h.port}\n            user: {h.user}\n"
        f"            deploy_path: {h.directory / 'srv' / 'demo'}\n"
        for h in hosts
    )
    return (
        "# Gantry's demo catalog, written by `manage.py demo_setup`.\n"
        'teams:\n  demo-team: {slack_channel: "#deploys"}\n'
        "services:\n  demo:\n    team: demo-team\n"
        f"    repo: {repo}\n    default_branch: main\n"
        "    environments:\n      test:\n"
        "        deploy_path: /srv/demo\n"
        "        build_command: sh build.sh\n"
        f"        restart_command: sh bin/restart {DEMO_APP_PORT}\n"
        f"        health_check_url: http://{{address}}:{DEMO_APP_PORT}/healthz\n"
        "        health_check_timeout: 15\n"
        "        releases_to_keep: 3\n"
        "        # The loopback hosts share one disk, so each gets its own deploy path.\n"
        "        hosts:\n" + host_lines
    )


def admin_ensure() -> bool:
    """Create the demo admin unless it exists; True if it was created."""
    user_model = get_user_model()
    name, password = DEMO_ADMIN
    if user_model.objects.filter(username=name).exists():
        return False
    user_model.objects.create_superuser(name, "admin@gantry.invalid", password)
    return True
