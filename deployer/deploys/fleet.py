"""The hosts of one rollout and the one owner of their state.

Every host of a deploy has a HostRun (where it is, its roles, load balancer and open connection) and a
DeployHost row (what the deploy page and the host table show). This module is the only code that writes
those rows and a host's state (tests/house/test_layout.py checks it); every move of a host's state is one of
_MOVES, as lifecycle.py's table is for deploys. Steps elsewhere run commands and report what they read
on the host (where `current` points, how a role is doing) through the functions here.

It also holds the hosts' SSH connections: opened with the host keys Gantry trusts, in parallel, ahead of
a build when asked, and every one closed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone
from fabric import Connection

from deployer.choices import DeployStatus, DeployTrigger, HostStatus
from deployer.deploys.balancer import Balancer
from deployer.deploys.log import deploy_logger
from deployer.deploys.roles import ProcessRole, environment_roles, host_roles, serves_traffic, switch_order
from deployer.environments.host_keys import hop_keys_of, host_key_offered, host_keys_of, host_target
from deployer.errors import StepFailed
from deployer.integrations import ssh
from deployer.integrations.ssh_sessions import commands_planned, sessions_ahead
from deployer.lib.logcontext import in_this_context
from deployer.lib.secrets import scrubbed
from deployer.models import Deploy, DeployHost, Environment, Host

S = HostStatus
logger = logging.getLogger(__name__)
# Which states a host may move to from each state. A rollback takes a host back through activating (it
# is being switched and restarted again); a host stays in a state while its message changes.
_MOVES: dict[HostStatus, frozenset[HostStatus]] = {
    S.PENDING: frozenset({S.STAGED, S.FAILED, S.STOPPED}),
    S.STAGED: frozenset({S.STAGED, S.ACTIVATING, S.FAILED, S.STOPPED}),
    S.ACTIVATING: frozenset({S.LIVE, S.ROLLED_BACK, S.FAILED, S.STOPPED}),
    S.LIVE: frozenset({S.ACTIVATING, S.FAILED}),
    S.FAILED: frozenset({S.ACTIVATING, S.SKIPPED, S.FAILED, S.STOPPED}),
    S.SKIPPED: frozenset({S.ACTIVATING}),
    S.STOPPED: frozenset({S.ACTIVATING, S.SKIPPED, S.FAILED, S.STOPPED}),
    S.ROLLED_BACK: frozenset(),
}
_ENDED = {S.LIVE, S.FAILED, S.ROLLED_BACK, S.STOPPED}


class HostMoveRefused(RuntimeError):
    """A move the table does not allow: a bug in Gantry, never an expected ending."""


@dataclass
class HostRun:
    """One host's part in a rollout: where it is, its record, its open connection."""

    host: Host
    record: DeployHost
    log: logging.LoggerAdapter[logging.Logger]
    timeout: int
    balancer: Balancer | None = None
    status: HostStatus = S.PENDING
    previous_release: str = ""  # where `current` pointed before this deploy (read by staging)
    switched: bool = False  # `current` points at this deploy's release and did not before
    conn: Connection | None = field(default=None, repr=False)
    roles: list[ProcessRole] = field(default_factory=list)  # the roles it runs, in restart order
    role_states: dict[str, dict[str, str]] = field(default_factory=dict)  # shown on the deploy page
    release_host: bool = False  # runs release_command and the once hooks
    peers: tuple[str, ...] = ()  # every host of the deploy (GANTRY_HOSTS)
    notes: list[str] = field(default_factory=list)  # what went wrong without failing the deploy (its reason)
    stop: Callable[[], bool] | None = field(default=None, repr=False)  # asked while a command runs
    stopped: bool = False  # a command of it was stopped on request
    keep_connection: bool = True  # False when the rollout has more hosts than connection slots (ssh_slots.py)
    reached: bool = False  # a connection to it was opened during this rollout
    unreachable: bool = False  # nothing answered at its address when Gantry connected
    in_join: bool = False  # the deploy is a join: the host is new here, whatever it ran before

    @property
    def joining(self) -> bool:
        """New in the environment (no release before this deploy, or a join's host): out of the load balancer
        until its release is healthy, and kept out when it is not."""
        return not self.previous_release or self.in_join

    @property
    def target(self) -> ssh.Target:
        return host_target(self.host)

    @property
    def path(self) -> str:
        return self.host.path

    @property
    def name(self) -> str:
        return self.host.address


