"""Everything `make run` needs for a demo that really deploys: a git repository
of the demo service, loopback sshd hosts that trust Gantry's key, a catalog,
and an admin to sign in with."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model

from deployer.demo.hosts import SshdHost
from deployer.demo.watching import FIRST_PORTS, Watching, analysis_yaml, slo_yaml
from deployer.environments.host_keys import host_key_trust
from deployer.integrations.ssh import Target
from deployer.integrations.ssh_keys import HostKey, ssh_key_ensure
from deployer.lib.private_file import private_file_write

APP_SOURCE = Path(__file__).resolve().parent / "app"
DATABASE_SOURCE = Path(__file__).resolve().parent / "database"
# Not a secret: the demo shows how a secret reaches shared/.env and stays out of logs (Procfile sets it).
DEMO_SECRET_NAME = "DEMO_API_KEY"
PORT_TRIES = 50
DEMO_ADMIN = "admin"
# The branches a newcomer tries: what each one changes on top of main.
DEMO_BRANCHES: dict[str, tuple[dict[str, str], str]] = {
    "feature/shout": ({"greeting.txt": "HELLO FROM THE GANTRY DEMO!\n"}, "Shout the greeting"),
    "broken-health": ({"UNHEALTHY": "this release fails its health check\n"}, "Break /healthz"),
    # Healthy by every health check, but a fifth of its answers are 500s: the canary analysis rolls it back.
    "bad-canary": ({"ERROR_RATE": "0.2\n"}, "Fail one request in five"),
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Gantry Demo",
    "GIT_AUTHOR_EMAIL": "demo@gantry.invalid",
    "GIT_COMMITTER_NAME": "Gantry Demo",
    "GIT_COMMITTER_EMAIL": "demo@gantry.invalid",
}


def demo_dir() -> Path:
    return settings.VAR_DIR / "demo"


def demo_hosts() -> list[SshdHost]:
    ssh_port = demo_ports()["ssh"]
    return [
        SshdHost(demo_dir() / "hosts" / f"host{n}", address, ssh_port)
        for n, address in enumerate(settings.DEMO_ADDRESSES, start=1)
    ]


def demo_ports() -> dict[str, int]:
    """The ports this checkout's demo uses (chosen by demo_ports_choose; the settings before that)."""
    chosen = demo_dir() / "ports.json"
    if chosen.exists():
        return {key: int(value) for key, value in json.loads(chosen.read_text()).items()}
    return {"ssh": settings.DEMO_SSH_PORT, "app": settings.DEMO_APP_PORT}


def demo_ports_choose(own_hosts_running: bool) -> dict[str, int]:
    """The first ports from the settings on that every demo address is free (another Gantry's demo, or
    anything else, may hold the usual ones); kept for demo_hosts. Our own running hosts keep theirs."""
    if own_hosts_running:
        return demo_ports()
    ports = {
        "ssh": _free_port(settings.DEMO_SSH_PORT, settings.DEMO_ADDRESSES),
        "app": _free_port(settings.DEMO_APP_PORT, settings.DEMO_ADDRESSES),
    }
    demo_dir().mkdir(parents=True, exist_ok=True)
    (demo_dir() / "ports.json").write_text(json.dumps(ports))
    return ports


def _free_port(first: int, addresses: list[str]) -> int:
    for port in range(first, first + PORT_TRIES):
        if all(_bindable(address, port) for address in addresses):
            return port
    raise RuntimeError(
        f"no free port from {first} to {first + PORT_TRIES - 1} on {', '.join(addresses)}; "
        "set GANTRY_DEMO_ADDRESSES, GANTRY_DEMO_SSH_PORT or GANTRY_DEMO_APP_PORT"
    )


