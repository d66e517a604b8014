"""Schema-aware deploys: the migration files a deploy ships, the schema changes a rollback goes back across,
and a deploy of code that lacks migrations the environment has applied (an older branch, a promotion, a sha,
a revert followed by continuous delivery) — which asks like a rollback across them.

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

from django.db.models import Max, Q

from deployer.choices import DeployStatus, DeployTrigger
from deployer.deploys.log import deploy_logger
from deployer.errors import DeployRefused
from deployer.integrations import git
from deployer.models import ChangeSet, Deploy, Environment, Service
from deployer.sources.changes import migration_globs, migrations_in


def migrations_between(service: Service, base: str, head: str) -> list[dict[str, str]]:
    """The migration files that differ from `base` to `head` (GitError when the mirror lacks a commit)."""
    globs = migration_globs(service)
    if not globs or not base or base == head:
        return []
    return migrations_in(git.changed_files(service.name, base, head, globs=globs), globs)


def migrations_record(deploy: Deploy) -> list[dict[str, str]]:
    """Keep the migration files this deploy ships (its page, and later rollbacks, read them); return them."""
    if deploy.is_rollback or not deploy.previous_sha:
        return []
    try:
        found = migrations_between(deploy.environment.service, deploy.previous_sha, deploy.sha)
    except git.GitError as exc:
        deploy_logger(deploy.pk).warning("could not list the migration files shipped: %s", exc)
        return []
    Deploy.objects.filter(pk=deploy.pk).update(migrations=found)
    deploy.migrations = found
    if found:
        names = ", ".join(item["path"] for item in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        deploy_logger(deploy.pk).info("ships %d migration file(s): %s%s", len(found), names, more)
    return found


def schema_refusal(deploy: Deploy, migrations: list[dict[str, str]]) -> str:
    """Why the worker does not deploy code lacking migrations the environment has (unless confirmed), or "":
    files the previous release had that this one lacks, and files an earlier deploy here applied (after a
    rollback, what runs may lack them too) that this commit does not have."""
    lacking = lacking_in(migrations) + _applied_missing(deploy)
    lacking = list(dict.fromkeys(lacking))
    if not lacking:
        return ""
    if deploy.schema_confirmation:
        deploy_logger(deploy.pk).warning(
            "lacks migration files the previous release had (%s); deploying as confirmed: %s",
            ", ".join(lacking[:10]),
            deploy.schema_confirmation,
        )
        return ""
    shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
    return (
        f"not deployed: {deploy.ref} lacks migration files that {deploy.environment.name} ran until now ({shown}); "
        "their changes are applied to the database and older code may fail against it. Nothing changed on any "
        'host. To deploy it anyway, confirm on its plan page or send "force": true to the API'
    )


def _applied_missing(deploy: Deploy) -> list[str]:
    environment = deploy.environment
    # Once a person confirmed going without what was applied so far (and that deploy went live), those files
    # are not asked about again: only migrations applied after it count.
    waived = (
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.live())
        .exclude(schema_confirmation="")
        .aggregate(last=Max("pk"))["last"]
        or 0
    )
    applied = [path for path, pk in applied_here(environment).items() if pk > waived]
    if not applied:
        return []
    try:
        present = git.paths_at(deploy.environment.service.name, deploy.sha)
    except git.GitError as exc:  # cannot tell: say so, and let the D-list above decide
        deploy_logger(deploy.pk).warning("could not list the files of %s: %s", deploy.sha[:12], exc)
        return []
    return sorted(path for path in applied if path not in present)


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


def applied_here(environment: Environment) -> dict[str, int]:
    """Each migration file a deploy here added and got far enough to apply (live, rolled back after, or its
    release phase began), by path: the last such deploy's id. A later deploy of code without the file does
    not take it back out of the database, so it stays."""
    rows = (
        Deploy.objects.filter(environment=environment)
        .exclude(trigger=DeployTrigger.ROLLBACK)
        .filter(Q(status__in=[*DeployStatus.live(), DeployStatus.ROLLED_BACK]) | Q(release_started_at__isnull=False))
        .order_by("pk")
        .values_list("pk", "migrations")
    )
    applied: dict[str, int] = {}
    for pk, migrations in rows:
        for item in migrations or []:
            if item.get("change") == "A":
                applied[item["path"]] = pk
    return applied


def migrations_described(environment: Environment, migrations: list[dict[str, str]]) -> list[dict[str, str]]:
    """The plan's migration files, each new one that an earlier deploy here already applied marked with it
    (a branch deployed again after a rollback: the release phase finds it applied and changes nothing)."""
    if not migrations:
        return []
    applied = applied_here(environment)
    return [
        {**item, "applied_by": str(applied[item["path"]])}
        if item.get("change") == "A" and item["path"] in applied
        else item
        for item in migrations
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


class SchemaBehind(DeployRefused):
    """A deploy of code that lacks migration files what runs there has (so the database has them applied):
    allowed only when the person confirms it, like a rollback across them."""

    status_code = 409

    def __init__(self, environment: Environment, ref: str, lacking: list[str], current: Deploy) -> None:
        self.lacking = lacking
        shown = ", ".join(lacking[:5]) + (f" and {len(lacking) - 5} more" if len(lacking) > 5 else "")
        self.lacking_summary = (
            f"{ref} lacks migration files that {environment.name} runs now ({shown}, in deploy #{current.pk}, "
            f"{current.ref})"
        )
        super().__init__(
            f"{self.lacking_summary}: their changes are applied to the database, and code written before them may "
            "fail against it (writes, a NOT NULL column it does not know). Confirm to deploy anyway: the plan page "
            'asks, the API takes "force": true'
        )


def lacking_in(migrations: list[dict[str, str]]) -> list[str]:
    """The migration files a change (from what runs to the target) deletes: the target lacks them."""
    return [item["path"] for item in migrations if item.get("change") == "D"]


def schema_behind(environment: Environment, ref: str, sha: str, current: Deploy | None) -> SchemaBehind | None:
    """What the request can know without git: the change set from what runs to `sha`, once a worker listed
    it (the deploy's worker checks again with the repository in hand, so an unlisted one is still caught)."""
    if current is None or current.sha == sha:
        return None
    row = ChangeSet.objects.filter(
        service=environment.service, base=current.sha, head=sha, computed_at__isnull=False, error=""
    ).first()
    lacking = lacking_in(list(row.migrations or [])) if row else []
    return SchemaBehind(environment, ref, lacking, current) if lacking else None