def host_move(run: HostRun, to: HostStatus, message: str, **values: str) -> None:
    """Move the host to `to` (one of _MOVES) and record it with `message` (the deploy page reads it)."""
    if to not in _MOVES[run.status]:
        raise HostMoveRefused(f"{run.name}: {run.status} → {to} is not a move a host makes ({message})")
    stored: dict[str, object] = {"status": to, "message": message, **values}
    if to in _ENDED:
        stored["finished_at"] = timezone.now()
    DeployHost.objects.filter(pk=run.record.pk).update(**stored)
    run.status = to
    run.record.status, run.record.message = to, message  # what later messages quote ("skipped after: ...")


def role_record(run: HostRun, role: str, state: str, detail: str = "") -> None:
    """Record how one of the host's roles is doing (restarting, healthy, failed...)."""
    run.role_states[role] = {"name": role, "state": state, "detail": scrubbed(detail)[:300]}
    ordered = [run.role_states[r.name] for r in run.roles if r.name in run.role_states]
    DeployHost.objects.filter(pk=run.record.pk).update(roles=ordered)


def current_record(run: HostRun, release: str) -> None:
    """Record where the host's `current` points, as just read there ("?" when it could not be read)."""
    DeployHost.objects.filter(pk=run.record.pk).update(current=release[:50])
    if release != "?":
        run.switched = release != run.previous_release


def connect(target: ssh.Target) -> Connection:
    """An SSH connection to `target`, checked against the host keys Gantry trusts (the database's: the same
    on every machine); the caller closes it. A key it does not trust is kept for a person to check."""
    try:
        return ssh.open_connection(target, host_keys_of(target), hop_keys_of(target))
    except ssh.HostKeyError as exc:
        host_key_offered(exc.name, exc.offered)
        raise


def connection_ensure(run: HostRun) -> None:
    """Connect to the host unless connected (checked against the host keys Gantry trusts)."""
    if run.conn is None:
        try:
            run.conn = connect(run.target)
        except ssh.Unreachable:
            run.unreachable = True
            raise
        run.reached, run.unreachable = True, False


def commands_plan(run: HostRun, count: int) -> None:
    """Hand the host's next `count` commands to the SSH layer as a plan: it opens each one's session while
    the one before it runs (see ssh_sessions.py)."""
    if run.conn is not None and run.keep_connection:
        commands_planned(run.conn, count)


