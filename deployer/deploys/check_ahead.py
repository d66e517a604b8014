"""A migration check ahead of any deploy: a plan page opened by someone allowed to deploy asks for it, a
worker of the deploys queue runs it (a build on the builder that packs nothing, then the check), and every
later plan and deploy of the sha reads its result (migration_check.py)."""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path

from django.contrib.auth.models import User
from django.utils import timezone

from deployer import queue
from deployer.deploys.builder import BuildJob, build_run, builder_target
from deployer.deploys.fleet import connect
from deployer.deploys.lint_run import Checked
from deployer.deploys.migration_check import check_inputs, check_recorded, check_spec, lint_for
from deployer.environments.access import access_for
from deployer.errors import StepFailed
from deployer.integrations import git
from deployer.models import Environment, MigrationCheck

logger = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=5)  # a check that could not run is asked again no sooner
IN_FLIGHT_MAX = 3  # checks of one service asked of the workers at once


def checkable(environment: Environment) -> bool:
    return bool(check_spec(environment).get("recipe")) and (
        environment.build_mode == "builder" and environment.builder_isolation != "account"
    )


def check_request(environment: Environment, sha: str, user: User | None) -> MigrationCheck | None:
    """The check of `sha`, asked of a worker now if it never ran (or failed to run a while ago) and `user`
    may deploy here; None when nobody asked and this person may not."""
    if not checkable(environment):
        return None
    inputs = check_inputs(environment)
    row = MigrationCheck.objects.filter(service=environment.service, sha=sha, inputs=inputs).first()
    stale = row is not None and bool(row.error) and row.finished_at is not None
    if stale and row is not None and row.finished_at is not None and timezone.now() - row.finished_at < RETRY_AFTER:
        stale = False
    if (row is not None and not stale) or user is None or not access_for(user).can_deploy(environment):
        return row
    if MigrationCheck.objects.filter(service=environment.service, finished_at__isnull=True).count() >= IN_FLIGHT_MAX:
        return row  # builds that only check never crowd out the deploys they share a queue with
    if row is None:
        row, created = MigrationCheck.objects.get_or_create(
            service=environment.service,
            sha=sha,
            inputs=inputs,
            defaults={"requested_at": timezone.now(), "requested_by": user},
        )
        if not created:
            return row
    else:  # one asker wins the retry (two plan polls at once enqueue it once)
        won = MigrationCheck.objects.filter(pk=row.pk, finished_at=row.finished_at).update(
            finished_at=None, requested_at=timezone.now()
        )
        if not won:
            return MigrationCheck.objects.filter(pk=row.pk).first()
        row.finished_at = None
    queue.enqueue_after_commit(queue.CHECK_MIGRATIONS, row.pk, environment.pk)
    return row


def check_ahead(check_id: int, environment_id: int) -> None:
    """Run one asked-for check on the environment's builder; what stops it is recorded as its error."""
    row = MigrationCheck.objects.filter(pk=check_id).first()
    environment = Environment.objects.select_related("service").filter(pk=environment_id).first()
    if row is None or environment is None or row.finished_at is not None or not checkable(environment):
        return
    lint = lint_for(environment, row.sha)
    if lint is None:  # a deploy's build checked it meanwhile
        return
    log = logging.LoggerAdapter(logger, {"check": row.pk})
    service = environment.service
    job = BuildJob(environment, f"check-{row.pk}", row.sha[:12], row.sha)
    with tempfile.TemporaryDirectory(prefix="gantry-check-") as tmp:
        try:
            source = git.archive(service.name, service.repo_url, row.sha, Path(tmp) / "source.tar.gz")
            conn = connect(builder_target(environment))
            try:
                output = build_run(conn, job, source, log, lambda: None, lint=lint, pack=False)
            finally:
                conn.close()
        except (StepFailed, git.GitError) as exc:
            check_recorded(environment, row.sha, lint, [], f"could not build {row.sha[:12]} to check it: {exc}")
            return
    checked = output.checked or Checked([], "the check did not run")
    check_recorded(environment, row.sha, lint, checked.findings, checked.error)
