"""Rolling one release out over an environment's hosts.

Layout on each host, under the deploy path:
    releases/<deploy id>/   one directory per release, never changed once live
    current -> releases/<id> switched atomically (new symlink renamed over it)
    shared/                 kept across releases (pid files, logs, uploads)

Every host is staged (upload, extract, build) before any host is switched, so
a failed build leaves `current` untouched everywhere.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.utils import timezone
from fabric import Connection

from deployer import ssh
from deployer.checks import health_wait
from deployer.choices import DeployStatus, HostStatus
from deployer.deploylog import deploy_logger
from deployer.errors import StepFailed
from deployer.models import Deploy, DeployHost, Host

T = TypeVar("T")


@dataclass
class HostRun:
    """One host's part in a rollout: where it is, its record, its open connection."""

    host: Host
    record: DeployHost
    log: logging.LoggerAdapter[logging.Logger]
    timeout: int
    previous_release: str = ""
    conn: Connection | None = field(default=None, repr=False)

    @property
    def target(self) -> ssh.Target:
        return ssh.Target(self.host.address, self.host.port, self.host.user)

    @property
    def path(self) -> str:
        return self.host.path


def rollout(deploy: Deploy, archive: Path) -> None:
    """Install `archive` as release <deploy id> on every host; StepFailed names the host that failed."""
    runs = _host_runs(deploy)
    with ExitStack() as stack:
        for run in runs:
            run.conn = _on_host(run, lambda r: stack.enter_context(ssh.connect(r.target)), "connect")
            _on_host(run, lambda r: _stage(r, deploy, archive), "stage")
        for run in runs:
            _on_host(run, lambda r: _activate(r, deploy), "activate")
        for run in runs:
            _prune(run, deploy)


def _host_runs(deploy: Deploy) -> list[HostRun]:
    hosts = list(deploy.environment.hosts.all())
    if not hosts:
        raise StepFailed(f"{deploy.environment} has no hosts; add some under hosts: in the catalog")
    timeout = deploy.environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    runs = []
    for host in hosts:
        record = DeployHost.objects.create(deploy=deploy, host=host, address=str(host), release=str(deploy.pk))
        runs.append(HostRun(host=host, record=record, log=deploy_logger(deploy.pk, str(host)), timeout=timeout))
    return runs


def _on_host(run: HostRun, step: Callable[[HostRun], T], what: str) -> T:
    """Run one step on one host; a failure marks the host failed and names it."""
    try:
        return step(run)
    except StepFailed as exc:
        run.log.error("%s failed: %s", what, exc)
        _host_update(run, HostStatus.FAILED, f"{what} failed: {exc}")
        raise StepFailed(f"{run.host.address}: {what} failed: {exc}") from exc


def _host_update(run: HostRun, status: HostStatus, message: str = "", **values: str) -> None:
    values_all: dict[str, object] = {"status": status, "message": message, **values}
    if status in {HostStatus.LIVE, HostStatus.FAILED}:
        values_all["finished_at"] = timezone.now()
    DeployHost.objects.filter(pk=run.record.pk).update(**values_all)


def _exports(run: HostRun, deploy: Deploy) -> dict[str, str]:
    """Variables the build and restart commands can use; values quoted when exported."""
    return {
        "GANTRY_DEPLOY_ID": str(deploy.pk),
        "GANTRY_SERVICE": deploy.environment.service.name,
        "GANTRY_ENVIRONMENT": deploy.environment.name,
        "GANTRY_REF": deploy.ref,
        "GANTRY_SHA": deploy.sha,
        "GANTRY_HOST": run.host.address,
        "GANTRY_DEPLOY_PATH": run.path,
        "GANTRY_RELEASE_DIR": f"{run.path}/releases/{deploy.pk}",
    }


def _script(cwd: str, body: str, env: dict[str, str] | None = None) -> str:
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in (env or {}).items())
    return f"cd -- {shlex.quote(cwd)} || exit 1\n{exports}{body}"


