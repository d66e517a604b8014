"""GitHub Actions as a build source (`ci: github`): workflow runs become builds (of their workflow's file),
counted only from the workflows and events the catalog names, read with ETags (an unchanged repository costs
nothing), updated by signed workflow_run webhooks without a request, and gating deploys like Jenkins builds."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.catalog_files import CatalogError
from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import BuildResult, DeployStatus
from deployer.deploys.request import deploy_request
from deployer.errors import DeployRefused
from deployer.integrations import git
from deployer.models import Build, Deploy, Environment, Grant, Service, WebhookDelivery
from deployer.sources.branches import branch_sync
from deployer.sources.builds import build_sync
from deployer.sources.webhooks import delivery_process
from tests.fakes.github import FakeGitHub, sign
from tests.fakes.jenkins import FakeJenkins
from tests.support.archives import with_file
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.constants import WEBHOOK_SECRET
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.django_db
CI = ".github/workflows/ci.yml"


def actions_service(extra: str = "    github_actions: {workflows: [.github/workflows/ci.yml]}\n") -> Service:
    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    github: acme/app\n    ci: github\n" + extra + "    environments:\n"
            "      prod: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )
    )
    return Service.objects.get()


def test_runs_become_builds_only_from_the_named_workflows_and_events(github: FakeGitHub) -> None:
    repo = github.add_repo("acme/app", branches=2)
    main, feature = repo.branches["main"], repo.branches["feature/b001"]
    github.add_run("acme/app", main)
    github.add_run("acme/app", feature, branch="feature/b001", conclusion="failure")
    github.add_run("acme/app", feature, branch="feature/b001", event="pull_request", conclusion="success")
    github.add_run("acme/app", feature, path=".github/workflows/always-green.yml", conclusion="success")
    running = github.add_run("acme/app", main, status="in_progress", conclusion=None)
    service = actions_service()

    assert build_sync(service=service) == 3
    builds = {(b.sha, b.number): b for b in Build.objects.filter(service=service)}
    assert {b.job for b in builds.values()} == {CI}
    assert builds[(main, 1)].result == BuildResult.SUCCESS and builds[(main, 1)].duration_ms == 200_000
    assert builds[(feature, 2)].result == BuildResult.FAILURE, "neither the PR's own run nor another workflow"
    now = builds[(main, running["run_number"])]
    assert now.result == BuildResult.RUNNING and now.url == running["html_url"]

    spent = github.units_spent
    assert build_sync(service=service) == 0
    assert github.units_spent == spent, "an unchanged runs list answers 304: no rate-limit unit"


def test_the_build_gate_reads_them_like_jenkins_builds(github: FakeGitHub, deployer: AbstractBaseUser) -> None:
    repo = github.add_repo("acme/app", branches=2)
    github.add_run("acme/app", repo.branches["main"])
    github.add_run("acme/app", repo.branches["feature/b001"], branch="feature/b001", conclusion="failure")
    service = actions_service()
    branch_sync(service=service)
    build_sync(service=service)
    prod = Environment.objects.get()
    assert prod.require_green_build, "production asks for a green build"
    user = deployer
    Grant.objects.create(principal="dana", role="prod_deployer")
    with pytest.raises(DeployRefused, match="green build"):
        deploy_request(environment=prod, ref="feature/b001", user=user)  # type: ignore[arg-type]
    assert deploy_request(environment=prod, ref="main", user=user).sha == repo.branches["main"]  # type: ignore[arg-type]


def test_a_workflow_run_webhook_records_the_run_without_asking_github(client: Client, github: FakeGitHub) -> None:
    repo = github.add_repo("acme/app")
    service = actions_service()
    run = github.add_run("acme/app", repo.branches["main"], status="in_progress", conclusion=None)
    done = github.run_update("acme/app", run["id"], status="completed", conclusion="success")
    for state in (run, done):
        body = json.dumps(
            {"action": "completed", "workflow_run": state, "repository": {"full_name": "acme/app"}}
        ).encode()
        answer = client.post(
            reverse("hook-github"),
            body,
            content_type="application/json",
            headers={
                "X-GitHub-Event": "workflow_run",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET),
            },
        )
        assert answer.status_code == 202, answer.content
    github.reset_counters()
    for delivery in WebhookDelivery.objects.order_by("pk"):
        delivery_process(delivery_id=delivery.pk)
    assert github.count() == 0, "the event carries the run"
    build = Build.objects.get(service=service)
    assert (build.job, build.result) == (CI, BuildResult.SUCCESS)
    assert WebhookDelivery.objects.last().outcome.endswith(": success")  # type: ignore[union-attr]


def test_ci_github_needs_the_repository(db: None) -> None:
    with pytest.raises(CatalogError, match="set github: owner/name"):
        catalog_parse(
            "services:\n  app:\n    repo: /srv/git/app.git\n    ci: github\n    environments:\n"
            "      prod: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )


@pytest.mark.slow
def test_build_github_ships_what_the_trusted_run_uploaded_checked_against_its_digest(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    integrations: tuple[FakeGitHub, FakeJenkins],
    app_repo: AppRepo,
    tmp_path: Path,
) -> None:
    github, _ = integrations
    github.add_repo("acme/app")
    sha = git_head(app_repo)
    github.push_existing("acme/app", "main", sha, "Main")
    environment = make_environment(options={"build": "github"}, github_repo="acme/app", service_yaml="    ci: github")

    def deploy() -> Deploy:
        build_sync(service=environment.service)
        return wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    unbuilt = deploy()
    assert unbuilt.status == DeployStatus.FAILED and "acme/app has no successful run of" in unbuilt.reason

    tree = tmp_path / "tree.tar.gz"
    git.archive("app", str(app_repo.path), sha, tree)
    built = with_file(tree, "BUILT_BY_ACTIONS", b"yes\n")
    tampered = github.add_run("acme/app", sha)
    github.add_artifact("acme/app", tampered, "release", {"release.tar.gz": built}, digest="sha256:" + "0" * 64)
    refused = deploy()
    assert refused.status == DeployStatus.FAILED and "does not match its digest on GitHub" in refused.reason

    good = github.add_run("acme/app", sha)
    github.add_artifact("acme/app", good, "release", {"release.tar.gz": built, "report.html": b"<html>"})
    shipped = deploy()
    assert shipped.status == DeployStatus.SUCCEEDED, shipped.reason
    assert shipped.artifact_sha256 == hashlib.sha256(built).hexdigest()
    assert shipped.artifact_source == f"GitHub Actions {CI} #{good['run_number']}: release"
    assert github.blob_authorizations and set(github.blob_authorizations) == {""}, "no token to the storage"
    for host in environment.hosts.all():
        root = tmp_path / "hosts" / f"{host.address}-{host.port}" / "srv" / "app"
        assert (root / "current" / "BUILT_BY_ACTIONS").read_text() == "yes\n"


def git_head(repo: AppRepo) -> str:
    return subprocess.run(
        ["git", "rev-parse", "main"], cwd=repo.path, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_run_of_a_tag_named_like_a_branch_does_not_count_as_that_branch(github: FakeGitHub) -> None:
    repo = github.add_repo("acme/app", branches=2)
    unreviewed = repo.branches["feature/b001"]
    github.add_run("acme/app", unreviewed, branch="main")  # a tag called "main" on that commit: GitHub says main
    github.add_run("acme/app", repo.branches["main"])
    service = actions_service()
    branch_sync(service=service)
    build_sync(service=service)
    assert dict(Build.objects.values_list("sha", "branch")) == {unreviewed: "", repo.branches["main"]: "main"}
