"""Asking for a deploy: of a branch or sha, a promotion, continuous delivery, a rollback. Pages, the API,
Slack, the CLI and continuous delivery all call these; the rules they pass are in rules.py. Nothing here
talks to a host, GitHub or the repository."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from deployer import queue
from deployer.choices import AuditAction, DeployStatus, DeployTrigger, HostStatus
from deployer.deploys.estimates import eta_seconds
from deployer.deploys.fleet import newcomers
from deployer.deploys.lifecycle import deploy_transition
from deployer.deploys.migration_check import BLANKET, migrations_unsafe
from deployer.deploys.rules import NO_OPTIONS, Ask, DeployOptions, hosts_skipped, rules_check
from deployer.deploys.schema_changes import (
    RollbackNeedsConfirmation,
    crossing_summary,
    rollback_crossing,
    schema_behind,
)
from deployer.environments.access import access_for, system_user
from deployer.environments.audit import audit_record
from deployer.environments.leases import lease_claim
from deployer.errors import DeployConflict, DeployRefused
from deployer.lib import generations
from deployer.lib.humanize import ago
from deployer.lib.refs import RefError, branch_name_check, is_full_sha
from deployer.lib.text import one_line
from deployer.models import Branch, Deploy, DeployHost, DeployLog, Environment, Tag
from deployer.notify import outbox


def deploy_request(
    *, environment: Environment, ref: str, user: User | None, options: DeployOptions = NO_OPTIONS
) -> Deploy:
    """Record a deploy of `ref` (its sha pinned now): queued, or awaiting approval.

    Raises PermissionRefused (403), Locked (423), DeployRefused (400) for a ref
    that cannot be deployed, a closed gate or an unticked checklist, and
    DeployConflict (409, naming the running deploy) when the environment is busy.
    """
    return _deploy_create(environment, ref=ref, sha=resolve_ref(environment, ref), user=user, options=options)


def deploy_promote(*, environment: Environment, user: User | None, options: DeployOptions = NO_OPTIONS) -> Deploy:
    """Deploy to `environment` exactly what runs in the environment before it (test → prod)."""
    running = promotion_of(environment)
    return _deploy_create(
        environment, ref=running.ref, sha=running.sha, user=user, trigger=DeployTrigger.PROMOTE, options=options
    )


def promotion_of(environment: Environment) -> Deploy:
    """The deploy a promotion to `environment` would ship again: what runs in the environment before it.
    DeployRefused says why there is nothing to promote."""
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
    if running.status == DeployStatus.TESTS_FAILED:
        raise DeployRefused(
            f"{source.name} runs {running.ref} ({running.sha[:8]}), whose post-deploy API tests failed "
            f"(deploy #{running.pk}); fix it there before promoting it"
        )
    if (current := current_deploy(environment)) and current.sha == running.sha:
        raise DeployRefused(f"{environment.name} already runs {running.sha[:8]}, like {source.name}")
    return running


def deploy_continuous(*, environment: Environment, branch: Branch | Tag) -> Deploy:
    """Deploy a followed branch's head, or the newest tag that matches `follow_tags`, as Gantry's system user
    (continuous delivery)."""
    return _deploy_create(
        environment, ref=branch.name, sha=branch.sha, user=system_user(), trigger=DeployTrigger.CONTINUOUS
    )


def current_deploy(environment: Environment) -> Deploy | None:
    """The last deploy whose release went live: what runs there now (even if its API tests failed)."""
    return Deploy.objects.filter(environment=environment, status__in=DeployStatus.live()).order_by("-id").first()


def deploy_join(environment: Environment) -> Deploy | None:
    """Hosts the catalog added to an environment get the release that runs there now: a deploy of kind `join`
    asked by Gantry (staged, switched, health-checked, out of the load balancer until healthy). A lock does not
    stop it: a lock stops new releases, and a join ships none. None when there is nothing to join (nothing runs
    there, no host is new) or another deploy holds the environment (it reaches them; its end asks again)."""
    current = current_deploy(environment)
    new = newcomers(environment)
    if current is None or not new:
        return None
    origin = current.rollback_of or current
    names = ", ".join(str(host) for host in environment.hosts.filter(pk__in=new))
    try:
        with transaction.atomic():
            deploy = _insert(
                environment,
                requested_by=system_user(),
                ref=current.ref,
                sha=current.sha,
                previous_sha=current.sha,
                trigger=DeployTrigger.JOIN,
                rollback_of=origin,
                config_definitions=current.config_definitions,
                enqueued_at=timezone.now(),
                eta_seconds=eta_seconds(environment)[0],
            )
            detail = f"{names} join release {origin.release_name}: {current.ref} ({current.sha[:12]})"
            audit_record(AuditAction.DEPLOY_REQUESTED, actor=deploy.requested_by, deploy=deploy, detail=detail)
    except DeployConflict:
        return None
    hand_to_queue(deploy)
    generations.bump(generations.SERVICES)
    return deploy


def _deploy_create(
    environment: Environment,
    *,
    ref: str,
    sha: str,
    user: User | None,
    trigger: DeployTrigger = DeployTrigger.MANUAL,
    options: DeployOptions = NO_OPTIONS,
) -> Deploy:
    access = access_for(user)
    ask = Ask(environment, ref, sha, user, access, options)
    rules_check(ask)
    emergency, overridden = ask.emergency, ask.lock_overridden
    needs_approval = environment.require_approval and not emergency
    previous = current_deploy(environment)
    schema = _schema_confirmation(environment, ref, sha, previous, user, options)
    with transaction.atomic():
        deploy = _insert(
            environment,
            requested_by=user,
            ref=ref,
            sha=sha,
            previous_sha=previous.sha if previous else "",
            trigger=trigger,
            status=DeployStatus.AWAITING_APPROVAL if needs_approval else DeployStatus.QUEUED,
            enqueued_at=None if needs_approval else timezone.now(),
            emergency_reason=emergency,
            lock_overridden=overridden,
            freeze_overridden=ask.freeze_overridden,
            checklist=[] if access.is_system or emergency else list(environment.checklist),
            eta_seconds=eta_seconds(environment)[0],
            schema_confirmation=schema,
            skipped_hosts=hosts_skipped(ask),
            skip_reason=one_line(options.skip_reason, limit=500) if options.skip_hosts else "",
        )
        _audit_request(deploy, user, emergency, overridden, schema)
        if deploy.freeze_overridden:
            audit_record(AuditAction.FREEZE_OVERRIDDEN, actor=user, deploy=deploy, detail=deploy.freeze_overridden)
        if user is not None and not access.is_system:
            lease_claim(environment, user, ref, taken_over=ask.takes_over_lease)
    if needs_approval:
        outbox.story_changed(deploy)  # the team sees it wait for a second person
    else:
        hand_to_queue(deploy)
    generations.bump(generations.SERVICES)
    return deploy


def hand_to_queue(deploy: Deploy) -> None:
    """Send a queued deploy to a worker once its row is committed.

    If the task queue is unreachable the deploy is not lost and not an error:
    it stays queued, `queue_waiting_since` and a log line say it waits for the
    queue, and the reaper sends it as soon as the queue is back. Callers that
    answer a person read `deploy.waits_for_queue` and say so
    (queue_waiting_message).
    """

    def send() -> None:
        try:
            queue.enqueue(queue.RUN_DEPLOY, deploy.pk)
        except queue.QueueUnavailable as exc:
            now = timezone.now()
            Deploy.objects.filter(pk=deploy.pk, status=DeployStatus.QUEUED).update(queue_waiting_since=now)
            deploy.queue_waiting_since = now
            DeployLog.objects.create(
                deploy=deploy,
                at=now,
                level="warning",
                message=f"{exc}: the deploy waits for the queue and starts as soon as it is back",
            )

    transaction.on_commit(send)


def queue_waiting_message(deploy: Deploy) -> str:
    """What a person is told when their deploy could not be handed to the queue."""
    return (
        f"deploy #{deploy.pk} is recorded, but the task queue is unreachable: it waits for the queue and starts "
        "as soon as the queue is back (its page shows it); nothing else needs doing"
    )


def _insert(environment: Environment, **fields: object) -> Deploy:
    """Write the deploy row; the database refuses a second active deploy per environment (→ 409)."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return Deploy.objects.create(environment=environment, **fields)
        except IntegrityError as exc:
            running = Deploy.objects.active().filter(environment=environment).select_related("requested_by").first()
            if running is None:
                raise
            if attempt == 1 and fields.get("trigger") != DeployTrigger.JOIN and _join_superseded(running):
                continue
            raise DeployConflict(_busy_message(running), running) from exc
    raise AssertionError("unreachable")


