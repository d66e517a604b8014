"""The one place a deploy changes state.

Each change is a conditional UPDATE from the states it may come from, so two
actors (a redelivered message, a second worker) can never both move a deploy:
the one whose update changed no row stands down.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from deployer import queue
from deployer.choices import AuditAction, DeployStatus
from deployer.deploys.fleet import newcomers
from deployer.environments.audit import audit_record
from deployer.environments.locks import environment_lock
from deployer.lib import generations
from deployer.lib.secrets import scrubbed
from deployer.models import Deploy, DeployLog
from deployer.notify import grafana_outbox, hooks_out, outbox
from deployer.notify.github_deployments import publishing_enabled

logger = logging.getLogger(__name__)

# Which states each state may move to.
_NEXT: dict[str, set[str]] = {
    DeployStatus.AWAITING_APPROVAL: {DeployStatus.QUEUED, DeployStatus.CANCELLED, DeployStatus.FAILED},
    DeployStatus.QUEUED: {DeployStatus.RUNNING, DeployStatus.FAILED, DeployStatus.CANCELLED, DeployStatus.INTERRUPTED},
    DeployStatus.RUNNING: {
        DeployStatus.SUCCEEDED,
        DeployStatus.FAILED,
        DeployStatus.CANCELLED,
        DeployStatus.ROLLED_BACK,
        DeployStatus.INTERRUPTED,
        DeployStatus.TESTS_FAILED,
        DeployStatus.JOINED,
    },
}
_BAD_ENDINGS = {DeployStatus.FAILED, DeployStatus.INTERRUPTED, DeployStatus.ROLLED_BACK, DeployStatus.TESTS_FAILED}


def deploy_transition(
    deploy: Deploy, *, to: DeployStatus, reason: str = "", only_from: set[str] | None = None, lock: str = ""
) -> bool:
    """Move `deploy` to `to` and write the audit line; False if its state in the
    database did not allow it (someone else moved it first). `only_from` narrows
    the states it may come from; `lock` locks the environment with that reason, in
    the same transaction (besides the locks a rollback always leaves)."""
    sources = [state for state, targets in _NEXT.items() if to in targets and (only_from is None or state in only_from)]
    now = timezone.now()
    values: dict[str, object] = {"status": to}
    if to == DeployStatus.RUNNING:
        values["started_at"] = now
    if to in DeployStatus.finished():
        values["finished_at"] = now
        values["reason"] = reason
    before = deploy.status
    line = f"status: {before} → {to}" + (f": {reason}" if reason else "")
    level = "error" if to in _BAD_ENDINGS else "info"
    # One transaction: whoever sees the new state also sees its log line, its history entry and its lock.
    with transaction.atomic():
        if not Deploy.objects.filter(pk=deploy.pk, status__in=sources).update(**values):
            return False
        DeployLog.objects.create(deploy=deploy, at=now, level=level, message=line)
        for key, value in values.items():
            setattr(deploy, key, value)
        if to in DeployStatus.finished():
            _audit_end(deploy, to, reason, now)
        _lock_after(deploy, to, lock)
        outbox.story_changed(deploy)  # the message's new version is there as soon as the state is
        grafana_outbox.deploy_changed(deploy)  # and Grafana's region: opened at the start, closed at the end
        hooks_out.deploy_changed(deploy, to)  # and the catalog's webhooks: rows sent after commit
    logger.info("deploy #%s %s", deploy.pk, line)
    _after_transition(deploy, to)
    return True


def _audit_end(deploy: Deploy, to: DeployStatus, reason: str, now: datetime) -> None:
    """The history's row for the deploy: who shipped what, how it ended, how long it ran."""
    started = deploy.started_at
    audit_record(
        AuditAction.DEPLOY_ENDED,
        actor=deploy.requested_by,
        deploy=deploy,
        outcome=to,
        duration_seconds=(now - started).total_seconds() if started else None,
        detail=scrubbed(reason)[:2000],  # masked before it is cut
    )


def _after_transition(deploy: Deploy, to: DeployStatus) -> None:
    """Tell the world: the pages, GitHub's deployment status, the drift between environments, hosts that came
    meanwhile (Slack's message version moved with the state itself)."""
    generations.bump(generations.SERVICES)
    # Hosts the catalog added while it ran (it did not know them) get the release that runs there; a join that
    # failed does not ask again (its records say the host is behind, not new).
    asks = to in DeployStatus.finished() and (not deploy.is_join or to == DeployStatus.JOINED)
    joining = asks and bool(newcomers(deploy.environment))
    if publishing_enabled(deploy):
        queue.enqueue_after_commit(queue.PUBLISH_GITHUB_DEPLOYMENT, deploy.pk)
    if to in DeployStatus.live():  # what runs there changed
        queue.enqueue_after_commit(queue.REFRESH_DRIFT, deploy.environment.service_id)
    if joining:
        queue.enqueue_after_commit(queue.HOSTS_JOINED, deploy.environment_id)


def _lock_after(deploy: Deploy, to: DeployStatus, lock: str) -> None:
    """After a rollback (or one that failed) nobody deploys again until a person has looked and unlocked."""
    if lock:
        environment_lock(deploy.environment, user=None, reason=lock)
        return
    if to == DeployStatus.SUCCEEDED and deploy.is_rollback:
        who = deploy.requested_by.get_username() if deploy.requested_by else "Gantry"
        environment_lock(
            deploy.environment,
            user=None,
            reason=f"{who} rolled back to {deploy.ref} ({deploy.sha[:8]}) in deploy #{deploy.pk}; unlock once fixed",
        )
    if to == DeployStatus.ROLLED_BACK:
        # Something is wrong with what was shipped: nobody deploys again until a person has looked.
        environment_lock(
            deploy.environment,
            user=None,
            reason=f"deploy #{deploy.pk} of {deploy.ref} ({deploy.sha[:8]}) was rolled back; unlock when understood",
        )


def deploy_claim(*, deploy_id: int, worker: str = "") -> Deploy | None:
    """Take a queued deploy for running; None when it is not (any longer) queued.

    This, not the broker, decides whether work runs: a message delivered twice
    finds the deploy already running or finished and does nothing. `worker` (who claims it) is kept on it.
    """
    deploy = Deploy.objects.select_related("environment__service").filter(pk=deploy_id).first()
    if deploy is None:
        logger.warning("deploy #%s does not exist; message ignored", deploy_id)
        return None
    if deploy_transition(deploy, to=DeployStatus.RUNNING):
        if worker:
            Deploy.objects.filter(pk=deploy.pk).update(worker=worker[:200])
            deploy.worker = worker[:200]
        return deploy
    deploy.refresh_from_db(fields=["status"])
    DeployLog.objects.create(
        deploy=deploy,
        at=timezone.now(),
        level="warning",
        message=f"another delivery of this deploy's job arrived while it was {deploy.status}; ignored it",
    )
    return None
