"""The catalog in git: workers follow GANTRY_CATALOG_REPO's branch (a push webhook from GitHub, and a poll
every GANTRY_CATALOG_SYNC_SECONDS) and apply its newest commit only when the whole catalog in it is valid.

An invalid commit changes nothing: the last good catalog stays live, and the commit's problems (file:line,
did-you-mean, as load_catalog says them) are kept for the catalog page and written to the audit log. Every
applied commit is an audit entry with its sha, who pushed it (GitHub's signed webhook says; a poll knows
only the commit) and what changed. Hosts it adds or removes follow the host lifecycle as a load does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployer.catalog.catalog_files import MAX_LISTED, Unreadable
from deployer.catalog.load import CATALOG_MAX_BYTES, ApplyReport, CatalogError, catalog_apply, catalog_from
from deployer.catalog.problems import Problem, entry_of
from deployer.choices import AuditAction
from deployer.environments.audit import audit_record
from deployer.integrations import git
from deployer.models import CatalogState, Service, Team
from deployer.notify import outbox
from deployer.notify.story import escape

PUSHER_UNKNOWN = "(pusher unknown: seen by the poll)"
MIRROR = "gantry-catalog.catalog"
logger = logging.getLogger(__name__)  # its mirror's name: a service's name cannot have a dot
DIFF_SHOWN = 50  # lines of the diff kept in one audit entry


@dataclass(frozen=True)
class CommitFiles:
    """The catalog's files as they are in one commit of its repository (the root file's directory)."""

    sha: str
    directory: str  # "" at the repository's top

    def text(self, path: str) -> str | None:
        try:
            return git.file_at(MIRROR, self.sha, self._full(path), max_bytes=CATALOG_MAX_BYTES)
        except git.FileTooLarge as exc:  # (too large, or a directory): the commit's problem
            raise Unreadable(str(exc)) from exc  # (other git errors are this machine's: tried again later)

    def paths(self) -> list[str]:
        prefix = f"{self.directory}/" if self.directory else ""
        found = [path.removeprefix(prefix) for path in git.paths_at(MIRROR, self.sha) if path.startswith(prefix)]
        if len(found) > MAX_LISTED:
            raise Unreadable(f"the catalog's directory holds more than {MAX_LISTED} files; keep it in its own one")
        return found

    def _full(self, path: str) -> str:
        return f"{self.directory}/{path}" if self.directory else path


@dataclass(frozen=True)
class Followed:
    """What one look at the catalog's repository found."""

    sha: str
    outcome: str  # "off", "unchanged", "applied", "refused", "unreadable"
    said: str = ""


def catalog_follow() -> Followed:
    """Look at the catalog's branch once; apply its newest commit if it is new and valid."""
    if not settings.CATALOG_REPO:
        return Followed("", "off")
    state = CatalogState.get()
    now = timezone.now()
    try:
        git.mirror_update(MIRROR, settings.CATALOG_REPO)
        sha = git.branch_head(MIRROR, settings.CATALOG_BRANCH)
    except git.GitError as exc:  # the last good catalog stays; the page says why nothing is followed
        said = f"cannot read {settings.CATALOG_REPO} ({settings.CATALOG_BRANCH}): {exc}"
        CatalogState.objects.filter(pk=state.pk).update(error=said, checked_at=now)
        return Followed("", "unreadable", said)
    if sha == state.seen_sha:
        CatalogState.objects.filter(pk=state.pk).update(error="", checked_at=now)
        return Followed(sha, "unchanged")
    directory = str(PurePosixPath(settings.CATALOG_PATH).parent)
    try:  # the whole catalog, its included files too, as it is in this commit
        files = CommitFiles(sha, "" if directory == "." else directory)
        spec, problems, owners = catalog_from(files, settings.CATALOG_PATH), "", set[str]()
    except CatalogError as exc:
        spec, problems, owners = None, str(exc), _owners(exc.problems)
    except git.GitError as exc:  # this machine could not read it: nothing is decided, the next look tries again
        said = f"cannot read commit {sha[:12]} of {settings.CATALOG_REPO}: {exc}"
        CatalogState.objects.filter(pk=state.pk).update(error=said, checked_at=now)
        return Followed(sha, "unreadable", said)
    # One follower at a time decides (beat's poll and a webhook's may run together), and never goes back to an
    # older commit than one already seen.
    with transaction.atomic():
        state = CatalogState.objects.select_for_update().get(pk=state.pk)
        if sha == state.seen_sha or _older(sha, state.seen_sha):
            return Followed(sha, "unchanged")
        pusher = state.pushed_by if state.pushed_sha == sha else PUSHER_UNKNOWN
        if spec is None:
            return _refused(state, sha, pusher, problems, owners)
        try:
            report = catalog_apply(spec)  # (its own savepoint: a failure leaves nothing applied)
        except Exception as exc:
            logger.exception("applying catalog commit %s failed", sha[:12])
            said = f"internal error in Gantry while applying it ({exc!r}); see the log"
            return _refused(state, sha, pusher, said, set())
        CatalogState.objects.filter(pk=state.pk).update(
            applied_sha=sha, applied_at=now, seen_sha=sha, checked_at=now, problems="", error=""
        )
        audit_record(AuditAction.CATALOG_APPLIED, actor=None, actor_name=pusher, detail=_applied(sha, report))
    return Followed(sha, "applied", _diff(report))