def _join_superseded(running: Deploy) -> bool:
    """A join still waiting for a worker gives way to a person's deploy: that one reaches the new hosts too."""
    return running.is_join and deploy_transition(
        running,
        to=DeployStatus.CANCELLED,
        reason="superseded: a deploy asked for meanwhile brings the new hosts up",
        only_from={DeployStatus.QUEUED},
    )


def deploy_rollback(
    *, environment: Environment, user: User, to: Deploy | None = None, confirm_schema: bool = False
) -> Deploy:
    """Go back to an earlier release the hosts still keep (default: the one before what runs now).

    Across a deploy that shipped migrations or ran post_release_command it is refused
    (RollbackNeedsConfirmation, listing them) unless `confirm_schema`; then the
    confirmation is recorded in the rollback's reason and the audit log.

    A rollback is a deploy of kind `rollback`: same log, checks and audit, but
    nothing is built and neither gates, checklist nor approval stop it; a lock
    does not either (going back to a known-good release is what a lock is for).
    A successful rollback locks the environment until someone unlocks it.
    """
    access_for(user).require_deploy(environment)
    candidates = rollback_candidates(environment)
    if not candidates:
        raise DeployRefused(f"{environment} has no earlier release kept on its hosts to roll back to")
    target = candidates[0] if to is None else next((c for c in candidates if c.pk == to.pk), None)
    if target is None:
        kept = ", ".join(f"#{c.pk} ({c.sha[:8]})" for c in candidates)
        raise DeployRefused(
            f"the release of deploy #{to.pk if to else '?'} is not one the hosts keep (newest "
            f"{environment.releases_to_keep}); roll back to one of: {kept}"
        )
    crossed = rollback_crossing(environment, target)
    if crossed and not confirm_schema:
        raise RollbackNeedsConfirmation(target, crossed)
    confirmation = (
        f"rolled back across schema changes, confirmed by {user.get_username()}: {crossing_summary(crossed)}"
        if crossed
        else ""
    )
    current = current_deploy(environment)
    unreached = _never_reached(environment, target)
    with transaction.atomic():
        deploy = _insert(
            environment,
            requested_by=user,
            ref=target.ref,
            sha=target.sha,
            previous_sha=current.sha if current else "",
            trigger=DeployTrigger.ROLLBACK,
            skipped_hosts=unreached,
            skip_reason=f"release {target.pk} never reached it (skipped, or new since)" if unreached else "",
            rollback_of=target,
            # A rollback writes no config: the hosts keep what the deploy it replaces wrote (the next plan
            # compares the catalog with that, not with nothing).
            config_definitions=current.config_definitions if current else {},
            enqueued_at=timezone.now(),
            eta_seconds=eta_seconds(environment)[0],
            rollback_confirmation=confirmation,
        )
        detail = f"to deploy #{target.pk}: {target.ref} ({target.sha[:12]})" + (f"; {confirmation}" if crossed else "")
        audit_record(AuditAction.ROLLBACK_REQUESTED, actor=user, deploy=deploy, detail=detail)
    hand_to_queue(deploy)
    generations.bump(generations.SERVICES)
    return deploy


