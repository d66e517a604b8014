"""Rolling batches, automatic rollback, cancel, dead workers and racing requests: real workers, real sshd."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer import tasks
from deployer.choices import AuditAction, DeployStatus, HostStatus
from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.deploys.actions import deploy_cancel, deploy_mark_failed
from deployer.deploys.reaper import deploys_reap
from deployer.deploys.request import deploy_request
from deployer.models import AuditEntry, Branch, Deploy, Environment
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import current_release, deploy_and_wait, host_root, host_status
from tests.support.net import free_port
from tests.support.pages import plan_page
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.webserver import WebServer
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


@pytest.fixture
def spare_host(transactional_db: None, tmp_path: Path) -> Iterator[tuple[SshdHost, psutil.Process]]:
    """A trusted sshd host of this test's own (on 127.0.0.14), so the test may kill it."""
    host = SshdHost(tmp_path / "spare", "127.0.0.14", free_port("127.0.0.14"))
    setup.hosts_trust([host])
    process = host.start()
    yield host, psutil.Process(process.pid)
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


def kill_sshd(process: psutil.Process) -> None:
    """The host goes away: the listening sshd and every session it forked (open connections die too)."""
    for proc in [*process.children(recursive=True), process]:
        proc.kill()


def test_hosts_switch_in_batches_of_the_environment_batch_size(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"batch_size": "2"})
    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    batches = [line.message for line in deploy.log_lines.filter(message__startswith="batch ")]
    assert batches == ["batch 1 of 2: 127.0.0.11, 127.0.0.12", "batch 2 of 2: 127.0.0.13"]
    hosts = {h.host.address: h for h in deploy.hosts.select_related("host")}
    second_batch = deploy.log_lines.get(message__startswith="batch 2 of 2")
    # The second batch started only after both hosts of the first were healthy.
    assert second_batch.at >= max(hosts[a].finished_at for a in ["127.0.0.11", "127.0.0.12"])
    assert {h.status for h in hosts.values()} == {HostStatus.LIVE}


