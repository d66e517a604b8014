"""A secret a failing command prints is masked wherever Gantry keeps or sends it: the deploy's reason and log,
a host's message, a pause reason and the audit entry copied from it, an environment's lock, the deploy page
and Slack, for a release command, a restart under on_failure: pause, and a rollback's restart. Real sshd
host, real Celery worker, the fake Slack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import AuditAction, DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request, deploy_rollback
from deployer.models import AuditEntry, Deploy, DeployHost, DeployLog, Environment, SlackMessage, Team
from tests.fakes.slack import FakeSlack
from tests.support.catalogs import MakeEnvironment
from tests.support.constants import SHOP_SECRET
from tests.support.deploys import deploy_and_wait
from tests.support.waiting import wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


def test_a_printed_secret_is_masked_in_every_row_page_and_slack_message(
    make_environment: MakeEnvironment,
    ssh_hosts: list[SshdHost],
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    slack: FakeSlack,
    app_port: int,
    tmp_path: Path,
) -> None:
    log_start = len(celery_worker.log())
    failing = tmp_path / "restart-fails"
    restart = f'"echo restart sees $SHOP_SECRET; if [ -e {failing} ]; then exit 5; fi; sh bin/restart {app_port}"'
    options = {
        "config": json.dumps({"SHOP_SECRET": "{{secret.SHOP_SECRET}}"}),
        "config_secrets": "[SHOP_SECRET]",
        "restart_command": restart,
    }
    environment = make_environment(ssh_hosts[:1], options=options)
    Team.objects.filter(name="web").update(slack_channel="C0WEB")
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason

    Environment.objects.filter(pk=environment.pk).update(release_command="echo release sees $SHOP_SECRET; exit 3")
    released = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert released.reason.endswith("exited with status 3; its last lines: release sees ••••; no host was switched")

    Environment.objects.filter(pk=environment.pk).update(release_command="", on_failure="pause")
    second = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert second.status == DeployStatus.SUCCEEDED, second.reason
    failing.touch()
    paused = deploy_request(environment=environment, ref="main", user=deployer)
    wait_until(lambda: Deploy.objects.get(pk=paused.pk).paused_at is not None, timeout=40)
    assert "restart sees ••••" in Deploy.objects.get(pk=paused.pk).pause_reason
    decide = deployer_client.post(reverse("deploy-decide", args=[paused.pk]), {"choice": "abort"})
    assert decide.status_code == 302
    paused = wait_for_deploy(paused.pk, celery_worker)  # its rollback's restart fails the same way
    assert paused.status == DeployStatus.FAILED and "the rollback failed" in paused.reason, paused.reason

    Environment.objects.filter(pk=environment.pk).update(on_failure="rollback")
    back = deploy_rollback(environment=environment, user=deployer, to=first)
    back = wait_for_deploy(back.pk, celery_worker)
    assert back.status == DeployStatus.FAILED and "restart sees ••••" in back.reason, back.reason

    deploys = [first, released, second, paused, back]
    wait_until(lambda: not SlackMessage.objects.exclude(state=SlackMessage.State.SENT).exists(), timeout=30)
    assert len(slack.top_level("C0WEB")) == len(deploys)
    kept = json.dumps(
        [
            list(model.objects.values())
            for model in (Deploy, DeployHost, DeployLog, AuditEntry, Environment, SlackMessage)
        ],
        default=str,
        ensure_ascii=False,
    )
    pages = "".join(deployer_client.get(reverse("deploy", args=[d.pk])).content.decode() for d in deploys)
    sent = json.dumps([(m.text, m.blocks, m.history) for m in slack.messages.values()], ensure_ascii=False)
    for where, text in {"a table": kept, "a deploy page": pages, "a Slack message": sent}.items():
        assert SHOP_SECRET not in text, f"the secret is in {where}"
    assert "restart sees ••••" in kept and "release sees ••••" in kept, "masked, not dropped"
    [decided] = AuditEntry.objects.filter(action=AuditAction.DECIDED)
    assert "restart sees ••••" in decided.detail
    logged = celery_worker.log()[log_start:]
    assert "restart sees ••••" in logged and SHOP_SECRET not in logged, "the worker's own log masks it too"