def _never_reached(environment: Environment, target: Deploy) -> list[str]:
    """The environment's hosts that do not keep `target`'s release: it skipped them, or they came since. A
    rollback to it goes on without them (they stay on what they run)."""
    reached = set(
        target.hosts.exclude(status=HostStatus.SKIPPED).filter(host__isnull=False).values_list("host_id", flat=True)
    )
    joined = DeployHost.objects.filter(
        deploy__trigger=DeployTrigger.JOIN, deploy__rollback_of=target, status=HostStatus.LIVE, host__isnull=False
    )
    reached |= set(joined.values_list("host_id", flat=True))  # hosts that got its release in a join have it too
    return [str(host) for host in environment.hosts.all() if host.pk not in reached]


def rollback_candidates(environment: Environment) -> list[Deploy]:
    """Deploys whose release the hosts still keep, newest first, without the one running now.

    Pruning keeps the releases of the newest `releases_to_keep` live deploys
    (a rollback's release is the earlier deploy's), so those are the candidates;
    a release whose API tests failed is kept but never offered.
    """
    live = list(
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.live())
        .select_related("rollback_of__requested_by", "requested_by")
        .order_by("-id")[: environment.releases_to_keep]
    )
    seen: set[str] = set()
    candidates = []
    for deploy in live:
        origin = deploy.rollback_of or deploy
        if seen and origin.release_name not in seen and origin.status == DeployStatus.SUCCEEDED:
            candidates.append(origin)  # the first one is what runs now
        seen.add(origin.release_name)
    return candidates