def _remote(run: HostRun, script: str, *, quiet: bool = False) -> list[str]:
    """Run `script` on the host; return its output lines (also logged unless quiet)."""
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        if not quiet:
            run.log.info("%s", line)

    assert run.conn is not None
    ssh.run(run.conn, script, timeout=run.timeout, output=emit)
    return lines


def _stage(run: HostRun, deploy: Deploy, archive: Path) -> None:
    release = f"releases/{deploy.pk}"
    run.log.info("staging %s (%s) in %s/%s", deploy.sha[:12], deploy.ref, run.path, release)
    previous = _remote(
        run,
        _script(
            "/",
            f"set -e\nmkdir -p -- {shlex.quote(run.path)}\ncd -- {shlex.quote(run.path)}\n"
            f"mkdir -p releases shared\nrm -rf -- {release}\nmkdir -- {release}\n"
            "readlink -- current || true",
        ),
        quiet=True,
    )
    run.previous_release = previous[0].removeprefix("releases/") if previous else ""
    ssh.upload(run.conn, archive, f"{run.path}/{release}.tar.gz", timeout=run.timeout)  # type: ignore[arg-type]
    _remote(
        run,
        _script(
            run.path,
            f"set -e\ntar -xzf {release}.tar.gz -C {release}\nrm -f -- {release}.tar.gz\n"
            f"printf '%s\\n' {shlex.quote(deploy.sha)} > {release}/REVISION",
        ),
    )
    build = deploy.environment.build_command
    if build.strip():
        run.log.info("building: %s", build.splitlines()[0])
        _remote(run, _script(f"{run.path}/{release}", build, _exports(run, deploy)))
    _host_update(run, HostStatus.STAGED, "built", previous_release=run.previous_release)


def _activate(run: HostRun, deploy: Deploy) -> None:
    """Switch `current` to the new release, restart, and wait for the health check."""
    environment = deploy.environment
    _host_update(run, HostStatus.ACTIVATING, "switching, restarting, health check")
    temp = f"current.new.{deploy.pk}"
    _remote(
        run,
        _script(run.path, f"set -e\nrm -f -- {temp}\nln -s -- releases/{deploy.pk} {temp}\nmv -T -- {temp} current"),
    )
    run.log.info("current -> releases/%s", deploy.pk)
    if environment.restart_command.strip():
        run.log.info("restarting: %s", environment.restart_command.splitlines()[0])
        _remote(run, _script(f"{run.path}/current", environment.restart_command, _exports(run, deploy)))
    if environment.health_check_url:
        url = environment.health_check_url.format(address=run.host.address)
        health_wait(url, timeout=environment.health_check_timeout, log=run.log)
    _host_update(run, HostStatus.LIVE, "live")


def _prune(run: HostRun, deploy: Deploy) -> None:
    """Remove old releases, choosing by deploy history (never by mtime); failures only warn."""
    keep = _releases_to_keep(deploy) | {run.previous_release}
    try:
        names = _remote(run, _script(f"{run.path}/releases", "ls -1"), quiet=True)
        doomed = sorted((n for n in names if n.isdigit() and n not in keep), key=int)
        if doomed:
            run.log.info("removing old releases %s", ", ".join(doomed))
            paths = " ".join(shlex.quote(n) for n in doomed)
            _remote(run, _script(f"{run.path}/releases", f"rm -rf -- {paths}"))
    except StepFailed as exc:
        run.log.warning("could not remove old releases (the deploy is fine): %s", exc)


def _releases_to_keep(deploy: Deploy) -> set[str]:
    environment = deploy.environment
    recent = (
        Deploy.objects.filter(environment=environment, status=DeployStatus.SUCCEEDED)
        .exclude(pk=deploy.pk)
        .values_list("pk", flat=True)[: environment.releases_to_keep - 1]
    )
    return {str(deploy.pk), *(str(pk) for pk in recent)}
