"""What a deploy would change: the commits and migration files between what runs and what would run.

Git mirrors live with the workers, never on the web machine. So the plan page
asks for a change set (a row, and its id on the sync queue) and shows it as soon
as a worker has stored it: the page polls for it, as the deploy page polls its
log. A worker claims the row before computing it, so two deliveries compute it
once; a claim older than RECLAIM_AFTER is a worker that died, and the next ask
hands it out again. An answer never changes (a range of commits is what it is),
except when the service's migration globs change.

A service names its migration files with globs (`migrations:` in the catalog;
`*` matches across directories); without the key, the layouts of the common
frameworks count; `migrations: []` turns it off.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from deployer import queue
from deployer.integrations import git
from deployer.models import Branch, Build, ChangeSet, Deploy, Service

DEFAULT_MIGRATIONS = (
    "*migrations/*.py",  # Django, Alembic (migrations/versions/), Flask-Migrate
    "*alembic/versions/*.py",
    "db/migrate/*.rb",  # Rails
    "*migrations/*.sql",  # Flyway-style SQL, goose, golang-migrate, Prisma (prisma/migrations/<name>/migration.sql)
    "*db/migration/*.sql",
    "*migrations/*.js",  # Knex, Sequelize, node-pg-migrate
    "*migrations/*.ts",
)
NOT_MIGRATIONS = ("__init__.py",)
MIGRATIONS_KEPT = 100  # migration files kept per deploy or change set
COMMITS_SHOWN = 50
RECLAIM_AFTER = timedelta(seconds=30)  # a claimed change set not stored by then: its worker died
WAIT_AT_MOST = timedelta(seconds=20)  # how long a page waits for a worker before it says none answered
NEW_PER_MINUTE = 20  # new change sets one person may ask for in a minute (each is a git fetch on a worker)


def _asked_lately(user: User, now: datetime) -> int:
    return ChangeSet.objects.filter(requested_by=user, requested_at__gte=now - timedelta(minutes=1)).count()


def migration_globs(service: Service) -> list[str]:
    return list(DEFAULT_MIGRATIONS) if service.migrations is None else list(service.migrations)


def migrations_in(changes: list[tuple[str, str]], globs: list[str]) -> list[dict[str, str]]:
    """The changed files that are migrations: [{"change": "A", "path": ...}], at most MIGRATIONS_KEPT."""
    found = [
        {"change": change, "path": path}
        for change, path in changes
        if path.rsplit("/", 1)[-1] not in NOT_MIGRATIONS and any(fnmatch.fnmatchcase(path, g) for g in globs)
    ]
    return found[:MIGRATIONS_KEPT]


class NotComputed(Exception):
    """No change set is asked of the workers for this range; the message says why (for the page)."""


def sha_known(service: Service, sha: str) -> bool:
    """Whether Gantry has seen `sha` for `service`: a branch head, a Jenkins build, or a deploy."""
    return (
        Branch.objects.filter(service=service, sha=sha).exists()
        or Deploy.objects.filter(environment__service=service, sha=sha).exists()
        or Build.objects.filter(service=service, sha=sha).exists()
    )


def change_set(*, service: Service, base: str, head: str, user: User | None = None) -> ChangeSet:
    """The change set base..head: the stored one, or a new one a worker is asked to compute (after the
    current transaction commits). Asked again when its worker died, or when the migration globs changed.

    Each new one costs a worker a `git fetch`, so it is asked only for a commit Gantry knows, and at most
    NEW_PER_MINUTE times a minute for one person; NotComputed says so otherwise."""
    now = timezone.now()
    globs = migration_globs(service)
    row = ChangeSet.objects.filter(service=service, base=base, head=head).first()
    if row is None:
        if not sha_known(service, head):
            raise NotComputed(
                "Gantry has not seen this commit (no branch head, build or deploy of it), so no worker fetches "
                "it to list what it changes; the deploy itself will fetch it"
            )
        if user is not None and _asked_lately(user, now) >= NEW_PER_MINUTE:
            raise NotComputed(
                f"you asked for {NEW_PER_MINUTE} new commit lists within a minute; reload the page in a minute"
            )
    row, created = ChangeSet.objects.get_or_create(
        service=service, base=base, head=head, defaults={"globs": globs, "requested_at": now, "requested_by": user}
    )
    if created:
        queue.enqueue_after_commit(queue.COMPUTE_CHANGES, row.pk)
        return row
    if row.computed_at is not None and row.globs != globs:
        again = {"computed_at": None, "claimed_at": None, "globs": globs, "requested_at": now}
    elif row.computed_at is None and row.requested_at < now - WAIT_AT_MOST:
        again = {"requested_at": now}
    else:
        return row
    # One re-ask per change of state, however many pages poll at once.
    if ChangeSet.objects.filter(pk=row.pk, requested_at=row.requested_at).update(**again):
        queue.enqueue_after_commit(queue.COMPUTE_CHANGES, row.pk)
        row.refresh_from_db()
    return row


def waited_too_long(row: ChangeSet) -> bool:
    return row.computed_at is None and row.requested_at < timezone.now() - WAIT_AT_MOST


def change_set_compute(*, change_set_id: int) -> None:
    """On a worker: claim the change set, read the commits and changed files from the mirror (fetching the
    commits it lacks), store them, or store why it could not."""
    now = timezone.now()
    claimed = (
        ChangeSet.objects.filter(pk=change_set_id, computed_at__isnull=True)
        .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - RECLAIM_AFTER))
        .update(claimed_at=now)
    )
    if not claimed:
        return  # done already, or another worker is on it
    row = ChangeSet.objects.select_related("service").get(pk=change_set_id)
    ChangeSet.objects.filter(pk=row.pk).update(computed_at=timezone.now(), **_computed(row))


def _computed(row: ChangeSet) -> dict[str, object]:
    service = row.service
    try:
        git.commits_ensure(service.name, service.repo_url, row.base, row.head)
        ahead, commits = git.commit_log(service.name, row.base, row.head, limit=COMMITS_SHOWN)
        behind, _ = git.commit_log(service.name, row.head, row.base, limit=0)
        changed = git.changed_files(service.name, row.base, row.head, globs=list(row.globs)) if row.globs else []
    except git.GitError as exc:
        return {"error": str(exc)[:1000]}
    return {
        "ahead": ahead,
        "behind": behind,
        "commits": [_commit_json(commit) for commit in commits],
        "migrations": migrations_in(changed, list(row.globs)),
        "error": "",
    }


def _commit_json(commit: git.CommitInfo) -> dict[str, str]:
    return {
        "sha": commit.sha,
        "author": commit.author[:200],
        "email": commit.email[:254],
        "committed_at": commit.committed_at.isoformat(),
        "subject": commit.subject[:300],
    }


def commits_of(row: ChangeSet) -> list[git.CommitInfo]:
    return [
        git.CommitInfo(
            sha=c["sha"],
            author=c["author"],
            committed_at=datetime.fromisoformat(c["committed_at"]),
            subject=c["subject"],
            email=c.get("email", ""),
        )
        for c in row.commits
    ]
