"""The release model on real hosts: a release phase that runs once, shared files and directories, config and
secrets written by Gantry, post-release commands, and commands that run as scripts. Real sshd hosts, a real
Celery worker, a real SQLite migration shared by the hosts."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.choices import DeployStatus
from deployer.models import Deploy, DeployHost, DeployLog, Environment
from deployer.notify.story import story
from tests.support.catalogs import MakeEnvironment
from tests.support.constants import SHOP_SECRET
from tests.support.deploys import deploy_and_wait, host_root
from tests.support.shop import release_options
from tests.support.worker import Worker

pytestmark = pytest.mark.slow


def current(environment: Environment, index: int) -> str:
    return os.readlink(host_root(environment, index) / "current")


def tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_release_phase_runs_once_before_any_host_switches(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, shop: dict[str, Path]
) -> None:
    environment = make_environment(options=release_options(shop, batch_size='"100%"'))

    deploy = deploy_and_wait(environment, "migrations", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    assert len(shop["runs"].read_text().splitlines()) == 1, "once, though 3 hosts switched in one batch"
    assert tables(shop["database"]) == {"applied", "items"}
    assert (deploy.release_ran_on, deploy.release_started_at is not None) == ("127.0.0.11", True)
    lines = list(deploy.log_lines.values_list("host", "message"))
    switched = next(i for i, (_, message) in enumerate(lines) if message.startswith("current -> releases/"))
    done = next(i for i, (_, message) in enumerate(lines) if message == "release phase done on 127.0.0.11")
    assert done < switched, "the release phase ends before the first switch"
    assert ("", "release_command (once, on 127.0.0.11, before any switch):\npython3 migrate.py") in lines


def test_a_failed_release_phase_switches_nothing_and_leaves_the_schema(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, shop: dict[str, Path]
) -> None:
    environment = make_environment(options=release_options(shop))
    good = deploy_and_wait(environment, "migrations", deployer, celery_worker)
    before = tables(shop["database"])

    bad = deploy_and_wait(environment, "bad-migration", deployer, celery_worker)

    assert bad.status == DeployStatus.FAILED
    assert bad.reason.startswith("release_command failed on 127.0.0.11: exited with status 1; its last lines: ")
    assert "migration failed: " in bad.reason and bad.reason.endswith("no host was switched"), bad.reason
    assert all(current(environment, i) == f"releases/{good.pk}" for i in range(3))
    assert tables(shop["database"]) == before, "the failed migration changed nothing"
    assert len(shop["runs"].read_text().splitlines()) == 2


def test_a_missing_shared_file_fails_staging_naming_host_and_path(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"shared_files": "[config/local.py]", "shared_dirs": "[media, log]"})
    root = host_root(environment, 1)
    for index in (0, 2):
        shared = host_root(environment, index) / "shared" / "config"
        shared.mkdir(parents=True)
        (shared / "local.py").write_text("DEBUG = False\n")

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason == (
        f"127.0.0.12: stage failed: the shared file config/local.py is missing: create {root}/shared/config/local.py "
        "on 127.0.0.12 (every release links it), then deploy again"
    )
    assert not any((host_root(environment, i) / "current").exists() for i in range(3)), "nothing switched"
    release = host_root(environment, 0) / "releases" / str(deploy.pk)
    assert os.readlink(release / "config" / "local.py") == str(host_root(environment, 0) / "shared/config/local.py")
    assert (host_root(environment, 0) / "shared" / "media").is_dir() and (release / "media").is_symlink()


def test_config_is_written_0600_with_its_secret_kept_out_of_logs_rows_and_slack(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, shop: dict[str, Path]
) -> None:
    options = {
        "config": json.dumps({"GREETING_STYLE": "loud", "SHOP_SECRET": "{{secret.SHOP_SECRET}}"}),
        "config_secrets": "[SHOP_SECRET]",
        "build_command": '"sh build.sh && echo \\"built with $SHOP_SECRET and $GREETING_STYLE\\""',
    }
    environment = make_environment(options=options)

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason
    for index in range(3):
        env_file = host_root(environment, index) / "shared" / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        assert f"SHOP_SECRET='{SHOP_SECRET}'" in env_file.read_text().splitlines()
        assert os.readlink(host_root(environment, index) / "current" / ".env") == str(env_file)
    logged = "\n".join(DeployLog.objects.filter(deploy=deploy).values_list("message", flat=True))
    assert "built with •••• and loud" in logged, "the command got its config; the log masks the secret"
    stored = json.dumps(list(Deploy.objects.filter(pk=deploy.pk).values()), default=str)
    stored += json.dumps(list(DeployHost.objects.filter(deploy=deploy).values()), default=str) + logged
    text, blocks = story(deploy)
    assert SHOP_SECRET not in stored + text + json.dumps(blocks)
    assert deploy.config_definitions == {"GREETING_STYLE": "loud", "SHOP_SECRET": "{{secret.SHOP_SECRET}}"}


def test_a_failed_post_release_command_fails_the_deploy_with_the_hosts_live(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"post_release_command": '"echo warming the cache; exit 4"'})

    deploy = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason == (
        "post_release_command failed on 127.0.0.11: exited with status 4; its last lines: warming the cache; "
        "every host runs the new release (nothing was rolled back)"
    )
    assert all(current(environment, i) == f"releases/{deploy.pk}" for i in range(3))


def test_commands_run_as_scripts_and_a_signal_is_named(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment(options={"build_command": '"false\\necho the build went on anyway"'})
    strict = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert strict.status == DeployStatus.FAILED and strict.reason.endswith("stage failed: exited with status 1")
    logged = list(strict.log_lines.values_list("host", "message"))
    assert (
        logged.count(("", "build_command (on every host, in the new release):\nfalse\necho the build went on anyway"))
        == 1
    )
    assert not any("went on anyway" in message for host, message in logged if host)

    Environment.objects.filter(pk=environment.pk).update(strict_commands=False)
    relaxed = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert relaxed.status == DeployStatus.SUCCEEDED, "opted out: only the last line's status counts, as in sh"

    Environment.objects.filter(pk=environment.pk).update(restart_command="kill -9 $$")
    killed = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert killed.status == DeployStatus.FAILED, "the rollback's restart is killed too"
    assert killed.reason.startswith(
        "127.0.0.11: activate failed: restart_command failed: killed by signal SIGKILL (exit status 137)"
    )
    assert "and the rollback failed too" in killed.reason
    environment.refresh_from_db()
    assert environment.is_locked and "rollback failed" in environment.lock_reason, "a failed rollback locks"


def test_a_failed_first_deploy_has_nothing_to_roll_back_and_does_not_lock(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser
) -> None:
    environment = make_environment()

    deploy = deploy_and_wait(environment, "broken-health", deployer, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason.endswith("; nothing to roll back to on 127.0.0.11 (its first deploy)"), deploy.reason
    environment.refresh_from_db()
    assert not environment.is_locked, "no rollback failed: there was nothing to go back to"
