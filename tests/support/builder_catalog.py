"""A service built on the test builder (tests/support/builder_account.py) with a `test` and a `prod`
environment on two sshd hosts, and commits to its repository: what the build-once tests share."""

from __future__ import annotations

from pathlib import Path

from deployer.demo.hosts import SshdHost
from deployer.demo.setup import git
from tests.support.builder_account import Builder


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    """Write `files` (paths relative to the repository) and commit them."""
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)


def builder_catalog(service: str, repo: Path, on: Builder, hosts: list[SshdHost], root: Path, keys: str) -> str:
    """The catalog: `keys` (YAML lines at the service's level, indented four spaces) after build: builder."""
    b = on.host
    spec = f"{{address: {b.address}, port: {b.port}, user: {b.user}, path: {on.path}}}"
    envs = ""
    for name, host in (("test", hosts[1]), ("prod", hosts[0])):
        envs += (
            f"      {name}:\n        deploy_path: {root / name}\n        require_green_build: false\n"
            f"        hosts: [{{address: {host.address}, port: {host.port}, user: {host.user}}}]\n"
        )
    return f"""
services:
  {service}:
    repo: {repo}
    build: builder
    builder: {spec}
{keys.rstrip()}
    environments:
{envs}"""
