"""Required GitHub checks (ci: github, github_actions.required_checks / branch_protection): the check runs and
commit statuses on the exact sha gate a deploy as GitHub combines them, counted only from the apps and
accounts the catalog (or the branch protection rule) names, a GitHub Actions job only from a workflow run the
environment trusts, read with ETags and again after a signed webhook."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.catalog.catalog_files import CatalogError
from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.deploys.request import deploy_request
from deployer.errors import DeployRefused
from deployer.models import CommitChecks, Deploy, Environment, Grant, Service, SyncState, WebhookDelivery
from deployer.sources.branches import branch_sync
from deployer.sources.builds import build_sync
from deployer.sources.webhooks import delivery_process
from tests.fakes.github import FakeGitHub, sign
from tests.fakes.github_checks import GITHUB_ACTIONS_APP_ID
from tests.support.constants import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db
CHECKED = "    github_actions:\n      required_checks: [test, ci/circleci]\n      status_creators: [circleci]\n"


def checked_service(extra: str = CHECKED, environments: str = "") -> Service:
    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    github: acme/app\n    ci: github\n"
            + extra
            + "    environments:\n"
            + environments
            + "      prod: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )
    )
    service = Service.objects.get()
    branch_sync(service=service)
    build_sync(service=service)
    return service


def ask(ref: str, user: AbstractBaseUser, environment: str = "prod") -> str:
    """Deploy `ref` to prod (the deploy is then cancelled: no worker here); the sha, or the refusal."""
    try:
        deploy = deploy_request(environment=Environment.objects.get(name=environment), ref=ref, user=user)  # type: ignore[arg-type]
    except DeployRefused as refused:
        return f"refused: {refused}"
    Deploy.objects.filter(pk=deploy.pk).update(status=DeployStatus.CANCELLED)
    return f"allowed: {deploy.sha[:8]}"


@pytest.fixture
def prod_deployer(deployer: AbstractBaseUser) -> AbstractBaseUser:
    Grant.objects.create(principal="dana", role="prod_deployer")
    return deployer


def webhook(client: Client, event: str, payload: dict) -> str:
    """A signed GitHub webhook, processed as the worker would; its outcome."""
    body = json.dumps({**payload, "repository": {"full_name": "acme/app"}}).encode()
    answer = client.post(
        reverse("hook-github"),
        body,
        content_type="application/json",
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(body, WEBHOOK_SECRET),
        },
    )
    assert answer.status_code == 202, answer.content
    delivery = WebhookDelivery.objects.latest("pk")
    delivery_process(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery.outcome


def test_required_checks_count_only_from_the_named_app_and_status_creators(
    github: FakeGitHub, prod_deployer: AbstractBaseUser, client: Client
) -> None:
    repo = github.add_repo("acme/app", branches=2)
    main, feature = repo.branches["main"], repo.branches["feature/b001"]
    github.checks.add_check_run("acme/app", main, "test", run=github.add_run("acme/app", main))
    github.checks.add_status("acme/app", main, "ci/circleci", "success", creator="circleci")
    # Anyone who may push can post a status, or run a workflow of their own, under any name.
    github.checks.add_check_run("acme/app", feature, "test", app="my-own-app", app_id=4242)
    github.checks.add_status("acme/app", feature, "ci/circleci", "success", creator="mallory")
    checked_service()

    assert ask("main", prod_deployer) == f"allowed: {main[:8]}"
    refused = ask("feature/b001", prod_deployer)
    assert "prod needs its required checks to pass on" in refused
    assert "test does not count: my-own-app posted it, an app not in check_apps" in refused
    assert "ci/circleci does not count: mallory posted it, an account not in status_creators" in refused

    client.force_login(prod_deployer)
    page = client.get(reverse("service", args=["app"])).content.decode()
    assert 'data-checks="success"' in page and 'data-checks="pending"' in page


def test_a_check_run_webhook_reads_the_commits_checks_again_and_a_failure_closes_the_gate(
    github: FakeGitHub, prod_deployer: AbstractBaseUser, client: Client
) -> None:
    repo = github.add_repo("acme/app")
    main = repo.branches["main"]
    run = github.add_run("acme/app", main)
    github.checks.add_check_run("acme/app", main, "test", run=run)
    github.checks.add_status("acme/app", main, "ci/circleci", "success", creator="circleci")
    service = checked_service()
    assert ask("main", prod_deployer).startswith("allowed")

    github.reset_counters()
    build_sync(service=service)
    assert github.count("GET", "/check-runs") == 0, "a settled commit is not read again before RECHECK"

    rerun = github.checks.add_check_run("acme/app", main, "test", run=run, conclusion="failure")
    outcome = webhook(client, "check_run", {"action": "completed", "check_run": rerun})
    assert outcome == f"checks changed: builds and the checks of {main[:8]} synced again"
    assert ask("main", prod_deployer).startswith("allowed"), "read by the next sync, not by the webhook itself"
    build_sync(service=service)
    assert "test failed (github-actions)" in ask("main", prod_deployer)

    github.checks.add_status("acme/app", main, "ci/circleci", "pending", creator="circleci")
    github.checks.add_check_run("acme/app", main, "test", run=run)
    assert webhook(client, "status", {"sha": main, "state": "pending", "context": "ci/circleci"}).startswith("checks")
    build_sync(service=service)
    assert "ci/circleci pending (circleci)" in ask("main", prod_deployer)
    spent = github.units_spent
    CommitChecks.objects.update(stale=True)
    build_sync(service=service)  # read again, and unchanged answers cost nothing
    assert github.units_spent == spent

    other = "f" * 40
    outcome = webhook(client, "status", {"sha": other, "state": "success", "context": "ci/circleci"})
    assert outcome == "checks changed: builds synced again", "a commit Gantry keeps no checks for is not read"
    outcome = webhook(client, "check_run", {"action": "completed", "check_run": {"head_sha": "not a sha"}})
    assert outcome == "checks changed: builds synced again"
    assert not CommitChecks.objects.filter(sha=other).exists()


def test_a_github_actions_job_counts_only_from_a_workflow_run_the_environment_trusts(
    github: FakeGitHub, prod_deployer: AbstractBaseUser
) -> None:
    repo = github.add_repo("acme/app", branches=2)
    main, feature = repo.branches["main"], repo.branches["feature/b001"]
    pushed = github.add_run("acme/app", feature, branch="feature/b001")
    github.checks.add_check_run("acme/app", feature, "test", run=pushed)
    github.checks.add_status("acme/app", feature, "ci/circleci", "success", creator="circleci")
    # On main: the push's job failed; a pull request's run of the same workflow, and a check run a workflow
    # posted with its token (a suite of its own), say success under the same name.
    github.checks.add_check_run("acme/app", main, "test", run=github.add_run("acme/app", main), conclusion="failure")
    pull = github.add_run("acme/app", main, event="pull_request")
    github.checks.add_check_run("acme/app", main, "test", run=pull)
    github.checks.add_check_run("acme/app", main, "test")
    github.checks.add_status("acme/app", main, "ci/circleci", "success", creator="circleci")
    checked_service(environments="      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.2}]}\n")

    assert ask("feature/b001", prod_deployer, "test").startswith("allowed"), "test trusts any branch's build"
    refused = ask("feature/b001", prod_deployer)
    assert "test does not count: from .github/workflows/ci.yml #1 (branch feature/b001), not trusted_builds" in refused
    assert "ci/circleci does not count: prod counts it only on a commit that headed main" in refused
    assert "test failed (github-actions)" in ask("main", prod_deployer), "only the push's run counts, and it failed"


def test_branch_protection_names_the_checks_and_the_app_that_must_post_them(
    github: FakeGitHub, prod_deployer: AbstractBaseUser
) -> None:
    repo = github.add_repo("acme/app")
    main = repo.branches["main"]
    github.checks.protect("acme/app", "main", [("test", GITHUB_ACTIONS_APP_ID), ("e2e", None)])
    run = github.add_run("acme/app", main)
    github.checks.add_check_run("acme/app", main, "test", app="github-actions-look-alike", app_id=999)
    github.checks.add_check_run("acme/app", main, "e2e", run=run)
    service = checked_service("    github_actions: {branch_protection: true}\n")
    assert service.protected_checks == [
        {"context": "test", "app_id": GITHUB_ACTIONS_APP_ID},
        {"context": "e2e", "app_id": None},
    ]
    refused = ask("main", prod_deployer)
    said = f"test does not count: github-actions-look-alike posted it; the protection rule asks for app {15368}"
    assert said in refused

    github.checks.add_check_run("acme/app", main, "test", run=run)
    CommitChecks.objects.update(stale=True)
    build_sync(service=service)
    assert ask("main", prod_deployer).startswith("allowed")

    github.checks.protection_refused = True
    github.checks.protect("acme/app", "main", [("test", None)])
    build_sync(service=service)  # the runs and the commits' checks are still read
    state = SyncState.objects.get(service=service, source="checks")
    assert "branch_protection: true reads the default branch's protection" in state.error
    service.refresh_from_db()
    assert len(service.protected_checks) == 2, "what was read before stays"

    github.checks.protection_refused = False
    github.checks.protection.clear()  # the rule is gone (or moved to a ruleset, which is not read)
    build_sync(service=service)
    assert "protection rule requires no check Gantry can read" in ask("main", prod_deployer), "it fails closed"


def test_without_required_checks_the_workflow_runs_gate_as_before(
    github: FakeGitHub, prod_deployer: AbstractBaseUser
) -> None:
    repo = github.add_repo("acme/app")
    github.checks.add_check_run("acme/app", repo.branches["main"], "test", conclusion="failure")
    github.add_run("acme/app", repo.branches["main"])
    checked_service("")
    assert ask("main", prod_deployer).startswith("allowed"), "checks are not read, let alone required"
    assert github.count("GET", "/check-runs") == 0


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("ci: jenkins\n    github_actions: {required_checks: [test]}", "required checks are read from GitHub"),
        ("ci: github\n    github_actions: {required_checks: [test], check_apps: []}", "name the GitHub App"),
        ("ci: github\n    github_actions: {status_creators: ['bad login!']}", "status_creators"),
    ],
)
def test_the_catalog_says_what_is_wrong_with_required_checks(db: None, extra: str, said: str) -> None:
    with pytest.raises(CatalogError, match=said):
        catalog_parse(
            f"services:\n  app:\n    github: acme/app\n    {extra}\n    environments:\n"
            "      prod: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )
