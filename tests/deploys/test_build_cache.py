"""A dependency cache on the builder (build_cache): a redeploy that changes no dependency file skips the
install, and a test branch's build cannot put anything in what production builds restore. A real builder
sshd logging in as the non-root account gantry-build, bubblewrap sandboxes, a real Celery worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.demo.setup import git
from deployer.deploys.request import deploy_request
from deployer.models import Deploy, DeployLog, Environment
from deployer.sources.branches import branch_sync
from tests.support.builder_account import Builder
from tests.support.builder_catalog import builder_catalog, commit
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

BUILD = """if [ ! -d .deps ]; then echo INSTALLING; mkdir .deps; cp requirements.txt .deps/installed; fi
echo "deps: $(cat .deps/installed) in $PWD"
"""


def catalog(repo: Path, on: Builder, hosts: list[SshdHost], root: Path) -> str:
    keys = """    build_command: sh build.sh
    build_cache: {key: [requirements.txt], dirs: [.deps]}
"""
    return builder_catalog("app", repo, on, hosts, root, keys)


def said(deploy: Deploy) -> list[str]:
    return list(DeployLog.objects.filter(deploy=deploy).values_list("message", flat=True))


def deployed(environment: Environment, ref: str, user: AbstractBaseUser, worker: Worker) -> Deploy:
    branch_sync(service=environment.service)
    done = wait_for_deploy(deploy_request(environment=environment, ref=ref, user=user).pk, worker)
    assert done.status == DeployStatus.SUCCEEDED, done.reason
    return done


@pytest.mark.slow
def test_a_redeploy_restores_the_cache_and_a_test_build_cannot_poison_productions(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    dana_deploys_to_prod: None,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit(repo, {"requirements.txt": "django==5.2\n", "app.txt": "v1\n", "build.sh": BUILD}, "The app")
    catalog_apply(catalog_parse(catalog(repo, builder, ssh_hosts, tmp_path)))
    test, prod = (Environment.objects.get(service__name="app", name=name) for name in ("test", "prod"))

    first = deployed(test, "main", deployer, celery_worker)
    assert "INSTALLING" in said(first) and any(line.startswith("build cache: saved ") for line in said(first))
    commit(repo, {"app.txt": "v2\n"}, "A change that is not a dependency")
    second = deployed(test, "main", deployer, celery_worker)
    assert "INSTALLING" not in said(second), "restored: nothing to install"
    assert any(line.startswith("build cache: restored ") for line in said(second))
    assert f"deps: django==5.2 in {builder.path}/build/src" in said(second), "every build runs at one path"
    assert (tmp_path / "test" / "releases" / str(second.pk) / ".deps" / "installed").read_text() == "django==5.2\n"

    # A test branch adds a dependency and plants something in what it builds: it fills test's cache only.
    git(repo, "checkout", "--quiet", "-b", "poison")
    commit(
        repo,
        {"requirements.txt": "django==5.2\nrequests==2.34\n", "build.sh": BUILD + "echo planted > .deps/installed\n"},
        "Poison",
    )
    git(repo, "checkout", "--quiet", "main")
    deployed(test, "poison", deployer, celery_worker)
    commit(repo, {"requirements.txt": "django==5.2\nrequests==2.34\n"}, "The same dependency, on main")

    shipped = deployed(prod, "main", deployer, celery_worker)
    assert "INSTALLING" in said(shipped), "production's cache is its own: the test build's entry is not read"
    installed = tmp_path / "prod" / "releases" / str(shipped.pk) / ".deps" / "installed"
    assert installed.read_text() == "django==5.2\nrequests==2.34\n"
    assert not (installed.parent / "x").exists(), "nothing the test build planted"
    again = deployed(test, "main", deployer, celery_worker)
    assert "INSTALLING" not in said(again), "test restores test's entry (its own trust level)"

    # A build that swaps its tree for a symlink (to steer Gantry's packing and saving elsewhere) packs nothing.
    store = builder.path / "cache" / "app" / "production"
    entries = {path.name: path.read_bytes() for path in store.iterdir()}
    git(repo, "checkout", "--quiet", "-b", "escape")
    commit(repo, {"build.sh": f"cd .. && mv src real && ln -s {store} src\n"}, "Point src elsewhere")
    git(repo, "checkout", "--quiet", "main")
    branch_sync(service=test.service)
    escaped = wait_for_deploy(deploy_request(environment=test, ref="escape", user=deployer).pk, celery_worker)
    assert escaped.status == DeployStatus.FAILED
    assert "the build replaced its src directory with something else: nothing was packed" in escaped.reason
    assert {path.name: path.read_bytes() for path in store.iterdir()} == entries, "production's cache as it was"


def test_the_catalog_refuses_a_cache_without_a_sandboxed_builder() -> None:
    text = """
services:
  app:
    repo: /srv/git/app
    build_cache: {key: [requirements.txt], dirs: [.venv]}
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    assert "build_cache keeps dependencies between builds on a builder that sandboxes them: it needs build: " in str(
        [p.message for p in caught.value.problems]
    )