class Fleet:
    """Every host of one deploy: their runs, in switch order, and their connections."""

    def __init__(self, deploy: Deploy, runs: list[HostRun]) -> None:
        self.deploy, self.runs = deploy, runs

    @classmethod
    def rolling_out(cls, deploy: Deploy) -> Fleet:
        """A new record for each host of the environment (a rollout begins); the hosts a person said to deploy
        without are recorded skipped, and take no part."""
        hosts = switch_order(list(deploy.environment.hosts.all()), environment_roles(deploy.environment))
        if deploy.is_join:  # only the hosts no deploy has reached since the release they join went live
            new = set(newcomers(deploy.environment))
            hosts = [host for host in hosts if host.pk in new]
            if not hosts:
                raise StepFailed("no host is new here any more: a deploy reached them meanwhile")
        if not hosts:
            raise StepFailed(f"{deploy.environment} has no hosts; add some under hosts: in the catalog")
        left_out = set(deploy.skipped_hosts or [])
        who = deploy.requested_by.get_username() if deploy.requested_by else "Gantry"
        for host in hosts:
            if str(host) in left_out:
                DeployHost.objects.create(
                    deploy=deploy,
                    host=host,
                    address=str(host),
                    release=deploy.release_name,
                    status=HostStatus.SKIPPED,
                    message=f"deployed without it, as {who} asked: {deploy.skip_reason}",
                )
        if all(str(host) in left_out for host in hosts):
            raise StepFailed(f"every host of {deploy.environment} is left out of this deploy: nothing to deploy to")
        records = [
            DeployHost.objects.create(deploy=deploy, host=host, address=str(host), release=deploy.release_name)
            for host in hosts
            if str(host) not in left_out
        ]
        return cls(deploy, _runs(deploy, records, switched=False))

    @classmethod
    def switched_by(cls, deploy: Deploy) -> Fleet:
        """The hosts a finished rollout switched (to roll them back, or prune their old releases): not those it
        never reached (left out, or skipped before they were staged)."""
        records = deploy.hosts.select_related("host").filter(host__isnull=False)
        records = records.exclude(status=HostStatus.SKIPPED, previous_release="")
        return cls(deploy, _runs(deploy, list(records), switched=True))

    def left_the_catalog(self) -> list[str]:
        """Addresses of hosts this environment's deploys reached that are no host of it any more."""
        return left_the_catalog(self.deploy.environment)

    @property
    def going(self) -> list[HostRun]:
        """The hosts the rollout goes on with: every one not skipped."""
        return [run for run in self.runs if run.status != S.SKIPPED]

    def leave_behind(self, runs: list[HostRun], why: str) -> None:
        """Go on without `runs` (unreachable, as the catalog allows): skipped, and behind until a deploy
        reaches them."""
        for run in runs:
            host_move(run, S.SKIPPED, f"{why}: {run.record.message}")

    @contextmanager
    def connected(self) -> Iterator[Fleet]:
        """The fleet; each SSH connection it opened closed at the end, whatever happens."""
        try:
            yield self
        finally:
            for run in self.runs:
                if run.conn is not None:
                    run.conn.close()

    @contextmanager
    def connecting(self) -> Iterator[Callable[[], None]]:
        """Connect to every host, and open the sessions of its staging and its switch there (each host's
        login shell runs its rc files), while the block runs here, from the moment the block calls what
        this yields (a build says when its own work has begun: it is the critical path). A host that
        cannot be reached is left to staging, which says why."""
        begun = threading.Event()
        if not all(run.keep_connection for run in self.runs):
            yield lambda: None  # more hosts than connection slots: each connects when its step comes
            return

        def ready(run: HostRun) -> None:
            begun.wait()
            with contextlib.suppress(StepFailed):
                connection_ensure(run)
                assert run.conn is not None
                sessions_ahead(run.conn, 2)

        def connect_all(runs: list[HostRun]) -> None:
            self.each(ready, "connect", runs=runs, hosts_fail=False)

        thread = threading.Thread(target=in_this_context(connect_all), args=(self.runs,), name="connecting")
        thread.daemon = True
        thread.start()
        try:
            yield begun.set
        finally:
            begun.set()
            thread.join()  # every connection it opens is known before anyone closes them

    def each(
        self, step: Callable[[HostRun], None], what: str, *, runs: list[HostRun] | None = None, hosts_fail: bool = True
    ) -> str:
        """Run `step` on every host (or `runs`), at most ROLLOUT_PARALLELISM at once; "" when it passed
        everywhere, else what failed, host by host. A host that fails is moved to failed (stopped, when
        its command was stopped on request) unless `hosts_fail` is False (a hook after the host went live).
        With more hosts than connection slots, each host's connection is closed after its step."""
        return _each(self.runs if runs is None else runs, step, what, hosts_fail=hosts_fail)

    def where(self) -> str:
        """Which hosts run the new release and which the previous one (for a reason a person reads)."""
        new = [run.name for run in self.runs if run.switched]
        old = [run.name for run in self.runs if not run.switched]
        text = f"on the new release: {', '.join(new) or 'none'}; still on the previous one: {', '.join(old) or 'none'}"
        if stopped := [run.name for run in self.runs if run.stopped]:
            text += (
                f"; stopped in the middle of a command: {', '.join(stopped)} (check them: roll back, or deploy again)"
            )
        return text


