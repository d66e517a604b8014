"""Rolling one release out over an environment's hosts.

Layout on each host, under the deploy path:
    releases/<deploy id>/   one directory per release, never changed once live
    current -> releases/<id> switched atomically (new symlink renamed over it)
    shared/                 kept across releases (pid files, logs, uploads)

1. Every host is staged (upload, extract, build), in parallel, before any host
   is switched: a failed build leaves `current` untouched everywhere.
2. Hosts are switched in batches (the environment's batch size), in parallel
   within a batch: switch, restart, health check. The next batch starts only
   when every host of this one is healthy.
3. When a host fails, the rollout stops; with on_failure=rollback every host
   this deploy switched goes back to its previous release.
4. A cancel request is honoured between batches: hosts in flight finish, and
   every host is left on a complete release.
"""

from __future__ import annotations

import logging
import math
import shlex
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone
from fabric import Connection

from deployer.choices import Decision, DeployStatus, HostStatus, OnFailure
from deployer.deploys.balancer import Balancer
from deployer.deploys.health import health_wait
from deployer.deploys.log import deploy_logger
from deployer.errors import Cancelled, RolledBack, StepFailed
from deployer.integrations import ssh
from deployer.lib.logcontext import in_this_context
from deployer.models import Deploy, DeployHost, Environment, Host
from deployer.notify import outbox as slack_outbox


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


def rollout(deploy: Deploy, archive: Path | None) -> str:
    """Install `archive` as release <deploy id> on every host; for a rollback
    (archive None), switch every host back to the earlier release it still has.

    Raises StepFailed (naming the hosts) when a host fails, RolledBack when the
    switched hosts were rolled back, Cancelled when someone cancelled it.
    Returns a note for the deploy's reason (the hosts a person chose to skip).
    """
    runs = _host_runs(deploy)
    balancer = runs[0].balancer
    try:
        if balancer is not None:
            balancer.reconcile([run.host.balancer_name for run in runs], deploy_logger(deploy.pk))
        _in_parallel(runs, lambda r: _connect_and_stage(r, deploy, archive), "stage")
        batches = plan_batches(len(runs), deploy.environment.batch_size)
        done = 0
        for number, size in enumerate(batches, start=1):
            _stop_if_cancelled(deploy, runs, done)
            batch = runs[done : done + size]
            deploy_logger(deploy.pk).info(
                "batch %d of %d: %s", number, len(batches), ", ".join(run.name for run in batch)
            )
            _activate_batch(deploy, runs, batch)
            done += size
            slack_outbox.story_changed(deploy)  # the message shows the hosts done so far
        for run in runs:
            _prune(run, deploy)
        skipped = [run.name for run in runs if run.skipped]
        return f"succeeded without {', '.join(skipped)} (skipped after failing)" if skipped else ""
    finally:
        for run in runs:
            if run.conn is not None:
                run.conn.close()


def roll_back_all(deploy: Deploy) -> list[str]:
    """After a finished rollout (its post-deploy tests failed): every host back to its previous release.

    Returns the hosts rolled back; StepFailed naming those that could not be.
    """
    timeout = deploy.environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    balancer = Balancer.of(deploy.environment)
    runs = [
        HostRun(
            host=record.host,
            record=record,
            log=deploy_logger(deploy.pk, record.address),
            timeout=timeout,
            balancer=balancer,
            previous_release=record.previous_release,
            switched=True,
        )
        for record in deploy.hosts.select_related("host").filter(host__isnull=False)
    ]

    def back(run: HostRun) -> None:
        run.conn = ssh.open_connection(run.target)
        _roll_back(run, deploy)

    try:
        _in_parallel(runs, back, "rollback")
    finally:
        for run in runs:
            if run.conn is not None:
                run.conn.close()
    return [run.name for run in runs]


