"""Tags: synced beside branches (from the git mirror, or GitHub's tag list with ETags), shown on the service
page and in the API, deployable by name (the sha pinned at request time), and followed by continuous delivery
with `follow_tags: "v*"`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from knox.models import AuthToken

from deployer.catalog.catalog_files import CatalogError
from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import BuildResult, DeployTrigger
from deployer.delivery.continuous import continuous_delivery
from deployer.demo import setup
from deployer.deploys.request import deploy_request
from deployer.errors import DeployRefused
from deployer.models import Build, Deploy, Environment, Service, Tag
from deployer.sources.branches import branch_sync
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.django_db


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tagged_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "app"
    setup.repo_create(repo)
    git(repo, "tag", "v1.9.0", "main")  # lightweight
    setup.repo_branch(repo, "main", {"VERSION": "1.10.0\n"}, "Release 1.10.0")
    git(repo, "branch", "release", "main")
    git(
        repo, "-c", "user.name=R", "-c", "user.email=r@example.com", "tag", "-a", "v1.10.0", "-m", "The release", "main"
    )
    setup.repo_branch(repo, "unmerged", {"VERSION": "9.9.9\n"}, "Not reviewed")
    git(repo, "tag", "v9.9.9", "unmerged")  # anyone may push a tag: it names no commit of main
    tree = git(repo, "rev-parse", "main^{tree}")
    git(repo, "tag", "a-tree", tree)  # names no commit: nothing to deploy
    return repo


def service_of(repo: Path, extra: str = "") -> Service:
    catalog_apply(
        catalog_parse(
            f"services:\n  app:\n    repo: {repo}\n    environments:\n      test:\n        deploy_path: /srv/app\n"
            f"        hosts: [{{address: 10.0.0.1}}]\n{extra}"
        )
    )
    return Service.objects.get(name="app")


def test_tags_come_from_the_mirror_peeled_and_deploy_by_name(tagged_repo: Path, deployer: AbstractBaseUser) -> None:
    service = service_of(tagged_repo)
    branch_sync(service=service)
    tags = {t.name: t for t in Tag.objects.filter(service=service)}
    assert set(tags) == {"v1.9.0", "v1.10.0", "v9.9.9"}, "a tag of a tree is left out"
    release = git(tagged_repo, "rev-parse", "release")
    assert tags["v1.10.0"].sha == release and tags["v1.10.0"].message == "Release 1.10.0", "the commit, not the tag"
    assert tags["v1.9.0"].sha == git(tagged_repo, "rev-parse", "main~1")

    environment = Environment.objects.get()
    deploy = deploy_request(environment=environment, ref="v1.10.0", user=deployer)  # type: ignore[arg-type]
    assert (deploy.ref, deploy.sha) == ("v1.10.0", release)
    Deploy.objects.filter(pk=deploy.pk).update(status="cancelled")

    git(tagged_repo, "branch", "v1.9.0", "release")  # a branch named like a tag, pointing elsewhere
    branch_sync(service=service)
    with pytest.raises(DeployRefused, match=r"both a branch .* and a tag"):
        deploy_request(environment=environment, ref="v1.9.0", user=deployer)  # type: ignore[arg-type]

    git(tagged_repo, "tag", "-d", "v1.9.0")
    branch_sync(service=service)
    assert not Tag.objects.filter(name="v1.9.0").exists(), "a deleted tag goes"


def test_the_service_page_and_the_api_show_tags_with_their_builds(
    tagged_repo: Path, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    service = service_of(tagged_repo)
    branch_sync(service=service)
    release = Tag.objects.get(name="v1.10.0")
    Build.objects.create(
        service=service, job="app", number=7, branch="release", sha=release.sha, result=BuildResult.SUCCESS
    )
    page = deployer_client.get("/services/app/").content.decode()
    assert 'data-tag="v1.10.0"' in page and 'data-tag="v1.9.0"' in page
    assert page.index('data-tag="v1.10.0"') < page.index('data-tag="v1.9.0"'), "newest first"
    assert "/services/app/test/plan?ref=v1.10.0" in page
    client = Client(headers={"Authorization": f"Bearer {AuthToken.objects.create(user=deployer)[1]}"})
    listed = client.get("/api/v1/services/app/tags/").json()["results"]
    assert {t["name"]: t["sha"] for t in listed}["v1.10.0"] == release.sha and len(listed) == 3
    plan = client.get("/api/v1/services/app/test/plan/", {"ref": "v1.10.0"}).json()
    assert plan["sha"] == release.sha


def test_continuous_delivery_follows_the_newest_green_tag_matching_the_pattern(tagged_repo: Path) -> None:
    service = service_of(tagged_repo, '        follow_tags: "v*"\n')
    branch_sync(service=service)
    for tag in Tag.objects.all():
        Build.objects.create(
            service=service, job="app", number=tag.pk, branch="x", sha=tag.sha, result=BuildResult.SUCCESS
        )
    (deploy,) = continuous_delivery(service=service)
    assert (deploy.ref, deploy.trigger) == ("v1.10.0", DeployTrigger.CONTINUOUS), "v9.9.9 is on no commit of main"
    assert continuous_delivery(service=service) == [], "one at a time, and never twice"


def test_follow_and_follow_tags_contradict_each_other(db: None) -> None:
    with pytest.raises(CatalogError, match="keep one"):
        catalog_parse(
            "services:\n  app:\n    repo: /srv/git/app.git\n    environments:\n      test:\n"
            "        deploy_path: /srv/app\n        follow: main\n        follow_tags: 'v*'\n"
            "        hosts: [{address: 10.0.0.1}]\n"
        )


def test_tags_from_github_cost_nothing_when_unchanged(github: FakeGitHub) -> None:
    repo = github.add_repo("acme/app")
    github.add_tag("acme/app", "v2.0.0", repo.branches["main"])
    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    github: acme/app\n    environments:\n"
            "      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )
    )
    service = Service.objects.get()
    branch_sync(service=service)
    tag = Tag.objects.get()
    assert (tag.name, tag.sha, tag.message) == ("v2.0.0", repo.branches["main"], "Initial commit")
    spent = github.units_spent
    branch_sync(service=service)
    assert github.units_spent == spent, "the branch and tag lists answered 304"
    github.add_tag("acme/app", "v2.1.0", repo.branches["main"])
    branch_sync(service=service)
    assert github.units_spent - spent == 1, "the tag page; the commit was known"
    assert set(Tag.objects.values_list("name", flat=True)) == {"v2.0.0", "v2.1.0"}