def left_the_catalog(environment: Environment) -> list[str]:
    """Addresses of hosts this environment's deploys reached that are no host of it any more."""
    now = {host.address for host in environment.hosts.all()}
    reached = DeployHost.objects.filter(deploy__environment=environment).values_list("address", flat=True)
    addresses = {address.rsplit("@", 1)[-1].rsplit(":", 1)[0] for address in reached.distinct()}
    return sorted(addresses - now)


def newcomers(environment: Environment) -> list[int]:
    """Ids of the environment's hosts that no deploy has reached (made a record for) since the one whose release
    runs there went live: hosts the catalog added since ([] when nothing runs there yet). A host a deploy
    reached and failed on, or skipped, is behind, not new: the service page says why."""
    current = Deploy.objects.filter(environment=environment, status__in=DeployStatus.live()).order_by("-id").first()
    if current is None:
        return []
    reached = DeployHost.objects.filter(deploy__environment=environment, deploy_id__gte=current.pk, host__isnull=False)
    # A join that did not bring a host up leaves it new: a person who fixed it (trusted its key) asks again.
    failed_joins = DeployStatus.finished() - {DeployStatus.JOINED}
    reached = reached.exclude(deploy__trigger=DeployTrigger.JOIN, deploy__status__in=failed_joins)
    known = set(reached.values_list("host_id", flat=True))
    return [pk for pk in environment.hosts.values_list("pk", flat=True) if pk not in known]


def leavers_out_of_rotation(environment_id: int) -> list[str]:
    """Right after the catalog drops hosts: those that served traffic get none from now on (maintenance in the
    environment's load balancer); their records stay in the history. A deploy running there does it itself."""
    environment = Environment.objects.filter(pk=environment_id).first()
    balancer = Balancer.of(environment) if environment is not None else None
    if environment is None or balancer is None:
        return []
    if Deploy.objects.filter(environment=environment, status=DeployStatus.RUNNING).exists():
        return []
    return balancer.leavers_out(left_the_catalog(environment), logging.LoggerAdapter(logger, {}))


def _runs(deploy: Deploy, records: list[DeployHost], *, switched: bool) -> list[HostRun]:
    environment = deploy.environment
    timeout = environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    balancer = Balancer.of(environment)
    roles = environment_roles(environment)
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
            status=HostStatus(record.status),
            previous_release=record.previous_release if switched else "",
            switched=switched,
            roles=host_roles(record.host, roles),
            peers=peers,
            stop=stop,
            keep_connection=keep,
            in_join=deploy.is_join,
        )
        for record in records
        if record.host is not None
    ]


def _each(runs: list[HostRun], step: Callable[[HostRun], None], what: str, *, hosts_fail: bool) -> str:
    def one(run: HostRun) -> str:
        try:
            step(run)
            return ""
        except StepFailed as exc:
            run.log.error("%s failed: %s", what, exc)
            if hosts_fail:
                host_move(run, S.STOPPED if run.stopped else S.FAILED, f"{what} failed: {exc}")
            return f"{run.name}: {what} failed: {exc}"
        finally:
            if not run.keep_connection and run.conn is not None:
                run.conn.close()
                run.conn = None

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
    return "; ".join(f for f in failures if f)


def _stop_requested(deploy_id: int) -> Callable[[], bool]:
    """Asked while a command runs on a host: did someone cancel the deploy and ask to stop what runs?"""

    def asked() -> bool:
        return Deploy.objects.filter(
            pk=deploy_id, cancel_requested_at__isnull=False, cancel_stops_commands=True
        ).exists()

    return asked