def plan_batches(hosts: int, batch_size: str) -> list[int]:
    """Sizes of the batches for `hosts` hosts: "2" → 2 at a time, "25%" → a quarter (at least one)."""
    text = batch_size.strip()
    per_batch = math.ceil(hosts * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    per_batch = max(1, min(per_batch, hosts))
    return [min(per_batch, hosts - start) for start in range(0, hosts, per_batch)]


def _host_runs(deploy: Deploy) -> list[HostRun]:
    hosts = list(deploy.environment.hosts.all())
    if not hosts:
        raise StepFailed(f"{deploy.environment} has no hosts; add some under hosts: in the catalog")
    timeout = deploy.environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    balancer = Balancer.of(deploy.environment)
    runs = []
    for host in hosts:
        record = DeployHost.objects.create(deploy=deploy, host=host, address=str(host), release=deploy.release_name)
        log = deploy_logger(deploy.pk, str(host))
        runs.append(HostRun(host=host, record=record, log=log, timeout=timeout, balancer=balancer))
    return runs


def _in_parallel(runs: list[HostRun], step: Callable[[HostRun], None], what: str) -> None:
    """Run `step` on every host (at most ROLLOUT_PARALLELISM at once); StepFailed naming every failed host."""

    def one(run: HostRun) -> str:
        try:
            step(run)
            return ""
        except StepFailed as exc:
            run.failed = True
            run.log.error("%s failed: %s", what, exc)
            _host_update(run, HostStatus.FAILED, f"{what} failed: {exc}")
            return f"{run.name}: {what} failed: {exc}"

    def in_thread(run: HostRun) -> str:
        try:
            return one(run)
        finally:
            connection.close()  # each thread opened its own database connection

    if len(runs) == 1:
        failures = [one(runs[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(settings.ROLLOUT_PARALLELISM, len(runs))) as pool:
            failures = list(pool.map(in_this_context(in_thread), runs))
    failed = [f for f in failures if f]
    if failed:
        raise StepFailed("; ".join(failed))


def _activate_batch(deploy: Deploy, runs: list[HostRun], batch: list[HostRun]) -> None:
    """Activate a batch; on failure roll back, stop, or (guided) wait for a person's decision."""
    pending = batch
    while True:
        try:
            _in_parallel(pending, lambda r: _activate(r, deploy), "activate")
            return
        except StepFailed as exc:
            on_failure = deploy.environment.on_failure
            if on_failure != OnFailure.PAUSE:
                _after_failure(deploy, runs, exc, roll_back=on_failure == OnFailure.ROLLBACK)
            failed = [run for run in pending if run.failed]
            choice, who = _wait_for_decision(deploy, runs, exc, failed)
            if choice == Decision.ABORT:
                _after_failure(deploy, runs, exc, roll_back=True)
            for run in failed:
                run.failed = False
            if choice == Decision.SKIP:
                for run in failed:
                    run.skipped = True
                    _host_update(run, HostStatus.SKIPPED, f"skipped by {who} after: {run.record.message}")
                return
            pending = failed  # retry


def _wait_for_decision(deploy: Deploy, runs: list[HostRun], exc: StepFailed, failed: list[HostRun]) -> tuple[str, str]:
    """Pause (heartbeat still running) until a person chooses retry, skip or abort; abort when none comes."""
    log = deploy_logger(deploy.pk)
    names = ", ".join(run.name for run in failed)
    Deploy.objects.filter(pk=deploy.pk).update(
        paused_at=timezone.now(), pause_reason=str(exc), decision="", decided_by=None
    )
    log.warning(
        "paused: %s. Waiting up to %d min for a person to retry %s, skip it, or abort and roll back",
        exc,
        settings.PAUSE_TIMEOUT_SECONDS // 60,
        names,
    )
    deadline = time.monotonic() + settings.PAUSE_TIMEOUT_SECONDS
    while True:
        _stop_if_cancelled(deploy, runs, sum(run.switched for run in runs))
        choice, who = Deploy.objects.filter(pk=deploy.pk).values_list("decision", "decided_by__username").get()
        if choice:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.info("%s chose: %s (%s)", who, Decision(choice).label, names)
            return choice, who or "someone"
        if time.monotonic() >= deadline:
            Deploy.objects.filter(pk=deploy.pk).update(paused_at=None)
            log.warning("no decision within %d min: aborting", settings.PAUSE_TIMEOUT_SECONDS // 60)
            return Decision.ABORT, "Gantry (no decision in time)"
        time.sleep(PAUSE_POLL_SECONDS)


def _after_failure(deploy: Deploy, runs: list[HostRun], exc: StepFailed, *, roll_back: bool) -> None:
    """End the rollout after a failure: roll the switched hosts back first when asked to."""
    switched = [run for run in runs if run.switched]
    if not roll_back or not switched:
        raise exc
    deploy_logger(deploy.pk).warning(
        "rolling back %s to their previous release", ", ".join(run.name for run in switched)
    )
    try:
        _in_parallel(switched, lambda r: _roll_back(r, deploy), "rollback")
    except StepFailed as rollback_failure:
        raise StepFailed(f"{exc}; and the rollback failed too: {rollback_failure}") from exc
    raise RolledBack(f"{exc}; rolled back {', '.join(run.name for run in switched)}") from exc


def _stop_if_cancelled(deploy: Deploy, runs: list[HostRun], done: int) -> None:
    """Between batches: stop if someone cancelled the deploy, or an admin ended it meanwhile."""
    row = Deploy.objects.filter(pk=deploy.pk).values_list("status", "cancel_requested_at", "cancelled_by__username")
    status, cancel_requested_at, who = row.first() or (DeployStatus.FAILED, None, None)
    if status == DeployStatus.RUNNING and cancel_requested_at is None:
        return
    new = [run.name for run in runs if run.switched]
    old = [run.name for run in runs if not run.switched]
    where = (
        f"after {done} of {len(runs)} hosts; "
        f"on the new release: {', '.join(new) or 'none'}; still on the previous one: {', '.join(old) or 'none'}"
    )
    if status != DeployStatus.RUNNING:
        raise Cancelled(f"stopped: the deploy was marked {status} meanwhile, {where}")
    raise Cancelled(f"cancelled by {who or 'someone'} {where}")


def _host_update(run: HostRun, status: HostStatus, message: str = "", **values: str) -> None:
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


PAUSE_POLL_SECONDS = 0.5

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


def _connect_and_stage(run: HostRun, deploy: Deploy, archive: Path | None) -> None:
    run.conn = ssh.open_connection(run.target)
    if archive is None:
        _check_kept(run, deploy)
    else:
        _stage(run, deploy, archive)


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


def _check_kept(run: HostRun, deploy: Deploy) -> None:
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
    _host_update(run, HostStatus.STAGED, f"release {release} is there", previous_release=run.previous_release)


def _stage(run: HostRun, deploy: Deploy, archive: Path) -> None:
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
    _host_update(run, HostStatus.STAGED, "built", previous_release=run.previous_release)


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


def _activate(run: HostRun, deploy: Deploy) -> None:
    """Switch `current` to the new release, restart, and wait for the health check."""
    _host_update(run, HostStatus.ACTIVATING, "switching, restarting, health check")
    with _out_of_rotation(run):
        _switch_and_restart(run, deploy, deploy.release_name)
    _host_update(run, HostStatus.LIVE, "live")


@contextmanager
def _out_of_rotation(run: HostRun) -> Iterator[None]:
    """Drained in the load balancer for the block, when the environment has one."""
    if run.balancer is None:
        yield
        return
    with run.balancer.drained(run.host.balancer_name, run.log):
        yield


def _roll_back(run: HostRun, deploy: Deploy) -> None:
    if not run.previous_release:
        raise StepFailed("there is no previous release to go back to (this was the first deploy)")
    with _out_of_rotation(run):
        _switch_and_restart(run, deploy, run.previous_release)
    run.switched = False
    _host_update(run, HostStatus.ROLLED_BACK, f"rolled back to release {run.previous_release}")


def _prune(run: HostRun, deploy: Deploy) -> None:
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
