"""Schema-aware rollback: the migration files a deploy ships, and the schema changes a rollback goes back across.

A service names its migration files with globs (`migrations:` in the catalog;
`*` matches across directories); without the key, the layouts of the common
frameworks count (sources/changes.py); `migrations: []` turns it off. The
files a deploy ships come from the diff previous_sha..sha of the deploy
worker's mirror, recorded on the deploy. Going back to an earlier release across a
deploy that shipped migrations, or that ran post_release_command, means the
earlier code meets a schema it has never seen: the rollback then needs an
explicit confirmation, and records it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from deployer.choices import DeployStatus, DeployTrigger
from deployer.deploys.log import deploy_logger
from deployer.errors import DeployRefused
from deployer.integrations import git
from deployer.models import Deploy, Environment, Service
from deployer.sources.changes import migration_globs, migrations_in


def migrations_between(service: Service, base: str, head: str) -> list[dict[str, str]]:
    """The migration files that differ from `base` to `head` (GitError when the mirror lacks a commit)."""
    globs = migration_globs(service)
    if not globs or not base or base == head:
        return []
    return migrations_in(git.changed_files(service.name, base, head), globs)


def migrations_record(deploy: Deploy) -> None:
    """Keep the migration files this deploy ships (its page, and later rollbacks, read them)."""
    if deploy.is_rollback or not deploy.previous_sha:
        return
    try:
        found = migrations_between(deploy.environment.service, deploy.previous_sha, deploy.sha)
    except git.GitError as exc:
        deploy_logger(deploy.pk).warning("could not list the migration files shipped: %s", exc)
        return
    Deploy.objects.filter(pk=deploy.pk).update(migrations=found)
    if found:
        names = ", ".join(item["path"] for item in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        deploy_logger(deploy.pk).info("ships %d migration file(s): %s%s", len(found), names, more)


@dataclass(frozen=True)
class Crossed:
    """A deploy a rollback goes back across that changed the schema (or may have)."""

    deploy: Deploy
    migrations: list[dict[str, str]]
    post_release: bool

    def describe(self) -> str:
        parts = []
        if self.migrations:
            parts.append(f"shipped {', '.join(m['path'] for m in self.migrations[:5])}")
            if len(self.migrations) > 5:
                parts[-1] += f" and {len(self.migrations) - 5} more"
        if self.post_release:
            parts.append("ran post_release_command")
        return f"deploy #{self.deploy.pk} ({self.deploy.ref}, {self.deploy.sha[:8]}) {' and '.join(parts)}"


def rollback_crossing(environment: Environment, target: Deploy) -> list[Crossed]:
    """The deploys after `target` whose schema changes a rollback to it goes back across: they shipped
    migrations or ran post_release_command, and got far enough to apply them (live, their release phase
    began, or hosts switched before a rollback)."""
    after = (
        Deploy.objects.filter(environment=environment, pk__gt=target.pk)
        .exclude(trigger=DeployTrigger.ROLLBACK)
        .filter(Q(status__in=[*DeployStatus.live(), DeployStatus.ROLLED_BACK]) | Q(release_started_at__isnull=False))
        .order_by("pk")
    )
    return [
        Crossed(deploy, list(deploy.migrations or []), deploy.post_release_ran_at is not None)
        for deploy in after
        if deploy.migrations or deploy.post_release_ran_at is not None
    ]


class RollbackNeedsConfirmation(DeployRefused):
    """Rolling back across schema changes: allowed only when the person confirms it."""

    status_code = 409

    def __init__(self, target: Deploy, crossed: list[Crossed]) -> None:
        self.target = target
        self.crossed = crossed
        super().__init__(
            f"rolling back to deploy #{target.pk} goes back across schema changes: "
            f"{'; '.join(c.describe() for c in crossed)}. The release of deploy #{target.pk} may not work with "
            "the schema they made (expand/contract migrations keep it working). Confirm to roll back anyway: "
            'the rollback page asks, the API takes "force": true'
        )


def crossing_summary(crossed: list[Crossed]) -> str:
    """What a confirmed rollback records in its reason and audit entry."""
    return "; ".join(c.describe() for c in crossed)
