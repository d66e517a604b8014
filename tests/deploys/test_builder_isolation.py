"""A shared builder never lets one build change another: a branch deployed to test by someone without a
production grant tries everything its Unix user can do to poison production's next build (a process left
behind, a crontab, a ~/.bashrc and PATH trojan for the builder's next session, poisoned caches and temp
dirs, the kept artifacts), and production still ships exactly the files of a clean build of main.

A real builder sshd logging in as gantry-build (not root), real hosts, a real Celery worker."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.demo.setup import git
from deployer.deploys.request import deploy_request
from deployer.models import DeployLog, Environment
from deployer.sources.branches import branch_sync
from tests.support.builder_account import Builder, crontab_of, processes_of
from tests.support.pages import plan_page
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

MAIN_BUILD = 'sha256sum app.txt > app.sum\necho "built $GANTRY_SHA ($GANTRY_REF)"\n'


def evil_build(base: Path) -> str:
    """What a branch author can make the build do, as the builder's Unix user."""
    trojan = 'tar() { case "$1" in -czf) echo planted-by-bashrc > "$4/planted.txt";; esac; command tar "$@"; }'
    path_tar = r'#!/bin/sh\ncase "$1" in -czf) echo planted-by-path > "$4/planted.txt";; esac\nexec /bin/tar "$@"\n'
    return f"""
home=$(getent passwd "$(id -u)" | cut -d: -f6)
nohup setsid sh -c 'while :; do for f in {base}/work/*/src/app.txt; do
  [ -f "$f" ] && echo planted-by-process >> "$f"; done; sleep 0.05; done' >/dev/null 2>&1 &
echo "* * * * * echo planted-by-cron >> {base}/work/*/src/app.txt" | crontab - || echo "crontab refused"
{{ printf '%s\\n' 'export PATH="$HOME/.local/bin:$PATH"' '{trojan}'; cat "$home/.bashrc"; }} > "$HOME/new-bashrc"
cp "$HOME/new-bashrc" "$home/.bashrc" || echo "bashrc refused"
mkdir -p "$home/.local/bin" && printf '{path_tar}' > "$home/.local/bin/tar" \
  && chmod +x "$home/.local/bin/tar" || echo "PATH refused"
for d in "$home/.cache" /tmp /var/tmp /dev/shm; do
  mkdir -p "$d/pip" && echo planted > "$d/pip/poison" || echo "$d refused"; done
for f in {base}/artifacts/*.tar.gz; do echo planted >> "$f" || echo "artifact refused"; done
echo "evil build done"
"""


def make_repo(path: Path, base: Path) -> None:
    path.mkdir()
    (path / "app.txt").write_text("the app\n")
    (path / "build.sh").write_text(MAIN_BUILD)
    git(path, "init", "--quiet", "--initial-branch=main")
    git(path, "add", "--all")
    git(path, "commit", "--quiet", "-m", "The app")
    git(path, "checkout", "--quiet", "-b", "evil")
    (path / "build.sh").write_text(evil_build(base))
    git(path, "commit", "--quiet", "-am", "Poison the builder")
    git(path, "checkout", "--quiet", "main")


def catalog(
    repo: Path,
    builder: Builder,
    hosts: list[SshdHost],
    root: Path,
    *,
    test_isolation: str = "sandbox",
    prod: bool = True,
) -> str:
    b = builder.host
    spec = f"{{address: {b.address}, port: {b.port}, user: {b.user}, path: {builder.path}"
    text = f"""
services:
  app:
    repo: {repo}
    build_command: sh build.sh
    build: builder
    environments:
      test:
        deploy_path: {root / "test"}
        builder: {spec}, isolation: {test_isolation}}}
        hosts: [{{address: {hosts[1].address}, port: {hosts[1].port}, user: {hosts[1].user}}}]
"""
    return text + (
        f"""      prod:
        deploy_path: {root / "prod"}
        require_green_build: false
        builder: {spec}}}
        hosts: [{{address: {hosts[0].address}, port: {hosts[0].port}, user: {hosts[0].user}}}]
"""
        if prod
        else ""
    )