def test_a_host_whose_sshd_dies_mid_rollout_rolls_the_switched_hosts_back(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    spare_host: tuple[SshdHost, psutil.Process],
) -> None:
    host, sshd = spare_host
    environment = make_environment(hosts=[ssh_hosts[0], host], options={"batch_size": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason

    deploy = deploy_request(environment=environment, ref="slow-restart", user=deployer)
    # The first host restarts slowly (2 s); the second host dies meanwhile.
    wait_until(lambda: host_status(deploy, "127.0.0.11") == HostStatus.ACTIVATING)
    kill_sshd(sshd)
    deploy = wait_for_deploy(deploy.pk, celery_worker)

    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.reason
    assert deploy.reason.startswith("127.0.0.14: activate failed"), deploy.reason
    assert "rolled back 127.0.0.11" in deploy.reason
    assert host_status(deploy, "127.0.0.11") == HostStatus.ROLLED_BACK
    assert host_status(deploy, "127.0.0.14") == HostStatus.FAILED
    assert current_release(environment, 0) == f"releases/{first.pk}", "the switched host went back"
    assert current_release(environment, 1) == f"releases/{first.pk}", "the dead host was never switched"
    environment.refresh_from_db()
    assert environment.is_locked, "a rollback locks the environment until someone has looked"
    assert environment.lock_reason.startswith(f"deploy #{deploy.pk} of slow-restart")
    assert AuditEntry.objects.filter(action=AuditAction.LOCKED, actor_name="gantry").exists()


def test_cancel_mid_rollout_finishes_the_hosts_in_flight_and_stops(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    environment = make_environment(options={"batch_size": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    deploy = deploy_request(environment=environment, ref="slow-restart", user=deployer)
    wait_until(lambda: host_status(deploy, "127.0.0.11") == HostStatus.ACTIVATING)

    response = deployer_client.post(reverse("deploy-cancel", args=[deploy.pk]))
    assert response.status_code == 302
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "cancel requested by dana" in page
    deploy = wait_for_deploy(deploy.pk, celery_worker)

    assert deploy.status == DeployStatus.CANCELLED, deploy.reason
    assert deploy.reason.startswith("cancelled by dana after 1 of 3 hosts"), deploy.reason
    assert "on the new release: 127.0.0.11; still on the previous one: 127.0.0.12, 127.0.0.13" in deploy.reason
    assert host_status(deploy, "127.0.0.11") == HostStatus.LIVE, "the host in flight finished"
    assert current_release(environment, 0) == f"releases/{deploy.pk}"
    assert [current_release(environment, i) for i in (1, 2)] == [f"releases/{first.pk}"] * 2
    # Cancelling again says why not.
    response = deployer_client.post(reverse("deploy-cancel", args=[deploy.pk]), follow=True)
    assert "has already ended (cancelled)" in response.content.decode()


def test_a_queued_deploy_is_cancelled_at_once(environment: Environment, deployer: AbstractBaseUser) -> None:
    deploy = Deploy.objects.create(
        environment=environment, ref="main", sha="a" * 40, requested_by=deployer, enqueued_at=timezone.now()
    )
    deploy_cancel(deploy=deploy, user=deployer)
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.CANCELLED
    assert deploy.reason == "cancelled by dana before it started"


def test_a_killed_worker_leaves_an_interrupted_deploy_complete_releases_and_no_resume(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"batch_size": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    # This deploy goes to a worker of its own, which the test kills mid-rollout.
    victim = Worker(queues="victim")
    victim.start()
    sha = Branch.objects.get(service=environment.service, name="slow-restart").sha
    deploy = Deploy.objects.create(
        environment=environment, ref="slow-restart", sha=sha, requested_by=deployer, previous_sha=first.sha
    )
    tasks.run_deploy.apply_async((deploy.pk,), queue="victim")
    wait_until(lambda: host_status(deploy, "127.0.0.11") == HostStatus.ACTIVATING)
    victim.kill()

    stale = settings.DEPLOY_HEARTBEAT_TIMEOUT + 1
    wait_until(lambda: Deploy.objects.get(pk=deploy.pk).heartbeat_at < timezone.now() - timedelta(seconds=stale))
    assert Deploy.objects.get(pk=deploy.pk).status == DeployStatus.RUNNING, "nobody settled it yet"
    replacement = Worker(queues="victim")
    replacement.start()  # a starting worker runs the reaper
    try:
        wait_until(lambda: Deploy.objects.get(pk=deploy.pk).status == DeployStatus.INTERRUPTED)
        deploy.refresh_from_db()
        assert "the worker running it stopped" in deploy.reason
        assert "it will not resume by itself" in deploy.reason
        assert "check 127.0.0.11" in deploy.reason, "the host being switched needs attention"
        # The environment is free again: a new deploy is accepted and runs.
        follow_up = deploy_and_wait(environment, "main", deployer, celery_worker)
        assert follow_up.status == DeployStatus.SUCCEEDED, follow_up.reason
    finally:
        replacement.stop()
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.INTERRUPTED, "the killed rollout never resumed"
    assert deploy.log_lines.filter(message="status: queued → running").count() == 1
    for index in range(3):
        release = host_root(environment, index) / current_release(environment, index)
        assert (release / "REVISION").is_file() and (release / "app.py").is_file(), "current is a complete release"


def test_fifty_concurrent_requests_start_exactly_one_deploy(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_repo: AppRepo,
    tmp_path: Path,
) -> None:
    # The deploy's build waits for a gate the test opens once every request is answered: on a busy machine
    # a quick deploy could end before the last request and free the environment for a second one.
    gate = tmp_path / "gate"
    setup.repo_branch(app_repo.path, "gated", {"build.sh": f"while [ ! -e {gate} ]; do sleep 0.1; done\n"}, "Gate")
    make_environment()
    web = WebServer().start()  # gunicorn, as in production: a real listen backlog and worker threads
    session = requests.Session()
    client = Client()
    client.force_login(deployer)
    session.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    base = web.url
    page = session.get(f"{base}{reverse('service', args=['app'])}", timeout=10)
    assert page.status_code == 200
    token = session.cookies["csrftoken"]
    url = f"{base}{reverse('deploy-create', args=['app', 'test'])}"
    answers: list[requests.Response] = []
    start = threading.Barrier(50)

    def press() -> None:
        start.wait()
        answers.append(
            session.post(url, data={"ref": "gated", "csrfmiddlewaretoken": token}, allow_redirects=False, timeout=60)
        )

    try:
        threads = [threading.Thread(target=press) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gate.touch()
        web.stop()

    codes = sorted(answer.status_code for answer in answers)
    print(f"\n50 concurrent deploy requests: {codes.count(302)} started, {codes.count(409)} answered 409")
    assert codes == [302] + [409] * 49
    deploy = Deploy.objects.get()
    for answer in answers:
        if answer.status_code == 409:
            assert re.search(rf"deploy #{deploy.pk}\b", answer.text), "the 409 names the running deploy"
    assert wait_for_deploy(deploy.pk, celery_worker).status == DeployStatus.SUCCEEDED


def test_the_reaper_resends_a_queued_deploy_whose_message_was_lost_and_gives_up_later(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    long_ago = timezone.now() - timedelta(seconds=settings.QUEUED_RESEND_SECONDS + 5)
    lost = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, requested_by=deployer)
    Deploy.objects.filter(pk=lost.pk).update(created_at=long_ago, enqueued_at=long_ago)

    assert deploys_reap() == []
    lost.refresh_from_db()
    assert lost.status == DeployStatus.QUEUED
    assert lost.enqueued_at > long_ago, "sent again (the claim makes a duplicate harmless)"

    forgotten = timezone.now() - timedelta(seconds=settings.QUEUED_GIVE_UP_SECONDS + 5)
    Deploy.objects.filter(pk=lost.pk).update(created_at=forgotten)
    assert deploys_reap() == [lost.pk]
    lost.refresh_from_db()
    assert lost.status == DeployStatus.INTERRUPTED
    assert "no worker took it within 30 min" in lost.reason


def test_the_reaper_leaves_a_deploy_with_a_fresh_heartbeat_alone(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, requested_by=deployer)
    old = timezone.now() - timedelta(seconds=settings.DEPLOY_HEARTBEAT_TIMEOUT + 5)
    Deploy.objects.filter(pk=deploy.pk).update(status=DeployStatus.RUNNING, started_at=old, heartbeat_at=timezone.now())
    assert deploys_reap() == []
    Deploy.objects.filter(pk=deploy.pk).update(heartbeat_at=old)
    assert deploys_reap() == [deploy.pk]
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.INTERRUPTED
    assert deploy.reason.endswith("no host was being switched")


def test_a_running_deploy_marked_failed_by_an_admin_stops_at_the_next_batch(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"batch_size": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    deploy = deploy_request(environment=environment, ref="slow-restart", user=deployer)
    wait_until(lambda: host_status(deploy, "127.0.0.11") == HostStatus.ACTIVATING)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")

    deploy_mark_failed(deploy=deploy, user=admin, reason="the worker looks stuck")
    wait_until(
        lambda: (
            Deploy.objects.get(pk=deploy.pk)
            .log_lines.filter(message__contains="this worker ended with cancelled: stopped:")
            .exists()
        )
    )

    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason == "marked failed by root: the worker looks stuck"
    assert [current_release(environment, i) for i in (1, 2)] == [f"releases/{first.pk}"] * 2, "no further batch ran"


def test_one_click_rollback_goes_back_to_the_previous_release_and_locks(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_port: int,
) -> None:
    environment = make_environment(options={"batch_size": "2"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    second = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)
    assert second.status == DeployStatus.SUCCEEDED, second.reason
    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert f'<option value="{first.pk}">#{first.pk} {first.sha[:8]} (main)' in page

    response = deployer_client.post(reverse("deploy-rollback", args=["app", "test"]))
    assert response.status_code == 302
    rollback = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)

    assert rollback.status == DeployStatus.SUCCEEDED, rollback.reason
    assert (rollback.trigger, rollback.rollback_of_id, rollback.sha) == ("rollback", first.pk, first.sha)
    assert rollback.previous_sha == second.sha
    assert not rollback.log_lines.filter(message__startswith="building").exists(), "nothing is built"
    for index in range(3):
        assert current_release(environment, index) == f"releases/{first.pk}"
    version = requests.get(f"http://127.0.0.12:{app_port}/version", timeout=5).json()
    assert version["sha"] == first.sha
    environment.refresh_from_db()
    assert environment.is_locked and "rolled back to main" in environment.lock_reason
    assert AuditEntry.objects.filter(action=AuditAction.ROLLBACK_REQUESTED, deploy_id=rollback.pk).exists()
    assert "rollback" in deployer_client.get(reverse("deploy", args=[rollback.pk])).content.decode()


def test_a_rollback_to_a_release_no_longer_kept_is_refused_and_a_missing_one_fails_before_switching(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    environment = make_environment(releases_to_keep=2)
    ids = [deploy_and_wait(environment, ref, deployer, celery_worker).pk for ref in ["main", "feature/shout", "main"]]
    pruned = deployer_client.post(reverse("deploy-rollback", args=["app", "test"]), {"to": ids[0]})
    assert pruned.status_code == 400
    assert f"roll back to one of: #{ids[1]}" in pruned.content.decode()

    # Someone removed the kept release by hand on one host: the rollback stops before any switch.
    shutil.rmtree(host_root(environment, 2) / "releases" / str(ids[1]))
    deployer_client.post(reverse("deploy-rollback", args=["app", "test"]), {"to": ids[1]})
    rollback = wait_for_deploy(Deploy.objects.latest("pk").pk, celery_worker)
    assert rollback.status == DeployStatus.FAILED
    assert rollback.reason.startswith("127.0.0.13: stage failed"), rollback.reason
    assert "no longer complete on this host" in "\n".join(line.message for line in rollback.log_lines.all())
    assert all(current_release(environment, i) == f"releases/{ids[2]}" for i in range(3))


def test_the_plan_shows_batches_commits_checks_and_an_eta_before_anything_starts(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_repo: AppRepo,
) -> None:
    setup.repo_branch(app_repo.path, "two-steps", {"one.txt": "1\n"}, "Step one")
    setup.repo_branch(app_repo.path, "two-steps", {"two.txt": "2\n"}, "Step two", base="two-steps")
    environment = make_environment(options={"batch_size": "2", "commit_warning": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    plan_url = reverse("deploy-plan", args=["app", "test"])

    page = plan_page(deployer_client, "app", "test", "two-steps")
    assert "<li>127.0.0.11, 127.0.0.12</li><li>127.0.0.13</li>" in page
    assert "Step two" in page and "Step one" in page and "2 commits" in page
    assert "This ships 2 commits, more than the 1 this environment warns at" in page
    assert "(p90 of the last 1 deploy here)" in page
    assert 'data-check="permission"' in page and "you may deploy here" in page
    assert Deploy.objects.count() == 1, "looking at a plan starts nothing"

    going_back = plan_page(deployer_client, "app", "test", "broken-health")
    assert "takes away" not in going_back
    Environment.objects.filter(pk=environment.pk).update(config={"GREETING_STYLE": "loud"})
    with_config = deployer_client.get(plan_url, {"ref": "two-steps"}).content.decode()
    assert "<li>GREETING_STYLE added</li>" in with_config, "the plan names the config keys that change"
    Environment.objects.filter(pk=environment.pk).update(config={})
    bad = deployer_client.get(plan_url, {"ref": "no/such..branch"})
    assert bad.status_code == 400

    # The confirm button carries the sha the person saw: if the branch moved meanwhile, nothing starts.
    moved = deployer_client.post(
        reverse("deploy-create", args=["app", "test"]), {"ref": "two-steps", "expected_sha": first.sha}
    )
    assert moved.status_code == 400 and "since you looked at the plan" in moved.content.decode()

    head = Branch.objects.get(service=environment.service, name="two-steps").sha
    started = deployer_client.post(
        reverse("deploy-create", args=["app", "test"]), {"ref": "two-steps", "expected_sha": head}
    )
    assert started.status_code == 302
    deploy = Deploy.objects.latest("pk")
    assert deploy.eta_seconds is not None and deploy.eta_seconds >= 1
    wait_until(lambda: Deploy.objects.get(pk=deploy.pk).started_at is not None)
    summary = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "of about" in summary or "expected about" in summary
    assert wait_for_deploy(deploy.pk, celery_worker).status == DeployStatus.SUCCEEDED


def test_guided_failure_pauses_for_a_person_to_retry_skip_or_abort(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    environment = make_environment(options={"batch_size": "1", "on_failure": "pause"}, health_timeout=2)
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    deploy = deploy_request(environment=environment, ref="broken-health", user=deployer)
    decide = reverse("deploy-decide", args=[deploy.pk])

    def paused(times: int) -> Callable[[], bool]:
        def check() -> bool:
            row = Deploy.objects.get(pk=deploy.pk)
            pauses = row.log_lines.filter(message__startswith="paused:").count()
            return row.paused_at is not None and row.decision == "" and pauses == times

        return check

    wait_until(paused(1), timeout=40)
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Paused" in page and "Retry the failed host" in page and "127.0.0.11" in page
    assert deployer_client.post(decide, {"choice": "retry"}).status_code == 302
    wait_until(paused(2), timeout=40)  # the retry failed the same way
    assert deployer_client.post(decide, {"choice": "skip"}).status_code == 302
    wait_until(paused(3), timeout=40)  # the next batch's host failed too
    assert host_status(deploy, "127.0.0.11") == HostStatus.SKIPPED
    assert deployer_client.post(decide, {"choice": "abort"}).status_code == 302
    deploy = wait_for_deploy(deploy.pk, celery_worker)

    assert deploy.status == DeployStatus.ROLLED_BACK, deploy.reason
    assert "rolled back 127.0.0.11, 127.0.0.12" in deploy.reason
    assert [current_release(environment, i) for i in range(3)] == [f"releases/{first.pk}"] * 3
    choices = [e.detail.split(":")[0] for e in AuditEntry.objects.filter(action=AuditAction.DECIDED).order_by("pk")]
    assert choices == ["retry the failed hosts", "skip the failed hosts", "abort and roll back"]
    assert deployer_client.post(decide, {"choice": "retry"}).status_code == 400, "nothing to decide any more"


def test_a_build_cannot_forge_where_a_rollback_goes(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, app_repo: AppRepo
) -> None:
    """The build's output is the branch's: a line that looks like Gantry's own mark is only logged."""
    forged = "echo 'GANTRY-PREVIOUS 1; touch \"$GANTRY_DEPLOY_PATH/pwned\"'\necho GANTRY-SWITCHED\n"
    setup.repo_branch(app_repo.path, "forged-mark", {"build.sh": forged}, "Lie about current", base="broken-health")
    environment = make_environment(hosts=None, health_timeout=2)
    good = deploy_and_wait(environment, "main", deployer, celery_worker)

    bad = deploy_and_wait(environment, "forged-mark", deployer, celery_worker)

    assert bad.status == DeployStatus.ROLLED_BACK, bad.reason
    assert current_release(environment, 0) == f"releases/{good.pk}"
    assert not any((host_root(environment, i) / "pwned").exists() for i in range(3))
    assert not any((host_root(environment, i).parent / "pwned").exists() for i in range(3))
    logged = list(bad.log_lines.values_list("message", flat=True))
    assert any(line.startswith("GANTRY-PREVIOUS 1; touch") for line in logged), "shown as the build's output"