def _older(sha: str, seen: str) -> bool:
    """Is `sha` an ancestor of the commit already seen (a slower follower's older look)?"""
    if not seen:
        return False
    try:
        return git.is_ancestor(MIRROR, settings.CATALOG_REPO, sha, seen)
    except git.GitError:
        return False


def _owners(problems: list[Problem]) -> set[str]:
    """The Slack channels of the teams whose entries the problems are in (as the last good catalog has them):
    the people who own the broken part hear of it, not only the default channel."""
    named: dict[str, set[str]] = {"services": set(), "teams": set()}
    for problem in problems:
        if entry := entry_of(problem.where):
            named[entry[0]].add(entry[1])
    channels = set(Service.objects.filter(name__in=named["services"]).values_list("team__slack_channel", flat=True))
    channels |= set(Team.objects.filter(name__in=named["teams"]).values_list("slack_channel", flat=True))
    return {channel for channel in channels if channel}


def _refused(state: CatalogState, sha: str, pusher: str, problems: str, owners: set[str]) -> Followed:
    now = timezone.now()
    with transaction.atomic():  # (inside the follower's transaction: one savepoint)
        CatalogState.objects.filter(pk=state.pk).update(seen_sha=sha, checked_at=now, problems=problems, error="")
        kept = f"; the catalog of {state.applied_sha[:12]} stays live" if state.applied_sha else ""
        detail = f"commit {sha[:12]} of {settings.CATALOG_PATH} is invalid, nothing changed{kept}:\n{problems}"
        audit_record(AuditAction.CATALOG_REFUSED, actor=None, actor_name=pusher, detail=detail[:4000])
        first = problems.splitlines()[0] if problems else ""
        count = len(problems.splitlines())
        by = f" pushed by {escape(pusher)}" if pusher != PUSHER_UNKNOWN else ""
        text = (
            f":no_entry: Catalog commit `{sha[:12]}`{by} was not "
            f"applied ({count} problem{'s' * (count != 1)}; the catalog of `{state.applied_sha[:12] or '-'}` stays "
            f"live): {escape(first[:300])} — <{settings.GANTRY_BASE_URL}/catalog/|the catalog page> lists them"
        )
        for channel in sorted({settings.SLACK_DEFAULT_CHANNEL, *owners} - {""}):
            outbox.notice(text, channel=channel)
    return Followed(sha, "refused", problems)


def _applied(sha: str, report: ApplyReport) -> str:
    return f"commit {sha[:12]} of {settings.CATALOG_PATH}:\n{_diff(report)}"[:4000]


def _diff(report: ApplyReport) -> str:
    lines = [f"+ {item}" for item in report.created] + [f"~ {item}" for item in report.updated]
    lines += [f"- {item}" for item in report.removed]
    lines += [f"! not in the file, kept: {item}" for item in report.not_in_file]
    if len(lines) > DIFF_SHOWN:
        lines = [*lines[:DIFF_SHOWN], f"... and {len(lines) - DIFF_SHOWN} more"]
    return "\n".join(lines) or "no change"