def files_of(tree: Path) -> dict[str, str]:
    """Every file's path and sha256 (a symlink's target) under `tree`."""
    out = {}
    for path in sorted(tree.rglob("*")):
        name = str(path.relative_to(tree))
        if path.is_symlink():
            out[name] = f"-> {path.readlink()}"
        elif path.is_file():
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def clean_build(repo: Path, sha: str, into: Path) -> dict[str, str]:
    """main built by hand, in a fresh directory: what production must run, file for file."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(repo), "archive", sha], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "REVISION").write_text(sha + "\n")
    subprocess.run(["sh", "build.sh"], cwd=into, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin"})
    return files_of(into)


@pytest.mark.slow
def test_a_test_branch_cannot_change_what_production_builds_on_a_shared_builder(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    dana_deploys_to_prod: None,
    deployer_client: Client,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, builder.path)
    catalog_apply(catalog_parse(catalog(repo, builder, ssh_hosts, tmp_path)))
    test, prod = (Environment.objects.get(service__name="app", name=name) for name in ("test", "prod"))
    branch_sync(service=test.service)
    bashrc = (builder.home / ".bashrc").read_bytes()

    evil = wait_for_deploy(deploy_request(environment=test, ref="evil", user=deployer).pk, celery_worker)

    assert evil.status == DeployStatus.SUCCEEDED, evil.reason
    said = list(DeployLog.objects.filter(deploy=evil).values_list("message", flat=True))
    assert "evil build done" in said
    assert "crontab refused" in said and "bashrc refused" in said and "PATH refused" in said
    assert processes_of() == [], "every process of the build ended with it"
    assert crontab_of() == ""
    assert (builder.home / ".bashrc").read_bytes() == bashrc
    assert not (builder.home / ".local").exists() and not (builder.home / ".cache").exists()
    for shared in ("/tmp/pip/poison", "/var/tmp/pip/poison", "/dev/shm/pip/poison"):
        assert not Path(shared).exists(), f"{shared} was the build's own, gone with it"

    shipped = wait_for_deploy(deploy_request(environment=prod, ref="main", user=deployer).pk, celery_worker)

    assert shipped.status == DeployStatus.SUCCEEDED, shipped.reason
    assert shipped.artifact_built_by_id == shipped.pk
    release = tmp_path / "prod" / "releases" / str(shipped.pk)
    assert files_of(release) == clean_build(repo, shipped.sha, tmp_path / "clean")
    page = plan_page(deployer_client, "app", "prod", "main")
    assert "in a sandbox of its own (bubblewrap): no other build can change it" in page


@pytest.mark.slow
def test_without_a_sandbox_the_same_build_would_have_poisoned_the_account(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    """The attacks above are real: with isolation: account (no sandbox) they all land on the builder's
    account, which is why such an account may serve one trust level only."""
    repo = tmp_path / "repo"
    make_repo(repo, builder.path)
    catalog_apply(catalog_parse(catalog(repo, builder, ssh_hosts, tmp_path, test_isolation="account", prod=False)))
    test = Environment.objects.get(service__name="app", name="test")
    branch_sync(service=test.service)

    evil = wait_for_deploy(deploy_request(environment=test, ref="evil", user=deployer).pk, celery_worker)

    assert evil.status == DeployStatus.SUCCEEDED, evil.reason
    assert any("planted-by-process" not in p and "while :" in p for p in processes_of()), "a process lives on"
    assert "planted-by-cron" in crontab_of()
    assert (builder.home / ".bashrc").read_text().startswith('export PATH="$HOME/.local/bin:$PATH"')
    assert (builder.home / ".cache" / "pip" / "poison").exists()
    page = plan_page(deployer_client, "app", "test", "main")
    assert "as gantry-build, without a sandbox: that account builds only for non-production environments" in page


def test_an_account_without_a_sandbox_serves_one_trust_level(tmp_path: Path) -> None:
    text = """
services:
  app:
    repo: /srv/git/app.git
    build: builder
    builder: {address: build1.internal, user: build, isolation: account}
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: app1.internal}]}
      prod: {deploy_path: /srv/app, hosts: [{address: app2.internal}]}
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    assert str(caught.value).splitlines()[0] == (
        "catalog.yml:6: services.app.builder: builder account build@build1.internal:22 without a sandbox serves "
        "one trust level, and services.app.builder builds there too as production with isolation: account; give "
        "production a builder user of its own (builder: {user: ...}), or use isolation: sandbox everywhere it is used"
    )
    fixed = text.replace(
        "      prod: {deploy_path: /srv/app,",
        "      prod: {deploy_path: /srv/app, "
        "builder: {address: build1.internal, user: build-prod, isolation: account},",
    )
    catalog_parse(fixed)


@pytest.mark.slow
def test_production_refuses_a_builder_that_cannot_sandbox_and_says_how(
    transactional_db: None,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    dana_deploys_to_prod: None,
    builder: Builder,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    """bubblewrap missing on the builder (every command on its PATH but bwrap): no silent fallback to an
    unsandboxed build."""
    repo = tmp_path / "repo"
    make_repo(repo, builder.path)
    catalog_apply(catalog_parse(catalog(repo, builder, ssh_hosts, tmp_path)))
    prod = Environment.objects.get(service__name="app", name="prod")
    branch_sync(service=prod.service)
    commands = builder.path.parent / "bin-without-bwrap"
    commands.mkdir()
    for command in Path("/usr/bin").iterdir():
        if command.name != "bwrap" and not (commands / command.name).exists():
            (commands / command.name).symlink_to(command)
    config = builder.host.config_path.read_text()
    builder.host.config_path.write_text(config + f"SetEnv PATH={commands}\n")
    subprocess.run(["pkill", "-HUP", "-f", str(builder.host.config_path)], check=True)

    refused = wait_for_deploy(deploy_request(environment=prod, ref="main", user=deployer).pk, celery_worker)

    assert refused.status == DeployStatus.FAILED
    assert refused.reason.startswith(
        "the builder 127.0.0.14 cannot isolate builds (bubblewrap (bwrap) is not installed), and Gantry never builds "
        "there without a sandbox unless the catalog says so: install bubblewrap on the builder"
    ), refused.reason
    assert not any("built" in m for m in DeployLog.objects.filter(deploy=refused).values_list("message", flat=True))
