"""The rules for asking for a deploy. Pages, the continuous-delivery check (and
later the API and Slack) call these; nothing here talks to a host, GitHub or
the repository."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.timesince import timesince

from deployer import pagecache, queue
from deployer.builds import latest_builds
from deployer.choices import DeployStatus, DeployTrigger
from deployer.errors import DeployConflict, DeployRefused
from deployer.gates import deploy_gate
from deployer.lifecycle import deploy_transition
from deployer.models import Branch, Deploy, DeployLog, Environment
from deployer.refs import RefError, branch_name_check, is_full_sha

SYSTEM_USERNAME = "gantry"


def deploy_request(*, environment: Environment, ref: str, user: AbstractBaseUser | None) -> Deploy:
    """Record a queued deploy of `ref` (its sha pinned now) and enqueue it after commit.

    Raises DeployRefused for a ref that cannot be deployed or a closed gate, and
    DeployConflict (naming the running deploy) when the environment is busy.
    """
    return _deploy_create(environment, ref=ref, sha=_resolve(environment, ref), user=user)


def deploy_promote(*, environment: Environment, user: AbstractBaseUser | None) -> Deploy:
    """Deploy to `environment` exactly what runs in the environment before it (test → prod)."""
    source = (
        Environment.objects.filter(service_id=environment.service_id, position__lt=environment.position)
        .order_by("-position")
        .first()
    )
    if source is None:
        raise DeployRefused(f"{environment} is the first environment; there is nothing to promote from")
    running = current_deploy(source)
    if running is None:
        raise DeployRefused(f"nothing runs in {source.name} yet; deploy there first")
    if (current := current_deploy(environment)) and current.sha == running.sha:
        raise DeployRefused(f"{environment.name} already runs {running.sha[:8]}, like {source.name}")
    return _deploy_create(environment, ref=running.ref, sha=running.sha, user=user, trigger=DeployTrigger.PROMOTE)


def deploy_continuous(*, environment: Environment, branch: Branch) -> Deploy:
    """Deploy a followed branch's head as Gantry's system user (continuous delivery)."""
    return _deploy_create(
        environment, ref=branch.name, sha=branch.sha, user=system_user(), trigger=DeployTrigger.CONTINUOUS
    )


def deploy_cancel(*, deploy: Deploy, user: AbstractBaseUser) -> Deploy:
    """Cancel a deploy: at once if it has not started; between batches if it runs.

    A running deploy is never killed: the hosts in flight finish and every host
    stays on a complete release.
    """
    who = user.get_username()
    if deploy_transition(
        deploy,
        to=DeployStatus.CANCELLED,
        reason=f"cancelled by {who} before it started",
        only_from={DeployStatus.QUEUED},
    ):
        return deploy
    requested = Deploy.objects.filter(
        pk=deploy.pk, status=DeployStatus.RUNNING, cancel_requested_at__isnull=True
    ).update(cancel_requested_at=timezone.now(), cancelled_by=user)
    deploy.refresh_from_db()
    if requested:
        DeployLog.objects.create(
            deploy=deploy,
            at=timezone.now(),
            level="warning",
            message=f"cancel requested by {who}: stopping after the hosts in flight",
        )
    elif deploy.status in DeployStatus.finished():
        raise DeployRefused(f"deploy #{deploy.pk} has already ended ({deploy.status}); there is nothing to cancel")
    return deploy


def current_deploy(environment: Environment) -> Deploy | None:
    """The last deploy that succeeded: what runs there now."""
    return Deploy.objects.filter(environment=environment, status=DeployStatus.SUCCEEDED).order_by("-id").first()


def system_user() -> AbstractBaseUser:
    """The user Gantry acts as on its own (continuous delivery); it cannot sign in."""
    user, created = get_user_model().objects.get_or_create(username=SYSTEM_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _deploy_create(
    environment: Environment,
    *,
    ref: str,
    sha: str,
    user: AbstractBaseUser | None,
    trigger: DeployTrigger = DeployTrigger.MANUAL,
) -> Deploy:
    build = latest_builds({environment.service_id}, {sha}).get((environment.service_id, sha))
    gate = deploy_gate(environment, sha, build)
    if not gate.open:
        raise DeployRefused(gate.reason)
    previous = current_deploy(environment)
    try:
        with transaction.atomic():
            deploy = Deploy.objects.create(
                environment=environment,
                requested_by=user,
                ref=ref,
                sha=sha,
                previous_sha=previous.sha if previous else "",
                trigger=trigger,
                enqueued_at=timezone.now(),
            )
    except IntegrityError as exc:
        running = Deploy.objects.active().filter(environment=environment).select_related("requested_by").first()
        if running is None:
            raise
        raise DeployConflict(_busy_message(running), running) from exc
    # If the broker is down the deploy stays queued (the page says it waits for a worker).
    queue.enqueue_after_commit(queue.RUN_DEPLOY, deploy.pk)
    pagecache.matrix_changed()
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
