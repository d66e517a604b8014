"""The rules for asking for a deploy. Pages (and later the API and Slack) call
`deploy_request`; nothing here talks to a host, GitHub or the repository."""

from __future__ import annotations

from functools import partial

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.timesince import timesince

from deployer import tasks
from deployer.choices import DeployStatus
from deployer.errors import DeployConflict, DeployRefused
from deployer.models import Branch, Deploy, Environment
from deployer.refs import RefError, branch_name_check, is_full_sha


def deploy_request(*, environment: Environment, ref: str, user: AbstractBaseUser | None) -> Deploy:
    """Record a queued deploy of `ref` (its sha pinned now) and enqueue it after commit.

    Raises DeployRefused for a ref that cannot be deployed and DeployConflict
    (naming the running deploy) when the environment is busy.
    """
    sha = _resolve(environment, ref)
    previous_sha = (
        Deploy.objects.filter(environment=environment, status=DeployStatus.SUCCEEDED)
        .values_list("sha", flat=True)
        .first()
        or ""
    )
    try:
        with transaction.atomic():
            deploy = Deploy.objects.create(
                environment=environment, requested_by=user, ref=ref, sha=sha, previous_sha=previous_sha
            )
    except IntegrityError as exc:
        running = Deploy.objects.active().filter(environment=environment).select_related("requested_by").first()
        if running is None:
            raise
        raise DeployConflict(_busy_message(running), running) from exc
    # robust: the row is the record; if the broker is down it stays queued (the
    # page says it waits for a worker) instead of turning this request into a 500.
    transaction.on_commit(partial(tasks.run_deploy.delay, deploy.pk), robust=True)
    return deploy


def _resolve(environment: Environment, ref: str) -> str:
    if is_full_sha(ref):
        return ref
    try:
        branch_name_check(ref)
    except RefError as exc:
        raise DeployRefused(f"{exc}. Pick a branch from the list on the service page.") from exc
    sha = Branch.objects.filter(service_id=environment.service_id, name=ref).values_list("sha", flat=True).first()
    if sha is None:
        raise DeployRefused(
            f"{environment.service.name} has no branch {ref!r}. If it was just pushed, "
            "press Refresh branches on the service page and try again."
        )
    return sha


def _busy_message(running: Deploy) -> str:
    who = running.requested_by.get_username() if running.requested_by else "Gantry"
    return (
        f"{running.environment} is busy: deploy #{running.pk} of {running.ref} ({running.sha[:8]}), "
        f"started by {who} {timesince(running.created_at)} ago, is {running.status}. "
        "Wait for it to finish, then deploy again."
    )
