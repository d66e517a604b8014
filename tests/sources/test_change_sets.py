"""What a deploy would change (commits, migration files) comes from a worker, never from the web machine's disk:
the plan page asks for a change set and polls until a worker has stored it. Real Celery worker, real git."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.demo import setup
from deployer.deploys.plan import plan_changes
from deployer.models import Branch, ChangeSet, Environment
from deployer.sources.changes import NEW_PER_MINUTE, WAIT_AT_MOST, change_set, change_set_compute, migration_globs
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait
from tests.support.pages import plan_page
from tests.support.waiting import wait_until
from tests.support.worker import Worker


def head(environment: Environment, branch: str) -> str:
    return Branch.objects.get(service=environment.service, name=branch).sha


@pytest.mark.slow
def test_the_plan_gets_its_commits_from_a_worker_even_with_no_repository_on_this_machine(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    app_repo: AppRepo,
) -> None:
    setup.repo_branch(app_repo.path, "one-more", {"more.txt": "1\n"}, "One more thing")
    environment = make_environment()
    deploy_and_wait(environment, "main", deployer, celery_worker)
    shutil.rmtree(settings.REPO_MIRROR_DIR)  # as on a web machine: no git mirror at all

    first = deployer_client.get(reverse("deploy-plan", args=["app", "test"]), {"ref": "one-more"}).content.decode()
    assert "data-changes-pending" in first and "One more thing" not in first, "the page itself reads no git"

    page = plan_page(deployer_client, "app", "test", "one-more")
    assert "One more thing" in page and "1 commit:" in page
    row = ChangeSet.objects.get(head=head(environment, "one-more"))
    assert row.ahead == 1 and row.computed_at is not None and not row.error
    assert (settings.REPO_MIRROR_DIR / "app.git").exists(), "the worker fetched what it needed"


def unasked(environment: Environment, base: str, tip: str) -> ChangeSet:
    """A change set no worker was told about (a session's worker may be running: it must not race us)."""
    return ChangeSet.objects.create(
        service=environment.service,
        base=base,
        head=tip,
        globs=migration_globs(environment.service),
        requested_at=timezone.now(),
    )


def computed(row: ChangeSet) -> ChangeSet:
    """Computed here, or by a worker that claimed it first."""
    change_set_compute(change_set_id=row.pk)
    wait_until(lambda: ChangeSet.objects.get(pk=row.pk).computed_at is not None)
    return ChangeSet.objects.get(pk=row.pk)


def test_a_change_set_is_computed_once_and_never_while_another_worker_holds_it(
    make_environment: MakeEnvironment, app_repo: AppRepo
) -> None:
    environment = make_environment()
    row = unasked(environment, head(environment, "main"), head(environment, "slow-build"))
    ChangeSet.objects.filter(pk=row.pk).update(claimed_at=timezone.now())  # another worker is on it

    change_set_compute(change_set_id=row.pk)
    assert ChangeSet.objects.get(pk=row.pk).computed_at is None, "left to the worker that claimed it"

    ChangeSet.objects.filter(pk=row.pk).update(claimed_at=timezone.now() - timedelta(minutes=5))  # it died
    change_set_compute(change_set_id=row.pk)
    done = ChangeSet.objects.get(pk=row.pk)
    assert done.ahead == 1 and [c["subject"] for c in done.commits] == ["Take too long"]

    ChangeSet.objects.filter(pk=row.pk).update(ahead=99)
    change_set_compute(change_set_id=row.pk)
    assert ChangeSet.objects.get(pk=row.pk).ahead == 99, "a stored change set is never computed again"


def test_a_plan_nobody_answers_says_so_and_a_reload_asks_again(
    make_environment: MakeEnvironment, deployer: AbstractBaseUser, deployer_client: Client, celery_worker: Worker
) -> None:
    environment = make_environment()
    deploy_and_wait(environment, "main", deployer, celery_worker)
    row = unasked(environment, head(environment, "main"), head(environment, "broken-build"))
    asked = timezone.now() - WAIT_AT_MOST - timedelta(seconds=1)
    ChangeSet.objects.filter(pk=row.pk).update(requested_at=asked)

    fragment = deployer_client.get(reverse("plan-changes", args=["app", "test", row.pk])).content.decode()
    assert "no worker has listed the commits yet" in fragment and "hx-get" not in fragment, "it stops polling"

    plan_page(deployer_client, "app", "test", "broken-build")  # the reload: asked again, a worker answers
    fragment = deployer_client.get(reverse("plan-changes", args=["app", "test", row.pk])).content.decode()
    assert "Break it" in fragment and "data-changes-pending" not in fragment


def test_a_change_set_of_another_service_is_not_shown(
    make_environment: MakeEnvironment, deployer_client: Client
) -> None:
    environment = make_environment()
    row = unasked(environment, head(environment, "main"), head(environment, "slow-build"))

    assert deployer_client.get(reverse("plan-changes", args=["nope", "test", row.pk])).status_code == 404
    assert deployer_client.get(reverse("plan-changes", args=["app", "test", row.pk + 1000])).status_code == 404


def test_changed_migration_globs_ask_again(make_environment: MakeEnvironment) -> None:
    environment = make_environment()
    base, tip = head(environment, "main"), head(environment, "slow-build")
    computed(unasked(environment, base, tip))
    type(environment.service).objects.filter(pk=environment.service.pk).update(migrations=["*.sh"])
    environment.service.refresh_from_db()

    again = change_set(service=environment.service, base=base, head=tip)

    assert again.globs == ["*.sh"]
    assert computed(again).migrations == [{"change": "M", "path": "build.sh"}]


def test_change_sets_are_asked_only_for_known_commits_and_throttled_per_person(
    make_environment: MakeEnvironment, deployer: AbstractBaseUser, admin_user: AbstractBaseUser
) -> None:
    """Each new change set is a `git fetch` on a worker: a made-up sha asks for none, and one person may ask
    for NEW_PER_MINUTE a minute (issue 20, item 7)."""
    environment = make_environment()
    base = head(environment, "main")

    made_up = plan_changes(environment, base, "ab" * 20, user=deployer)
    assert made_up.note == (
        "Gantry has not seen this commit (no branch head, build or deploy of it), so no worker fetches it to list "
        "what it changes; the deploy itself will fetch it"
    )
    assert not ChangeSet.objects.filter(head="ab" * 20).exists()

    shas = [f"{n + 1:040x}" for n in range(NEW_PER_MINUTE + 1)]
    for n, sha in enumerate(shas):
        Branch.objects.create(service=environment.service, name=f"pushed-{n}", sha=sha)
    for sha in shas[:NEW_PER_MINUTE]:
        assert change_set(service=environment.service, base=base, head=sha, user=deployer).requested_by == deployer
    throttled = plan_changes(environment, base, shas[-1], user=deployer)
    assert throttled.note == (
        f"you asked for {NEW_PER_MINUTE} new commit lists within a minute; reload the page in a minute"
    )
    assert not ChangeSet.objects.filter(head=shas[-1]).exists()
    assert "you asked" not in plan_changes(environment, base, shas[0], user=deployer).note, "asked ones still show"
    plan_changes(environment, base, shas[-1], user=admin_user)
    assert ChangeSet.objects.get(head=shas[-1]).requested_by == admin_user, "the limit is per person"


def test_migration_files_are_found_whatever_else_a_branch_changes(tmp_path: Path) -> None:
    """The migrations are matched by git before any cap: a branch changing thousands of files that sort
    first cannot push its migration out of the list (and past the schema guard and the migration check)."""
    from deployer.integrations import git

    repo = tmp_path / "repo"
    repo.mkdir()
    setup.git(repo, "init", "--quiet", "--initial-branch=main")
    (repo / "README").write_text("an app\n")
    setup.git(repo, "add", "--all")
    setup.git(repo, "commit", "--quiet", "-m", "An app")
    base = setup.git(repo, "rev-parse", "HEAD").strip()
    for number in range(20):
        (repo / f"a{number:02}.txt").write_text("noise\n")
    (repo / "shop" / "migrations").mkdir(parents=True)
    (repo / "shop" / "migrations" / "0002_color.py").write_text("# a migration\n")
    setup.git(repo, "add", "--all")
    setup.git(repo, "commit", "--quiet", "-m", "Noise and a migration")
    head = setup.git(repo, "rev-parse", "HEAD").strip()
    git.mirror_update("noisy", str(repo))

    assert ("A", "shop/migrations/0002_color.py") not in git.changed_files("noisy", base, head, limit=10)
    found = git.changed_files("noisy", base, head, limit=10, globs=["*migrations/*.py"])
    assert found == [("A", "shop/migrations/0002_color.py")]
