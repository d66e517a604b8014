"""Build once (build: builder): the release is built on one SSH host for every host, checked by its sha256
on each host before unpacking, and a promotion ships the identical artifact without rebuilding. Real sshd
hosts (one of them also the builder), a real Celery worker."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.builder import artifacts_prune
from deployer.deploys.request import deploy_promote, deploy_request
from deployer.integrations import git
from deployer.models import Artifact, DeployLog, Environment, Service
from deployer.sources.branches import branch_sync
from deployer.sources.builds import build_sync
from tests.fakes.github import FakeGitHub
from tests.fakes.jenkins import FakeJenkins
from tests.support.archives import with_file
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait, head, host_root
from tests.support.net import free_port
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker


def catalog(app_repo: AppRepo, hosts: list[SshdHost], root: Path) -> str:
    builder = hosts[0]
    lines = {
        env: "".join(
            f"          - {{address: {h.address}, port: {h.port}, user: {h.user}, "
            f"deploy_path: {root / env / h.address}}}\n"
            for h in hosts
        )
        for env in ("test", "staging")
    }
    return f"""
services:
  app:
    repo: {app_repo.path}
    build_command: sh build.sh && echo built-on-the-builder
    build: builder
    builder: {{address: {builder.address}, port: {builder.port}, user: {builder.user}, path: {root / "builder"}}}
    environments:
      test:
        deploy_path: /srv/app
        hosts:
{lines["test"]}      staging:
        deploy_path: /srv/app
        hosts:
{lines["staging"]}"""


def builds() -> int:
    """How many builds ran on the builder (each says so in its deploy's log: the build is sandboxed, it
    can write nowhere else)."""
    return DeployLog.objects.filter(message="built-on-the-builder").count()


@pytest.mark.slow
def test_a_release_is_built_once_checked_on_every_host_and_promoted_as_is(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_repo: AppRepo,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    catalog_apply(catalog_parse(catalog(app_repo, ssh_hosts, tmp_path)))
    test, staging = (Environment.objects.get(service__name="app", name=name) for name in ("test", "staging"))
    branch_sync(service=test.service)

    first = wait_for_deploy(deploy_request(environment=test, ref="main", user=deployer).pk, celery_worker)

    assert first.status == DeployStatus.SUCCEEDED, first.reason
    assert builds() == 1, "built once, on the builder, for 3 hosts"
    assert len(first.artifact_sha256) == 64 and first.artifact_built_by_id == first.pk
    for host in ssh_hosts:
        release = tmp_path / "test" / host.address / "releases" / str(first.pk)
        assert list((release / "__pycache__").glob("app.*.pyc")), "the built tree arrived, not the source"
    checked = DeployLog.objects.filter(deploy=first, message="artifact sha256 checked").count()
    assert checked == 3, "each host checked the checksum before unpacking"

    promoted = wait_for_deploy(deploy_promote(environment=staging, user=deployer).pk, celery_worker)

    assert promoted.status == DeployStatus.SUCCEEDED, promoted.reason
    assert builds() == 1, "no rebuild: the identical artifact"
    assert (promoted.artifact_sha256, promoted.artifact_built_by_id) == (first.artifact_sha256, first.pk)
    assert DeployLog.objects.filter(deploy=promoted, message__startswith="reusing the artifact built by").exists()

    stored = Artifact.objects.get()
    (tmp_path / "builder" / "artifacts" / f"{stored.sha256}.tar.gz").write_bytes(b"tampered")
    again = wait_for_deploy(deploy_request(environment=test, ref="main", user=deployer).pk, celery_worker)
    assert again.status == DeployStatus.SUCCEEDED, again.reason
    assert builds() == 2, "a damaged artifact is never shipped: rebuilt"
    warned = DeployLog.objects.filter(deploy=again, message__contains="cannot be reused").values_list("message")
    assert "has sha256" in warned[0][0]
    assert Artifact.objects.get().built_by_id == again.pk, "the new build replaces the damaged one"


def test_build_builder_needs_a_builder() -> None:
    text = """
services:
  app:
    repo: /srv/git/app.git
    build: builder
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: app1.internal}]}
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    assert str(caught.value) == (
        "catalog.yml:5: services.app.build: build: builder needs a host to build on: add builder: {address: ...}"
    )