def _bindable(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def hosts_authorize(hosts: list[SshdHost]) -> None:
    """Authorize Gantry's key on each host (written into its sshd's files)."""
    public_key = ssh_key_ensure()
    for host in hosts:
        host.prepare(public_key)


def hosts_keys_trust(hosts: list[SshdHost]) -> None:
    """Trust each host's own key, in the trust store (we made the keys, so no person needs to check them)."""
    for host in hosts:
        name = Target(host.address, host.port, host.user).known_hosts_name
        host_key_trust(name=name, key=HostKey.of(host.host_key()), user=None, replace=True)


def hosts_trust(hosts: list[SshdHost]) -> None:
    """Authorize Gantry's key on each host and trust each host's own key."""
    hosts_authorize(hosts)
    hosts_keys_trust(hosts)


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
    for branch, (files, message) in DEMO_BRANCHES.items():
        repo_branch(path, branch, files, message)


def repo_add_database(path: Path) -> None:
    """The demo's schema: a migration step and its first migration on main, a second on a branch."""
    files = {"migrate.py": (DATABASE_SOURCE / "migrate.py").read_text()}
    files["migrations/0001_visits.sql"] = (DATABASE_SOURCE / "0001_visits.sql").read_text()
    repo_branch(path, "main", files, "A database: migrations applied by release_command")
    second = {"migrations/0002_visit_paths.sql": (DATABASE_SOURCE / "0002_visit_paths.sql").read_text()}
    repo_branch(path, "add-migration", second, "Record the path of each visit (a nullable column: expand)")
    demo_branches_rebase(path)


def demo_branches_rebase(path: Path) -> list[str]:
    """Make the demo's own branches again on top of main where they lack main's migration step (they were
    made before it: their release_command would fail for a reason the demo does not mean to show)."""
    remade = []
    for branch, (files, message) in DEMO_BRANCHES.items():
        has_step = subprocess.run(
            ["git", "cat-file", "-e", f"{branch}:migrate.py"], cwd=path, capture_output=True, check=False
        )
        if has_step.returncode != 0:
            repo_branch(path, branch, files, message)
            remade.append(branch)
    return remade


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


def watching_ports() -> dict[str, int]:
    """Free ports for the demo's HAProxy, its exporter and Prometheus, on 127.0.0.1."""
    ports: dict[str, int] = {}
    for name, first in FIRST_PORTS.items():
        port = _free_port(first, ["127.0.0.1"])
        while port in ports.values():
            port = _free_port(port + 1, ["127.0.0.1"])
        ports[name] = port
    return ports


def catalog_text(repo: Path, hosts: list[SshdHost], app_port: int, watching: Watching | None = None) -> str:
    roles = ["[web, worker]", *(["[web]"] * (len(hosts) - 1))]
    host_lines = "".join(
        f"          - address: {h.address}\n            port: {h.port}\n            user: {h.user}\n"
        f"            deploy_path: {h.directory / 'srv' / 'demo'}\n            roles: {role}\n"
        for h, role in zip(hosts, roles, strict=True)
    )
    return (
        f"# yaml-language-server: $schema={settings.BASE_DIR / 'docs' / 'catalog.schema.json'}\n"
        "# Gantry's demo catalog, written by `manage.py demo_setup`.\n"
        'teams:\n  demo-team: {slack_channel: "#deploys"}\n'
        "services:\n  demo:\n    team: demo-team\n"
        + (slo_yaml() if watching else "")
        + f"    repo: {repo}\n    default_branch: main\n"
        "    # Written to shared/.env on every host (0600) and read by every command; the secret's value\n"
        f"    # comes from GANTRY_SECRET_{DEMO_SECRET_NAME} on the workers (the Procfile sets a demo one).\n"
        f"    config:\n      DATABASE_PATH: {demo_dir() / 'demo.sqlite3'}\n      GREETING_STYLE: friendly\n"
        f'      {DEMO_SECRET_NAME}: "{{{{secret.{DEMO_SECRET_NAME}}}}}"\n'
        f"    config_secrets: [{DEMO_SECRET_NAME}]\n"
        "    # Once per deploy, on the first web host, after every host is staged and before any switch.\n"
        "    release_command: python3 migrate.py\n"
        "    roles:\n"
        f"      web:\n        restart_command: sh bin/restart {app_port}\n"
        f"        health_check_url: http://{{address}}:{app_port}/healthz\n"
        "      worker:\n        restart_command: sh bin/worker\n"
        "        health_check_command: sh bin/worker-alive\n        order: 1\n"
        "    environments:\n      test:\n"
        "        deploy_path: /srv/demo\n"
        "        build_command: sh build.sh\n"
        "        health_check_timeout: 15\n"
        "        releases_to_keep: 3\n"
        + (
            "        # HAProxy in front of the hosts: each is drained while it restarts.\n"
            f"        load_balancer: {{runtime_api: {watching.socket}, backend: app}}\n" + analysis_yaml()
            if watching
            else ""
        )
        + "        # The loopback hosts share one disk, so each gets its own deploy path.\n"
        "        hosts:\n" + host_lines
    )


def admin_password_file() -> Path:
    return settings.VAR_DIR / "demo-admin-password"


def admin_ensure() -> bool:
    """Create the demo admin unless it exists, with a password made for this install and kept in
    var/demo-admin-password (0600; a fixed password would open every demo left running); True if created."""
    user_model = get_user_model()
    if user_model.objects.filter(username=DEMO_ADMIN).exists():
        return False
    path = admin_password_file()
    private_file_write(path, secrets.token_urlsafe(12).encode())  # kept if an earlier run made it
    user_model.objects.create_superuser(DEMO_ADMIN, "admin@gantry.invalid", path.read_text().strip())
    return True
