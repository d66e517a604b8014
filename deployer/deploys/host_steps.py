"""What a rollout does on one host, and the shell each step sends there.

Layout on each host, under the deploy path:
    releases/<deploy id>/   one directory per release, never changed once live
    current -> releases/<id> switched atomically (new symlink renamed over it)
    shared/                 kept across releases (pid files, logs, uploads)

Each step is one SSH session (a round trip costs tens of milliseconds; a
rollout of many hosts spends most of its time in them: bench/rollout.py).
Every value put into a script is quoted; a release id is digits or refused.
Lines a script prints for Gantry (GANTRY-PREVIOUS, GANTRY-SWITCHED) are read
once, where Gantry printed them; the same text from a build is only logged.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.utils import timezone
from fabric import Connection

from deployer.choices import DeployStatus, HostStatus
from deployer.deploys.balancer import Balancer
from deployer.deploys.health import health_wait
from deployer.errors import StepFailed
from deployer.integrations import ssh
from deployer.models import Deploy, DeployHost, Environment, Host


@dataclass
class HostRun:
    """One host's part in a rollout: where it is, its record, its open connection."""

    host: Host
    record: DeployHost
    log: logging.LoggerAdapter[logging.Logger]
    timeout: int
    balancer: Balancer | None = None
    previous_release: str = ""
    switched: bool = False
    failed: bool = False  # failed its last step (guided failure retries or skips these)
    skipped: bool = False
    conn: Connection | None = field(default=None, repr=False)

    @property
    def target(self) -> ssh.Target:
        return ssh.Target(self.host.address, self.host.port, self.host.user)

    @property
    def path(self) -> str:
        return self.host.path

    @property
    def name(self) -> str:
        return self.host.address


def host_update(run: HostRun, status: HostStatus, message: str = "", **values: str) -> None:
    """Record where `run`'s host is (the deploy page reads it)."""
    values_all: dict[str, object] = {"status": status, "message": message, **values}
    if status in {HostStatus.LIVE, HostStatus.FAILED, HostStatus.ROLLED_BACK}:
        values_all["finished_at"] = timezone.now()
    DeployHost.objects.filter(pk=run.record.pk).update(**values_all)


def _exports(run: HostRun, deploy: Deploy, release: str) -> dict[str, str]:
    """Variables the build and restart commands can use; values quoted when exported."""
    return {
        "GANTRY_DEPLOY_ID": str(deploy.pk),
        "GANTRY_SERVICE": deploy.environment.service.name,
        "GANTRY_ENVIRONMENT": deploy.environment.name,
        "GANTRY_REF": deploy.ref,
        "GANTRY_SHA": deploy.sha,
        "GANTRY_HOST": run.host.address,
        "GANTRY_DEPLOY_PATH": run.path,
        "GANTRY_RELEASE_DIR": f"{run.path}/releases/{release}",
    }


def _script(cwd: str, body: str, env: dict[str, str] | None = None) -> str:
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in (env or {}).items())
    return f"cd -- {shlex.quote(cwd)} || exit 1\n{exports}{body}"


# Lines a step's script prints for Gantry, not for the log.
PREVIOUS_MARK = "GANTRY-PREVIOUS "
SWITCHED_MARK = "GANTRY-SWITCHED"


def _remote(
    run: HostRun,
    script: str,
    *,
    quiet: bool = False,
    stdin: Path | None = None,
    on_mark: Callable[[str], bool] | None = None,
) -> list[str]:
    """Run `script` on the host; return its output lines (also logged unless quiet).

    Each line goes to `on_mark` first; one it takes (True) is Gantry's, not the log's.
    """
    lines: list[str] = []

    def emit(line: str) -> None:
        if on_mark is not None and on_mark(line):
            return
        lines.append(line)
        if not quiet:
            run.log.info("%s", line)

    assert run.conn is not None
    ssh.run(run.conn, script, timeout=run.timeout, output=emit, stdin=stdin)
    return lines


def connect_and_stage(run: HostRun, deploy: Deploy, archive: Path | None) -> None:
    run.conn = ssh.open_connection(run.target)
    if archive is None:
        check_kept(run, deploy)
    else:
        stage(run, deploy, archive)


def _previous_release_of(run: HostRun) -> Callable[[str], bool]:
    """Reads the line where a staging script says what `current` pointed at.

    Only the first mark counts (it is printed before the archive is unpacked or
    anything of the branch runs: a build printing one later is only logged), and
    only a release id (digits) is taken: the value ends up in later scripts.
    """
    seen = False

    def mark(line: str) -> bool:
        nonlocal seen
        if seen or not line.startswith(PREVIOUS_MARK):
            return False
        seen = True
        value = line.removeprefix(PREVIOUS_MARK).strip().removeprefix("releases/")
        if value and not value.isdigit():
            run.log.warning("current points at %r, not a release of Gantry's; treating it as no release", value[:100])
            value = ""
        run.previous_release = value
        return True

    return mark


def check_kept(run: HostRun, deploy: Deploy) -> None:
    """A rollback's staging: the release must still be complete on the host (pruned ones are gone)."""
    release = deploy.release_name
    run.log.info("checking that release %s (%s) is still in %s/releases", release, deploy.sha[:12], run.path)
    script = _script(
        run.path,
        f"printf '{PREVIOUS_MARK}%s\\n' \"$(readlink -- current || true)\"\n"
        f'if [ "$(cat releases/{release}/REVISION 2>/dev/null)" != {shlex.quote(deploy.sha)} ]; then\n'
        f"  echo 'release {release} of {deploy.sha[:12]} is no longer complete on this host (pruned?)'; exit 1\nfi\n",
    )

    _remote(run, script, on_mark=_previous_release_of(run))
    host_update(run, HostStatus.STAGED, f"release {release} is there", previous_release=run.previous_release)