def _schema_confirmation(
    environment: Environment, ref: str, sha: str, current: Deploy | None, user: User | None, options: DeployOptions
) -> str:
    """What the person confirmed about migrations the target lacks (kept on the deploy and audited), or ""."""
    if not options.confirm_schema:
        return ""
    who = user.get_username() if user is not None else "gantry"
    behind = schema_behind(environment, ref, sha, current)
    unsafe = migrations_unsafe(environment, sha, current)
    if behind is None and unsafe is None:  # not listed yet (or the API's force up front): the worker checks
        return f"{who} confirmed deploying {ref} even if it lacks migrations applied in {environment.name} {BLANKET}"
    return f"{who} confirmed: " + "; ".join(
        said for said in (behind.lacking_summary if behind else "", unsafe.summary if unsafe else "") if said
    )


def _audit_request(deploy: Deploy, user: User | None, emergency: str, overridden: str, schema: str = "") -> None:
    what = f"{deploy.ref} ({deploy.sha[:12]})" + (f"; {schema}" if schema else "")
    if deploy.skipped_hosts:
        what += f"; without {', '.join(deploy.skipped_hosts)}: {deploy.skip_reason}"
    if emergency:
        audit_record(AuditAction.EMERGENCY_DEPLOY, actor=user, deploy=deploy, detail=f"{what}: {emergency}")
    else:
        audit_record(AuditAction.DEPLOY_REQUESTED, actor=user, deploy=deploy, detail=what)
    if overridden:
        audit_record(AuditAction.LOCK_OVERRIDDEN, actor=user, deploy=deploy, detail=overridden)


def resolve_ref(environment: Environment, ref: str) -> str:
    """The sha `ref` names now; DeployRefused (with what to do) when it names nothing deployable."""
    if is_full_sha(ref):
        return ref
    try:
        branch_name_check(ref)
    except RefError as exc:
        raise DeployRefused(f"{exc}. Pick a branch or a tag from the lists on the service page.") from exc
    sha = Branch.objects.filter(service_id=environment.service_id, name=ref).values_list("sha", flat=True).first()
    tagged = Tag.objects.filter(service_id=environment.service_id, name=ref).values_list("sha", flat=True).first()
    if sha is not None and tagged is not None and sha != tagged:
        # git would pick one silently (and warn); a deploy must not ship the other by surprise.
        raise DeployRefused(
            f"{ref!r} is both a branch ({sha[:12]}) and a tag ({tagged[:12]}) of {environment.service.name}; "
            "deploy the full sha you mean"
        )
    if sha is None and tagged is None:
        raise DeployRefused(
            f"{environment.service.name} has no branch {ref!r} (nor a tag). If it was just pushed, "
            "press Refresh branches on the service page and try again."
        )
    return sha or str(tagged)


def _busy_message(running: Deploy) -> str:
    if running.is_join:
        return (
            f"{running.environment} is busy: new hosts are joining release {running.release_name} (deploy "
            f"#{running.pk}, asked by Gantry when the catalog added them); it usually takes a minute. Deploy again "
            "when it has finished."
        )
    who = running.requested_by.get_username() if running.requested_by else "Gantry"
    waiting = " (waiting for the task queue)" if running.waits_for_queue else ""
    return (
        f"{running.environment} is busy: deploy #{running.pk} of {running.ref} ({running.sha[:8]}), "
        f"started by {who} {ago(running.created_at)}, is {running.status}{waiting}. "
        "Wait for it to finish, then deploy again."
    )
