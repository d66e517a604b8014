"""The hosts of one rollout: a HostRun for each (its roles, load balancer, peers), connected with the host
keys Gantry trusts (also while a build runs elsewhere), steps run on all of them in parallel, and every SSH
connection closed at the end whatever happens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection
from fabric import Connection

from deployer.choices import HostStatus
from deployer.deploys.balancer import Balancer
from deployer.deploys.host_steps import HostRun, connection_ensure, connection_release, host_update
from deployer.deploys.log import deploy_logger
from deployer.deploys.roles import environment_roles, host_roles, serves_traffic, switch_order
from deployer.environments.host_keys import host_keys_of
from deployer.errors import StepFailed
from deployer.integrations import ssh
from deployer.lib.logcontext import in_this_context
from deployer.models import Deploy, DeployHost


def connect(target: ssh.Target) -> Connection:
    """An SSH connection to `target`, checked against the host keys Gantry trusts (the database's: the same
    on every machine); the caller closes it."""
    return ssh.open_connection(target, host_keys_of(target))


def connected_while(runs: list[HostRun], make: Callable[[Callable[[], None]], tuple[Path, str]]) -> tuple[Path, str]:
    """Connect to every host, and open the sessions of its staging and its switch there (each host's login
    shell runs its rc files), while `make` runs here, from the moment it says it has begun. A host that
    cannot be reached is left to staging, which says why."""
    if not all(run.keep_connection for run in runs):
        return make(lambda: None)  # more hosts than connection slots: each connects when its step comes
    begun = threading.Event()

    def ready(run: HostRun) -> None:
        begun.wait()
        with contextlib.suppress(StepFailed):
            connection_ensure(run)
            assert run.conn is not None
            ssh.sessions_ahead(run.conn, 2)

    connecting = threading.Thread(
        target=in_this_context(lambda hosts: in_parallel(hosts, ready, "connect", hosts_failed=False)),
        args=(runs,),
        name="connecting",
        daemon=True,
    )
    connecting.start()
    try:
        return make(begun.set)
    finally:
        begun.set()
        connecting.join()  # every connection it opens is known before anyone closes them


@contextmanager
def connected(runs: list[HostRun]) -> Iterator[list[HostRun]]:
    """The block's hosts, each SSH connection it opened closed at the end, whatever happens."""
    try:
        yield runs
    finally:
        for run in runs:
            if run.conn is not None:
                run.conn.close()


def host_runs(deploy: Deploy, *, records: list[DeployHost] | None = None) -> list[HostRun]:
    """One HostRun per host: new records for a rollout, or the deploy's own (switched) ones to roll back."""
    environment = deploy.environment
    timeout = environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    balancer = Balancer.of(environment)
    roles = environment_roles(environment)
    if records is None:
        hosts = switch_order(list(environment.hosts.all()), roles)
        if not hosts:
            raise StepFailed(f"{environment} has no hosts; add some under hosts: in the catalog")
        records = [
            DeployHost.objects.create(deploy=deploy, host=host, address=str(host), release=deploy.release_name)
            for host in hosts
        ]
        previous = False
    else:
        previous = True
    peers = tuple(record.host.address for record in records if record.host is not None)
    stop = _stop_requested(deploy.pk)
    keep = len(records) <= settings.SSH_MAX_CONNECTIONS
    return [
        HostRun(
            host=record.host,
            record=record,
            log=deploy_logger(deploy.pk, record.address),
            timeout=timeout,
            balancer=balancer if serves_traffic(record.host, roles) else None,
            previous_release=record.previous_release if previous else "",
            switched=previous,
            roles=host_roles(record.host, roles),
            peers=peers,
            stop=stop,
            keep_connection=keep,
        )
        for record in records
        if record.host is not None
    ]


def in_parallel(runs: list[HostRun], step: Callable[[HostRun], None], what: str, *, hosts_failed: bool = True) -> None:
    """Run `step` on every host (at most ROLLOUT_PARALLELISM at once); StepFailed naming every failed host.
    A host that fails is recorded failed unless `hosts_failed` is False (a hook after the host went live).
    In a rollout with more hosts than connection slots, each host's connection is closed after its step."""

    def one(run: HostRun) -> str:
        try:
            step(run)
            return ""
        except StepFailed as exc:
            run.log.error("%s failed: %s", what, exc)
            if hosts_failed:
                run.failed = True
                host_update(run, HostStatus.FAILED, f"{what} failed: {exc}")
            return f"{run.name}: {what} failed: {exc}"
        finally:
            connection_release(run)

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


def _stop_requested(deploy_id: int) -> Callable[[], bool]:
    """Asked while a command runs on a host: did someone cancel the deploy and ask to stop what runs?"""

    def asked() -> bool:
        return Deploy.objects.filter(
            pk=deploy_id, cancel_requested_at__isnull=False, cancel_stops_commands=True
        ).exists()

    return asked
