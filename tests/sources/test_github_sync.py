"""Branches from GitHub: every page, ETags so an unchanged repo costs nothing,
and a rate limit, an error or a hang that leaves the last data in place, marked stale."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.choices import SyncSource
from deployer.errors import SyncFailed
from deployer.models import Branch, IntegrationStatus, Service, SyncState
from deployer.sources import integration_health
from deployer.sources.branches import branch_sync
from deployer.sources.pacing import peak_per_minute, resync_round
from tests.fakes.github import FakeGitHub
from tests.support.catalogs import github_services

pytestmark = pytest.mark.django_db


def stale_reason(service: Service) -> str:
    return SyncState.objects.get(service=service, source=SyncSource.BRANCHES).error


def test_a_repo_with_250_branches_is_read_across_pages(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=250)
    (service,) = github_services("app")

    assert branch_sync(service=service) == 250

    assert Branch.objects.filter(service=service).count() == 250
    assert github.count("GET", "/branches") == 3, "100 + 100 + 50, following Link: rel=next"
    assert github.count("GET", "/repositories/") == 2, "pages 2 and 3 come from GitHub's own Link URLs"
    b042 = Branch.objects.get(service=service, name="feature/b042")
    assert (b042.author, b042.message) == ("Ada Lovelace", "Work on b042")
    assert b042.sha == github.repos["acme/app"].branches["feature/b042"]
    assert service.repo_url == f"{github.url}/acme/app.git", "the clone URL comes from github: when repo is not set"


def test_a_second_sync_of_an_unchanged_repo_is_all_304_and_costs_nothing(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=250)
    (service,) = github_services("app")
    branch_sync(service=service)
    github.reset_counters()
    spent = github.units_spent

    branch_sync(service=service)

    assert github.count("GET", "/branches") == 3, "one conditional request per page"
    assert github.count("GET", "/tags") == 1, "and one for the (empty) tag list"
    assert github.units_spent == spent, "304 answers cost no rate limit"
    assert Branch.objects.filter(service=service).count() == 250


def test_one_new_commit_costs_the_pages_and_one_commit_lookup(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=50)
    (service,) = github_services("app")
    branch_sync(service=service)
    sha = github.commit("acme/app", "feature/b007", "Fix the thing")
    spent = github.units_spent

    branch_sync(service=service)

    assert github.units_spent - spent == 2, "the (single) branch page, and the new head's commit"
    branch = Branch.objects.get(service=service, name="feature/b007")
    assert (branch.sha, branch.message) == (sha, "Fix the thing")


def test_deleted_branches_disappear(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=3)
    (service,) = github_services("app")
    branch_sync(service=service)
    github.delete_branch("acme/app", "feature/b001")

    branch_sync(service=service)

    assert sorted(Branch.objects.filter(service=service).values_list("name", flat=True)) == ["feature/b002", "main"]


@pytest.mark.parametrize("status", [403, 429])
def test_a_spent_rate_limit_backs_off_keeps_the_data_and_shows_stale(
    github: FakeGitHub, deployer_client: Client, status: int
) -> None:
    github.add_repo("acme/app", branches=5)
    (service,) = github_services("app")
    branch_sync(service=service)
    github.commit("acme/app", "main", "A change GitHub cannot tell us about yet")
    github.exhaust(status=status)

    with pytest.raises(SyncFailed, match="rate limit"):
        branch_sync(service=service)

    assert Branch.objects.filter(service=service).count() == 5, "the last data stays"
    paused = IntegrationStatus.objects.get(name="github").paused_until
    assert paused is not None and paused > timezone.now(), "no calls until the budget resets"
    github.reset_counters()
    with pytest.raises(SyncFailed, match="paused until"):
        branch_sync(service=service)
    assert github.count() == 0, "the back-off costs nothing and holds nobody"
    page = deployer_client.get(reverse("service", args=["app"])).content.decode()
    assert "stale:" in page and "rate limit" in page


def test_the_budget_reserve_stops_commit_lookups_but_not_the_list(github: FakeGitHub, settings: object) -> None:
    github.add_repo("acme/app", branches=20)
    (service,) = github_services("app")
    settings.GITHUB_RATE_LIMIT_RESERVE = github.rate_remaining - 6  # type: ignore[attr-defined]

    branch_sync(service=service)

    assert Branch.objects.filter(service=service).count() == 20
    assert Branch.objects.filter(service=service, committed_at__isnull=True).count() == 15
    assert github.units_spent == 7, "the page, five commits and the tag list; then the budget is at the reserve"


def test_github_500_marks_the_service_stale_and_the_others_still_sync(github: FakeGitHub) -> None:
    for name in ("broken", "fine"):
        github.add_repo(f"acme/{name}", branches=2)
    broken, fine = github_services("broken", "fine")
    github.fail("/repos/acme/broken/", status=500)

    with pytest.raises(SyncFailed, match="HTTP 500"):
        branch_sync(service=broken)
    assert branch_sync(service=fine) == 2

    assert "GitHub answered HTTP 500" in stale_reason(broken)
    assert stale_reason(fine) == ""


def test_a_hanging_github_times_out_and_the_others_still_sync(github: FakeGitHub, settings: object) -> None:
    settings.GITHUB_TIMEOUT = 1  # type: ignore[attr-defined]
    for name in ("slow", "fine"):
        github.add_repo(f"acme/{name}", branches=2)
    slow, fine = github_services("slow", "fine")
    github.fail("/repos/acme/slow/", hang=5)

    started = time.monotonic()
    with pytest.raises(SyncFailed, match="did not answer within 1 s"):
        branch_sync(service=slow)
    assert time.monotonic() - started < 4, "one timeout, no retries of a hanging read"
    assert branch_sync(service=fine) == 2
    assert "did not answer" in stale_reason(slow)


def test_repeated_failures_pause_github_for_everyone(github: FakeGitHub, settings: object) -> None:
    settings.INTEGRATION_FAILURES_BEFORE_PAUSE = 2  # type: ignore[attr-defined]
    for name in ("a", "b", "c"):
        github.add_repo(f"acme/{name}")
    a, b, c = github_services("a", "b", "c")
    github.fail("/repos/", status=502)
    for service in (a, b):
        with pytest.raises(SyncFailed):
            branch_sync(service=service)
    github.reset_counters()

    with pytest.raises(SyncFailed, match="github paused until"):
        branch_sync(service=c)
    assert github.count() == 0
    assert integration_health.unavailable_reason("github").startswith("github paused until")


def test_an_unknown_repository_says_what_to_check(github: FakeGitHub) -> None:
    (service,) = github_services("ghost")

    with pytest.raises(SyncFailed, match="HTTP 404"):
        branch_sync(service=service)
    assert IntegrationStatus.objects.get(name="github").consecutive_failures == 1


def test_the_resync_paces_github_repositories_longest_unchecked_first(github: FakeGitHub) -> None:
    services = github_services(*(f"s{n:02d}" for n in range(25)))
    Service.objects.create(name="local", repo_url="/srv/git/local")
    for service in services:
        github.add_repo(service.github_repo, branches=2)

    first = resync_round(every_seconds=60, per_minute=10)

    assert first.unpaced == [Service.objects.get(name="local").pk], "a repository not on GitHub is not paced"
    assert [pk for pk, _ in first.paced] == [s.pk for s in services[:10]], "ten a minute fit in a round"
    assert [wait for _, wait in first.paced] == [6.0 * n for n in range(10)], "spaced evenly over the minute"
    for pk, _ in first.paced:
        branch_sync(service=Service.objects.get(pk=pk))
    second = resync_round(every_seconds=60, per_minute=10)
    assert [pk for pk, _ in second.paced] == [s.pk for s in services[10:20]], "the ones not checked yet come next"


def test_the_peak_a_minute_of_paced_rounds_stays_at_the_budget() -> None:
    starts = [round_start + wait for round_start in (0, 60, 120) for wait in (n * 0.1 for n in range(600))]
    assert peak_per_minute(starts) == 600
    assert peak_per_minute([0.0] * 5000) == 5000, "everything at once, as before pacing"


def test_a_branch_that_starts_a_new_page_is_found_though_every_known_page_is_unchanged(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=100)  # one full page
    (service,) = github_services("app")
    branch_sync(service=service)
    github.commit("acme/app", "zzz-last", "Sorts after every other branch: page 2")
    github.reset_counters()

    assert branch_sync(service=service) == 101

    assert Branch.objects.filter(service=service, name="zzz-last").exists()
    github.reset_counters()
    spent = github.units_spent
    branch_sync(service=service)
    assert github.count() == 3 and github.units_spent == spent, "two pages and the tags known: 304s, nothing spent"


def test_a_full_last_page_costs_one_probe_of_the_next_and_then_nothing(github: FakeGitHub) -> None:
    github.add_repo("acme/app", branches=100)
    (service,) = github_services("app")
    branch_sync(service=service)
    github.reset_counters()
    spent = github.units_spent

    branch_sync(service=service)

    assert github.count() == 3, "page 1 (304) and the page after it (empty), and the tags (304)"
    assert github.units_spent == spent + 1, "the empty page's first answer costs one unit"
    github.reset_counters()
    branch_sync(service=service)
    assert github.count() == 3 and github.units_spent == spent + 1, "then all are 304s"
    assert Branch.objects.filter(service=service).count() == 100