def stage(run: HostRun, deploy: Deploy, archive: Path) -> None:
    """One session per host: prepare the release directory, stream the archive into it, build.

    Every round trip to a host costs tens of milliseconds; a rollout of many
    hosts spends most of its time in them (bench/rollout.py).
    """
    release = f"releases/{deploy.pk}"
    run.log.info("staging %s (%s) in %s/%s", deploy.sha[:12], deploy.ref, run.path, release)
    script = _script(
        "/",
        f"set -e\nmkdir -p -- {shlex.quote(run.path)}\ncd -- {shlex.quote(run.path)}\n"
        f"mkdir -p releases shared\nrm -rf -- {release}\nmkdir -- {release}\n"
        f"printf '{PREVIOUS_MARK}%s\\n' \"$(readlink -- current || true)\"\n"
        f"tar -xzf - -C {release}\nprintf '%s\\n' {shlex.quote(deploy.sha)} > {release}/REVISION\n",
    )
    build = deploy.environment.build_command
    if build.strip():
        run.log.info("building: %s", build.splitlines()[0])
        # The build runs as it would on its own: in the release, with its variables, without `set -e`.
        script += "set +e\n" + _script(f"{run.path}/{release}", build, _exports(run, deploy, str(deploy.pk)))

    _remote(run, script, stdin=archive, on_mark=_previous_release_of(run))
    host_update(run, HostStatus.STAGED, "built", previous_release=run.previous_release)


def _switch_and_restart(run: HostRun, deploy: Deploy, release: str) -> None:
    """One session: point `current` at releases/<release> (a new symlink renamed over the old one,
    atomic), then run the restart command there; then wait for the health check."""
    if not release.isdigit():
        raise StepFailed(f"{release!r} is not a release id; not switching to it")
    temp = shlex.quote(f"current.new.{release}")
    script = _script(
        run.path,
        f"set -e\nrm -f -- {temp}\nln -s -- {shlex.quote(f'releases/{release}')} {temp}\nmv -T -- {temp} current\n"
        f"echo {SWITCHED_MARK}\nset +e\n",
    )
    environment: Environment = deploy.environment
    if environment.restart_command.strip():
        script += _script(f"{run.path}/current", environment.restart_command, _exports(run, deploy, release))

    seen = False

    def switched(line: str) -> bool:
        nonlocal seen
        if seen or line != SWITCHED_MARK:
            return False  # a restart command printing the mark is only logged
        seen = True
        run.switched = release != run.previous_release
        run.log.info("current -> releases/%s", release)
        if environment.restart_command.strip():
            run.log.info("restarting: %s", environment.restart_command.splitlines()[0])
        return True

    _remote(run, script, on_mark=switched)
    if environment.health_check_url:
        url = environment.health_check_url.format(address=run.host.address)
        health_wait(url, timeout=environment.health_check_timeout, log=run.log)


def activate(run: HostRun, deploy: Deploy) -> None:
    """Switch `current` to the new release, restart, and wait for the health check."""
    host_update(run, HostStatus.ACTIVATING, "switching, restarting, health check")
    with _out_of_rotation(run):
        _switch_and_restart(run, deploy, deploy.release_name)
    host_update(run, HostStatus.LIVE, "live")


@contextmanager
def _out_of_rotation(run: HostRun) -> Iterator[None]:
    """Drained in the load balancer for the block, when the environment has one."""
    if run.balancer is None:
        yield
        return
    with run.balancer.drained(run.host.balancer_name, run.log):
        yield


def roll_back(run: HostRun, deploy: Deploy) -> None:
    if not run.previous_release:
        raise StepFailed("there is no previous release to go back to (this was the first deploy)")
    with _out_of_rotation(run):
        _switch_and_restart(run, deploy, run.previous_release)
    run.switched = False
    host_update(run, HostStatus.ROLLED_BACK, f"rolled back to release {run.previous_release}")


def prune(run: HostRun, deploy: Deploy) -> None:
    """Remove old releases, choosing by deploy history (never by mtime); failures only warn."""
    keep = " ".join(sorted(name for name in _releases_to_keep(deploy) | {run.previous_release} if name.isdigit()))
    script = _script(
        f"{run.path}/releases",
        f'for name in *; do\n  case "$name" in *[!0-9]*|"") continue;; esac\n'
        f'  case " {keep} " in *" $name "*) continue;; esac\n'
        f'  echo "removing old release $name"\n  rm -rf -- "$name"\ndone\n',
    )
    try:
        _remote(run, script)
    except StepFailed as exc:
        run.log.warning("could not remove old releases (the deploy is fine): %s", exc)


def _releases_to_keep(deploy: Deploy) -> set[str]:
    environment = deploy.environment
    recent = (
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.live())
        .exclude(pk=deploy.pk)
        .values_list("pk", "rollback_of_id")[: environment.releases_to_keep - 1]
    )
    return {deploy.release_name, *(str(rollback_of or pk) for pk, rollback_of in recent)}
