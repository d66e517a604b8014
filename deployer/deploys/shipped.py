"""The commits a deploy shipped: from what ran before (previous_sha) to its sha.

Read from the repository mirror the worker deploys from, once, before the
rollout, and kept (DeployCommit): the deploy page and the Slack story show them
on any machine, and lead time for changes is measured from their commit times.
"""

from __future__ import annotations

from django.db import transaction

from deployer.deploys.log import deploy_logger
from deployer.integrations import git
from deployer.models import Deploy, DeployCommit

KEEP = 250  # the newest commits kept per deploy; the total is always recorded


def shipped_record(deploy: Deploy) -> None:
    """Record the deploy's commits; a missing commit or a git failure only warns (the deploy is fine)."""
    if not deploy.previous_sha or deploy.is_rollback or deploy.is_join or deploy.commits.exists():
        return
    if deploy.previous_sha == deploy.sha:
        Deploy.objects.filter(pk=deploy.pk).update(commits_total=0)
        return
    try:
        total, commits = git.commit_log(deploy.environment.service.name, deploy.previous_sha, deploy.sha, limit=KEEP)
    except git.GitError as exc:
        deploy_logger(deploy.pk).warning("could not list the commits shipped: %s", exc)
        return
    with transaction.atomic():
        DeployCommit.objects.bulk_create(
            [
                DeployCommit(
                    deploy=deploy,
                    position=position,
                    sha=commit.sha,
                    author=commit.author[:200],
                    email=commit.email[:254],
                    subject=commit.subject[:300],
                    committed_at=commit.committed_at,
                )
                for position, commit in enumerate(commits)
            ],
            ignore_conflicts=True,
        )
        Deploy.objects.filter(pk=deploy.pk).update(commits_total=total)
    deploy.commits_total = total