@pytest.mark.slow
def test_build_jenkins_ships_what_the_jenkins_build_of_the_sha_archived(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    integrations: tuple[FakeGitHub, FakeJenkins],
    app_repo: AppRepo,
    tmp_path: Path,
) -> None:
    _, jenkins = integrations
    jenkins.add_job("app-ci")
    environment = make_environment(options={"build": "jenkins"}, service_yaml="    jenkins_job: app-ci")
    sha = head(environment, "main")

    unbuilt = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert unbuilt.status == DeployStatus.FAILED
    assert unbuilt.reason == (
        f"build: jenkins ships what Jenkins built, and app-ci has no successful build of {sha[:12]} yet: "
        "wait for it (Refresh), or deploy with build: hosts"
    )

    jenkins.build("app-ci", "main", sha)  # archived nothing
    build_sync(service=environment.service)
    bare = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert bare.status == DeployStatus.FAILED
    assert bare.reason == (
        f"Jenkins build #1 of {sha[:12]} archived nothing; none matches jenkins_artifact '*.tar.gz' (archive the "
        "release as a .tar.gz with archiveArtifacts)"
    )

    tree = tmp_path / "tree.tar.gz"
    git.archive("app", str(app_repo.path), sha, tree)
    built = with_file(tree, "BUILT_BY_JENKINS", b"yes\n")
    jenkins.build("app-ci", "main", sha, artifacts={"dist/app.tar.gz": built, "report.html": b"<html>"})
    build_sync(service=environment.service)
    shipped = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert shipped.status == DeployStatus.SUCCEEDED, shipped.reason
    assert shipped.artifact_sha256 == hashlib.sha256(built).hexdigest()
    assert shipped.artifact_source == "Jenkins app-ci #2: dist/app.tar.gz"
    for index in range(3):
        assert (host_root(environment, index) / "current" / "BUILT_BY_JENKINS").read_text() == "yes\n"


@pytest.mark.slow
def test_hosts_connect_while_the_builder_builds_and_an_unreachable_one_fails_staging_by_name(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_repo: AppRepo,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    """The hosts are connected (and their sessions opened) during the build; a host that cannot be reached
    then is named by staging, as without a builder, and nothing switches anywhere."""
    dead = SshdHost(tmp_path / "dead", "127.0.0.15", free_port("127.0.0.15"))  # nothing listens there
    catalog_apply(catalog_parse(catalog(app_repo, [*ssh_hosts[:2], dead], tmp_path)))
    test = Environment.objects.get(service__name="app", name="test")
    branch_sync(service=test.service)

    deploy = wait_for_deploy(deploy_request(environment=test, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason.startswith(f"127.0.0.15: stage failed: cannot connect to root@127.0.0.15:{dead.port}")
    assert builds() == 1, "the build ran meanwhile, once"
    for host in ssh_hosts[:2]:
        root = tmp_path / "test" / host.address
        assert (root / "releases" / str(deploy.pk) / "REVISION").exists(), "the reachable hosts were staged"
        assert not (root / "current").exists(), "and never switched"


@pytest.mark.slow
def test_old_artifacts_are_removed_from_the_builder_unless_another_kept_one_names_the_file(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_repo: AppRepo,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
    settings: object,
) -> None:
    catalog_apply(catalog_parse(catalog(app_repo, ssh_hosts[:1], tmp_path)))
    test = Environment.objects.get(service__name="app", name="test")
    branch_sync(service=test.service)
    deploys = [
        wait_for_deploy(deploy_request(environment=test, ref=ref, user=deployer).pk, celery_worker)
        for ref in ("main", "feature/shout", "slow-restart")
    ]
    assert [d.status for d in deploys] == [DeployStatus.SUCCEEDED] * 3, [d.reason for d in deploys]
    first, second, third = (Artifact.objects.get(built_by=d) for d in deploys)
    assert len({first.sha256, second.sha256, third.sha256}) == 3
    # Another service's build made the same bytes as the first: its row still names that file.
    other = Service.objects.create(name="other", repo_url="/srv/git/other")
    Artifact.objects.create(
        service=other, sha=first.sha, inputs="x" * 64, sha256=first.sha256, size=first.size, builder=first.builder
    )
    settings.BUILDER_ARTIFACTS_KEPT = 1  # type: ignore[attr-defined]

    artifacts_prune(deploys[2])

    assert set(Artifact.objects.filter(service=test.service).values_list("pk", flat=True)) == {third.pk}
    files = sorted(p.name for p in (tmp_path / "builder" / "artifacts").iterdir())
    assert files == sorted([f"{first.sha256}.tar.gz", f"{third.sha256}.tar.gz"]), "the second's file is gone"
