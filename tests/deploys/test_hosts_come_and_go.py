"""Hosts come and go. A dead host: a deploy goes on without it only when the catalog allows that many
unreachable hosts or a person says so with a reason; it is recorded skipped and shown behind. A new host
gets the release that runs there at once (a join), before it gets traffic; a host that left the catalog
gets none. Real sshd hosts (and an
address where nothing listens), a real HAProxy, a real Celery worker."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import AuditAction, DeployStatus, DeployTrigger, HostStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import current_deploy, deploy_join, deploy_request, deploy_rollback
from deployer.deploys.rules import DeployOptions
from deployer.errors import DeployConflict, DeployRefused
from deployer.integrations import haproxy
from deployer.models import AuditEntry, Deploy, DeployLog, Environment
from deployer.tasks import hosts_joined
from tests.support.catalogs import MakeEnvironment
from tests.support.haproxy import HAProxy, haproxy_running
from tests.support.net import free_port
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


@pytest.fixture
def dead(tmp_path: Path) -> SshdHost:
    return SshdHost(tmp_path / "dead", "127.0.0.15", free_port("127.0.0.15"))  # nothing listens there


def live_release(environment: Environment, index: int) -> str:
    root = Path(environment.hosts.all()[index].path)
    return str((root / "current").readlink())


def test_the_catalog_may_allow_an_unreachable_host_which_is_then_left_behind(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    dead: SshdHost,
) -> None:
    environment = make_environment(hosts=[ssh_hosts[0], dead, ssh_hosts[1]], options={"unreachable_hosts": "1"})

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.reason.startswith("succeeded without 127.0.0.15 (unreachable; left behind)")
    gone = deploy.hosts.get(address__contains="127.0.0.15")
    assert gone.status == HostStatus.SKIPPED
    assert gone.message.startswith("unreachable, left behind (the catalog allows 1 unreachable host): stage failed")
    assert [live_release(environment, i) for i in (0, 2)] == [f"releases/{deploy.pk}"] * 2
    matrix = deployer_client.get(reverse("services")).content.decode()
    assert "data-behind" in matrix and ">1 behind</span>" in matrix and "127.0.0.15" in matrix
    service = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert "Behind (the release that runs here never reached them)" in service and "unreachable, left behind" in service


def test_a_person_deploys_without_a_dead_host_saying_why(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    dead: SshdHost,
) -> None:
    environment = make_environment(hosts=[ssh_hosts[0], dead])
    refused = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert refused.status == DeployStatus.FAILED
    assert refused.reason.endswith(
        "To deploy without 127.0.0.15: tick it under 'Deploy without some hosts' on the plan page and say why, or "
        "let the catalog allow it (unreachable_hosts: 1 on environment test)"
    )
    plan = deployer_client.get(reverse("deploy-plan", args=["app", "test"]), {"ref": "main"}).content.decode()
    name = str(environment.hosts.get(address="127.0.0.15"))
    assert f'name="skip_host" value="{name}"' in plan

    url = reverse("deploy-create", args=["app", "test"])
    short = deployer_client.post(url, {"ref": "main", "skip_host": name, "skip_reason": "dead"})
    assert short.status_code == 400 and f"say why you deploy without {name} (at least 10 characters)" in (
        short.content.decode()
    )
    asked = deployer_client.post(url, {"ref": "main", "skip_host": name, "skip_reason": "disk died, replacing it"})
    assert asked.status_code == 302, asked.content.decode()[:500]
    deploy = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert deploy.reason.startswith(f"deployed without {name}, as asked: disk died, replacing it")
    gone = deploy.hosts.get(address=name)
    assert (gone.status, gone.message) == (
        HostStatus.SKIPPED,
        "deployed without it, as dana asked: disk died, replacing it",
    )
    assert live_release(environment, 0) == f"releases/{deploy.pk}"
    entry = AuditEntry.objects.filter(action=AuditAction.DEPLOY_REQUESTED, deploy_id=deploy.pk).get()
    assert entry.detail.endswith(f"; without {name}: disk died, replacing it")


def test_what_a_person_may_leave_out_is_checked(environment: Environment, deployer: AbstractBaseUser) -> None:
    def ask(*hosts: str, reason: str = "the host is being replaced") -> Deploy:
        options = DeployOptions(skip_hosts=hosts, skip_reason=reason)
        return deploy_request(environment=environment, ref="main", user=deployer, options=options)

    with pytest.raises(DeployRefused, match=r"'10\.9\.9\.9' is not one host of app/test; its hosts: "):
        ask("10.9.9.9")
    every = [host.address for host in environment.hosts.all()]
    with pytest.raises(DeployRefused, match="a deploy without every host of app/test would deploy nothing"):
        ask(*every)
    assert not Deploy.objects.exists(), "nothing recorded"


@pytest.mark.slow
def test_a_host_that_left_gets_no_traffic_and_one_that_joins_none_before_its_release_is_healthy(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    app_port: int,
    tmp_path: Path,
) -> None:
    first, leaver, joiner = ssh_hosts
    with haproxy_running(tmp_path, [host.address for host in ssh_hosts], app_port) as proxy:
        balancer = {"load_balancer": f"{{runtime_api: {proxy.socket}, backend: app, drain_timeout: 5}}"}

        def deploy(hosts: list[SshdHost]) -> Deploy:
            environment = make_environment(hosts=hosts, options=balancer)  # the catalog as it is now
            done = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
            assert done.status == DeployStatus.SUCCEEDED, done.reason
            return done

        def state(host: SshdHost) -> str:
            return haproxy.servers(proxy.socket, proxy.backend)[host.address].status

        deploy([first, leaver])
        assert not state(joiner).startswith("MAINT"), "a server Gantry never deployed to is not Gantry's to touch"
        make_environment(hosts=[first], options=balancer)  # the catalog drops it
        wait_until(lambda: state(leaver).startswith("MAINT"), timeout=20)  # at once: not at the next deploy

        watch = _Watch(proxy, joiner.address, tmp_path / "hosts" / f"{joiner.address}-{joiner.port}" / "srv" / "app")
        with watch:
            environment = make_environment(hosts=[first, joiner], options=balancer)  # the catalog adds a new host
            join = wait_for_deploy(_join_of(environment).pk, celery_worker)
        assert join.status == DeployStatus.JOINED, join.reason
        assert watch.ready_without_release == [], "it got traffic before its release was there"
        assert watch.seen_out, "kept out of rotation (maintenance, then drained) until its release was healthy"
        assert state(leaver).startswith("MAINT")
        wait_until(lambda: state(joiner) == "UP")  # ready; HAProxy's own check marks the started app up
        running = current_deploy(environment)
        assert running is not None and running.pk == join.rollback_of_id, "a join is no new release"
        assert live_release(environment, 1).endswith(f"releases/{running.pk}"), "it runs what the others run"
        assert [h.host.address for h in join.hosts.all()] == [joiner.address], "nothing else was touched"
        assert join.requested_by is not None and join.requested_by.get_username() == "gantry"
        assert f"{joiner.address}:{joiner.port} joined release {running.pk} (main, " in join.reason
        service = deployer_client.get(reverse("service", args=["app"])).content.decode()
        assert "data-behind" not in service
        page = deployer_client.get(reverse("deploy", args=[join.pk])).content.decode()
        assert "data-join" in page and "hosts joined" in page
        again = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
        assert again.status == DeployStatus.SUCCEEDED, again.reason
        wait_until(lambda: state(joiner) == "UP")  # (HAProxy's own check sees the restarted app again)


def test_a_host_that_cannot_be_brought_up_fails_its_join_once_and_is_shown_behind(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    dead: SshdHost,
) -> None:
    environment = make_environment(hosts=[ssh_hosts[0]])
    done = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert done.status == DeployStatus.SUCCEEDED, done.reason
    environment = make_environment(hosts=[ssh_hosts[0], dead])  # a host added before it was set up

    join = wait_for_deploy(_join_of(environment).pk, celery_worker)
    assert join.status == DeployStatus.FAILED and dead.address in join.reason
    assert current_deploy(environment) == done, "what runs there did not change"
    service = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert f"new here; deploy #{join.pk} did not bring it up" in service
    plan = deployer_client.get(reverse("deploy-plan", args=["app", "test"]), {"ref": "main"}).content.decode()
    assert f"{dead.address} (new: joins at this release)" in plan
    time.sleep(1)  # a failed join does not ask again by itself: no second one appears
    assert Deploy.objects.filter(environment=environment, trigger=DeployTrigger.JOIN).count() == 1

    hosts_joined(environment.pk)  # a person fixed it (trusted its key, say): asking again tries again
    again = Deploy.objects.filter(environment=environment, trigger=DeployTrigger.JOIN).exclude(pk=join.pk).get()
    assert wait_for_deploy(again.pk, celery_worker).status == DeployStatus.FAILED


def test_a_host_added_back_that_runs_the_release_already_keeps_it_and_is_checked(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, ssh_hosts: list[SshdHost]
) -> None:
    first, second = ssh_hosts[:2]
    environment = make_environment(hosts=[first, second])
    done = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert done.status == DeployStatus.SUCCEEDED, done.reason
    release = Path(environment.hosts.get(address=second.address).path) / "releases" / str(done.pk)
    (release / "still-the-same").write_text("not replaced under the running app")
    make_environment(hosts=[first])  # dropped from the catalog...
    environment = make_environment(hosts=[first, second])  # ...and added back

    join = wait_for_deploy(_join_of(environment).pk, celery_worker)

    assert join.status == DeployStatus.JOINED, join.reason
    assert (release / "still-the-same").exists(), "its running release was not replaced"
    record = join.hosts.get()
    assert record.status == HostStatus.LIVE and record.current == str(done.pk)
    assert DeployLog.objects.filter(deploy=join, message__contains=f"release {done.pk} runs here already").exists()


def _join_of(environment: Environment) -> Deploy:
    wait_until(lambda: Deploy.objects.filter(environment=environment, trigger=DeployTrigger.JOIN).exists())
    return Deploy.objects.get(environment=environment, trigger=DeployTrigger.JOIN)


class _Watch:
    """Polls HAProxy while a deploy runs: whenever the joining host is up in rotation, its release must be
    there; and it must have been seen out of rotation (in maintenance, where Gantry keeps a joining host, then
    drained while it is switched and checked)."""

    def __init__(self, proxy: HAProxy, name: str, root: Path) -> None:
        self.proxy, self.name, self.root = proxy, name, root
        self.ready_without_release: list[str] = []
        self.seen_out = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            state = haproxy.servers(self.proxy.socket, self.proxy.backend)[self.name]
            self.seen_out = self.seen_out or state.status.startswith("MAINT") or state.draining
            if state.status.startswith("UP") and not state.draining and not (self.root / "current").exists():
                self.ready_without_release.append(state.status)


def test_a_rollback_goes_on_without_the_hosts_its_release_never_reached(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    first, second = environment.hosts.all()
    older = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    older.hosts.create(host=first, address=str(first), status=HostStatus.LIVE)
    older.hosts.create(host=second, address=str(second), status=HostStatus.SKIPPED)
    newer = Deploy.objects.create(environment=environment, ref="main", sha="b" * 40, status=DeployStatus.SUCCEEDED)
    for host in (first, second):
        newer.hosts.create(host=host, address=str(host), status=HostStatus.LIVE, previous_release=str(older.pk))

    rollback = deploy_rollback(environment=environment, user=deployer, to=older)

    assert rollback.skipped_hosts == [str(second)]
    assert rollback.skip_reason == f"release {older.pk} never reached it (skipped, or new since)"


def test_a_join_that_fails_leaves_its_host_out_and_neither_pauses_nor_locks(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
    tmp_path: Path,
) -> None:
    first, joiner = ssh_hosts[:2]
    with haproxy_running(tmp_path, [first.address, joiner.address], app_port) as proxy:
        options = {
            "load_balancer": f"{{runtime_api: {proxy.socket}, backend: app, drain_timeout: 5}}",
            "on_failure": "pause",  # a join does not hold the environment for a person's decision
        }
        environment = make_environment(hosts=[first], options=options)
        done = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
        assert done.status == DeployStatus.SUCCEEDED, done.reason
        squatter = socket.create_server((joiner.address, app_port))  # its app cannot start there
        try:
            environment = make_environment(hosts=[first, joiner], options=options)
            join = wait_for_deploy(_join_of(environment).pk, celery_worker)
        finally:
            squatter.close()
        servers = haproxy.servers(proxy.socket, proxy.backend)

    assert join.status == DeployStatus.FAILED and "it gets no traffic" in join.reason, join.reason
    assert servers[joiner.address].status.startswith("MAINT"), "a new host that failed stays out of rotation"
    environment.refresh_from_db()
    assert not environment.is_locked and join.paused_at is None
    assert current_deploy(environment) == done


def test_a_join_does_not_run_a_config_the_other_hosts_lack(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, ssh_hosts: list[SshdHost]
) -> None:
    first, joiner = ssh_hosts[:2]
    environment = make_environment(hosts=[first], options={"config": json.dumps({"STYLE": "plain"})})
    done = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert done.status == DeployStatus.SUCCEEDED, done.reason
    environment = make_environment(hosts=[first, joiner], options={"config": json.dumps({"STYLE": "loud"})})

    join = wait_for_deploy(_join_of(environment).pk, celery_worker)

    assert join.status == DeployStatus.FAILED and "the catalog's config changed since release" in join.reason
    assert not join.hosts.exists(), "no host was touched"


def test_a_persons_deploy_supersedes_a_join_still_queued_and_a_running_one_is_named(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    first = environment.hosts.all()[0]
    live = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    live.hosts.create(host=first, address=str(first), status=HostStatus.LIVE)
    join = deploy_join(environment)
    assert join is not None and join.status == DeployStatus.QUEUED and join.rollback_of == live

    mine = deploy_request(environment=environment, ref="main", user=deployer)

    join.refresh_from_db()
    assert join.status == DeployStatus.CANCELLED and join.reason.startswith("superseded")
    assert mine.status == DeployStatus.QUEUED
    Deploy.objects.filter(pk=mine.pk).update(status=DeployStatus.CANCELLED)
    running = deploy_join(environment)
    assert running is not None
    Deploy.objects.filter(pk=running.pk).update(status=DeployStatus.RUNNING)
    with pytest.raises(DeployConflict, match=f"new hosts are joining release {live.pk} \\(deploy #{running.pk}"):
        deploy_request(environment=environment, ref="main", user=deployer)


def test_a_rollback_takes_along_the_hosts_that_joined_its_release(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    first, second = environment.hosts.all()
    older = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    older.hosts.create(host=first, address=str(first), status=HostStatus.LIVE)
    join = Deploy.objects.create(
        environment=environment,
        ref="main",
        sha="a" * 40,
        status=DeployStatus.JOINED,
        trigger=DeployTrigger.JOIN,
        rollback_of=older,
    )
    join.hosts.create(host=second, address=str(second), status=HostStatus.LIVE)
    newer = Deploy.objects.create(environment=environment, ref="main", sha="b" * 40, status=DeployStatus.SUCCEEDED)
    for host in (first, second):
        newer.hosts.create(host=host, address=str(host), status=HostStatus.LIVE, previous_release=str(older.pk))

    rollback = deploy_rollback(environment=environment, user=deployer, to=older)

    assert rollback.skipped_hosts == [], "the joined host keeps the release too"
