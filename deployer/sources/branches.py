"""Keeping the Branch and Tag tables in step with each service's repository.

A service with `github_repo` (and GitHub configured) reads its branches and tags from
GitHub's API (each list's pages with their ETags: an unchanged repository costs nothing);
any other reads its git repository through a local mirror. Tags come with every branch sync.
Workers call `branch_sync` (and the webhook handlers below); pages only read
the rows, with the freshness recorded in SyncState.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployer.choices import SyncSource
from deployer.errors import SyncFailed
from deployer.integrations import git, github
from deployer.lib.refs import RefError, branch_name_check, is_full_sha
from deployer.models import Branch, Service, SyncState, Tag
from deployer.sources import integration_health
from deployer.sources.freshness import sync_failed, sync_state, sync_succeeded

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Head:
    """A branch as a source reports it; commit details may be unknown (None)."""

    name: str
    sha: str
    author: str | None = None
    message: str | None = None
    committed_at: datetime | None = None


def branch_sync(*, service: Service) -> int:
    """Refresh `service`'s branches; return how many there are.

    A failure is recorded on the service's SyncState (the page shows it with the
    age of the data) and raised as SyncFailed; the known branches stay as they were.
    """
    state = sync_state(service, SyncSource.BRANCHES)
    try:
        if service.github_repo and github.enabled():
            return _sync_from_github(service, state)
        heads = [Head(b.name, b.sha, b.author, b.message, b.committed_at) for b in _git_branches(service)]
        tags = [Head(t.name, t.sha, t.author, t.message, t.committed_at) for t in git.tags_list(service.name)]
    except (git.GitError, github.GitHubError, SyncFailed) as exc:
        logger.warning("branch sync of %s failed: %s", service.name, exc)
        sync_failed(state, str(exc))
        raise SyncFailed(str(exc)) from exc
    _apply(service, heads)
    _tags_apply(service, tags)
    sync_succeeded(state)
    return len(heads)


def _git_branches(service: Service) -> list[git.BranchInfo]:
    git.mirror_update(service.name, service.repo_url)
    return git.branches_list(service.name)


def _sync_from_github(service: Service, state: SyncState) -> int:
    reason = integration_health.unavailable_reason(integration_health.GITHUB)
    if reason:
        raise SyncFailed(reason)
    counter = _Counter()
    try:
        pages, heads = _list_pages(service.github_repo, state.etags.get("pages", []), counter)
        if heads is not None:
            _apply(service, _with_commit_details(service, heads, counter))
        tag_pages, tags = _list_pages(service.github_repo, state.etags.get("tags", []), counter, kind="tags")
        if tags is not None:
            _tags_apply(service, _with_commit_details(service, tags, counter))
    except github.GitHubError as exc:
        _record_github_failure(exc, counter)
        raise
    integration_health.record_success(
        integration_health.GITHUB, requests=counter.requests, rate=github.rate_limit_seen()
    )
    sync_succeeded(state, etags={"pages": pages, "tags": tag_pages})
    return Branch.objects.filter(service=service).count()


class _Counter:
    requests = 0


def _record_github_failure(exc: github.GitHubError, counter: _Counter) -> None:
    pause = exc.reset_at if isinstance(exc, github.GitHubRateLimited) else None
    integration_health.record_failure(
        integration_health.GITHUB,
        str(exc),
        transient=exc.retryable,
        requests=counter.requests,
        rate=github.rate_limit_seen(),
        pause_until=pause,
    )


def _list_pages(
    repo: str, stored: list[dict[str, Any]], counter: _Counter, kind: str = "branches"
) -> tuple[list[dict[str, Any]], list[github.BranchHead] | None]:
    """Walk the branch list with each page's stored ETag and size.

    Returns the pages' new ETags and every head, or None for the heads when all
    pages answered 304 (nothing changed, nothing spent). When only some pages
    changed, the unchanged ones are fetched again to get the whole list.

    GitHub's 304 carries no `Link`: the next page's URL is the stored one, and
    when the last page known was full, the page after it is asked for too (a
    branch that starts a new page leaves every known page unchanged).
    """
    pages: list[dict[str, Any]] = []
    found: list[list[github.BranchHead] | None] = []
    url: str | None = None
    while True:
        index = len(pages)
        known = stored[index] if index < len(stored) else None
        etag = known["etag"] if known and (url is None or known["url"] == url) else ""
        page = github.branches_page(repo, url=url, etag=etag, kind=kind)
        counter.requests += 1
        size = len(page.heads) if page.heads is not None else (known or {}).get("size")
        pages.append({"url": page.url, "etag": page.etag, "size": size})
        found.append(page.heads)
        url = page.next_url
        if url is None and page.heads is None and index + 1 < len(stored):
            url = stored[index + 1]["url"]  # a 304 comes without its Link header
        elif url is None and page.heads is None and size == github.PER_PAGE:
            url = github.branches_page_url(repo, index + 2, kind)
        if url is None:
            break
    # An empty page after a full one (probed, or its stored ETag) is kept: asked with its ETag, it costs nothing.
    listed = [page for page in pages if page["size"] != 0]
    listed_before = [page for page in stored if page.get("size") != 0]
    if all(not heads for heads in found) and len(listed) == len(listed_before):
        return pages, None
    heads: list[github.BranchHead] = []
    for number, page_heads in enumerate(found):
        if page_heads is None:
            page = github.branches_page(repo, url=pages[number]["url"] if number else None, kind=kind)
            counter.requests += 1
            pages[number] = {"url": page.url, "etag": page.etag, "size": len(page.heads or [])}
            page_heads = page.heads or []
        heads += page_heads
    return pages, heads


def _with_commit_details(service: Service, heads: list[github.BranchHead], counter: _Counter) -> list[Head]:
    """Author, message and date of each head: known shas from the table, new ones from GitHub
    while the rate-limit budget allows (the rest are filled in by a later sync)."""
    shas = {h.sha for h in heads}
    known: dict[str, Branch | Tag] = {
        b.sha: b for b in Branch.objects.filter(service=service, sha__in=shas, committed_at__isnull=False)
    }
    known |= {t.sha: t for t in Tag.objects.filter(service=service, sha__in=shas, committed_at__isnull=False)}
    out = []
    for head in heads:
        branch = known.get(head.sha)
        if branch is not None:
            out.append(Head(head.name, head.sha, branch.author, branch.message, branch.committed_at))
            continue
        if integration_health.unavailable_reason(integration_health.GITHUB) or _budget_low():
            out.append(Head(head.name, head.sha))
            continue
        info = github.commit_info(service.github_repo, head.sha)
        counter.requests += 1
        out.append(Head(head.name, head.sha, info.author, info.message, info.committed_at))
        known[head.sha] = Branch(author=info.author, message=info.message, committed_at=info.committed_at)
    return out


def _budget_low() -> bool:
    rate = github.rate_limit_seen()
    return rate is not None and rate.remaining <= settings.GITHUB_RATE_LIMIT_RESERVE


def _apply(service: Service, heads: list[Head]) -> None:
    """Make the Branch table match `heads`."""
    _heads_apply(Branch, service, heads)


def _tags_apply(service: Service, heads: list[Head]) -> None:
    """Make the Tag table match `heads`: a name git refuses, or one that reads as a full sha (resolve_ref would
    take it as that commit), is left out."""
    _heads_apply(Tag, service, [h for h in heads if not _bad_name(h.name) and not is_full_sha(h.name)])


@transaction.atomic
def _heads_apply(model: type[Branch] | type[Tag], service: Service, heads: list[Head]) -> None:
    """Make `model`'s rows of `service` match `heads`: add, update, delete; keep commit details a source did
    not give."""
    model.objects.filter(service=service).exclude(name__in=[h.name for h in heads]).delete()
    existing: dict[str, Branch | Tag] = {row.name: row for row in model.objects.filter(service=service)}
    now = timezone.now()
    creates, updates = [], []
    for head in heads:
        row = existing.get(head.name)
        if row is None:
            creates.append(model(service=service, name=head.name, **_values(head)))
        elif row.sha != head.sha or (head.committed_at and not row.committed_at):
            for key, value in _values(head).items():
                setattr(row, key, value)
            row.updated_at = now
            updates.append(row)
    model.objects.bulk_create(creates)  # type: ignore[arg-type]
    model.objects.bulk_update(updates, ["sha", "author", "message", "committed_at", "updated_at"])  # type: ignore[arg-type]


def _bad_name(name: str) -> bool:
    try:
        branch_name_check(name)
    except RefError:
        return True
    return False


def _values(head: Head) -> dict[str, object]:
    return {
        "sha": head.sha,
        "author": (head.author or "")[:255],
        "message": (head.message or "")[:500],
        "committed_at": head.committed_at,
    }


def branch_pushed(*, service: Service, head: Head) -> None:
    """A push moved (or created) one branch: record its new head (from a webhook)."""
    _upsert(service, head)


def branch_created(*, service: Service, name: str) -> None:
    """A branch was created: look up its head unless a push already told us (from a webhook)."""
    if Branch.objects.filter(service=service, name=name).exists():
        return
    info = github.branch_head(service.github_repo, name)
    if info is not None:
        _upsert(service, Head(name, info.sha, info.author, info.message, info.committed_at))


def branch_deleted(*, service: Service, name: str) -> None:
    Branch.objects.filter(service=service, name=name).delete()


def _upsert(service: Service, head: Head) -> None:
    Branch.objects.update_or_create(
        service=service, name=head.name, defaults={**_values(head), "updated_at": timezone.now()}
    )
