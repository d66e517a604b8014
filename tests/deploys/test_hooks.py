"""Hooks on real hosts: each phase's commands in order with their variables, once on the release host or on
every host, and what a failing hook does (before_*: stops; after_*: noted, or fails where required)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser

from deployer.catalog.load import CatalogError, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.models import Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait, head, host_root
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here


def hooks_yaml(log: Path) -> str:
    def say(phase: str, *variables: str) -> str:
        return f'"echo {phase} $GANTRY_HOST {" ".join(variables)} >> {log}"'

    hooks = {
        "before_build": say("before_build"),
        "after_build": say("after_build"),
        "before_switch": f"[{{command: {say('before_switch_once', '$GANTRY_HOSTS')}, once: true}}, "
        f"{say('before_switch')}]",
        "after_switch": say("after_switch", "$GANTRY_ROLE"),
        "after_deploy": f"{{command: {say('after_deploy', '$GANTRY_OUTCOME', '$GANTRY_PREVIOUS_SHA')}, once: true}}",
        "after_rollback": say("after_rollback", "$GANTRY_OUTCOME"),
        "on_failure": say("on_failure", "$GANTRY_OUTCOME"),
    }
    return "{" + ", ".join(f"{phase}: {value}" for phase, value in hooks.items()) + "}"


def said(log: Path) -> list[str]:
    lines = [line.strip() for line in log.read_text().splitlines()] if log.exists() else []
    log.write_text("")
    return lines


@pytest.mark.slow
def test_hooks_run_at_their_phases_in_order_with_their_variables(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    tmp_path: Path,
) -> None:
    log = tmp_path / "hooks.log"
    environment = make_environment(ssh_hosts[:2], options={"hooks": hooks_yaml(log)})

    first = deploy_and_wait(environment, "main", deployer, celery_worker)

    assert first.status == DeployStatus.SUCCEEDED, first.reason
    lines = said(log)
    for host in ("127.0.0.11", "127.0.0.12"):  # hosts stage in parallel: each in its own order
        assert [line for line in lines[:4] if line.endswith(host)] == [f"before_build {host}", f"after_build {host}"]
    assert lines[4:] == [
        "before_switch_once 127.0.0.11 127.0.0.11 127.0.0.12",
        "before_switch 127.0.0.11",
        "after_switch 127.0.0.11 app",
        "before_switch 127.0.0.12",
        "after_switch 127.0.0.12 app",
        "after_deploy 127.0.0.11 succeeded",
    ]

    second = deploy_and_wait(environment, "broken-health", deployer, celery_worker)

    assert second.status == DeployStatus.ROLLED_BACK, second.reason
    lines = said(log)
    assert lines[4:6] == ["before_switch_once 127.0.0.11 127.0.0.11 127.0.0.12", "before_switch 127.0.0.11"]
    assert "after_switch 127.0.0.11 app" not in lines, "its health check failed first"
    assert lines[6] == "after_rollback 127.0.0.11 rolled_back"
    assert sorted(lines[7:]) == ["on_failure 127.0.0.11 rolled_back", "on_failure 127.0.0.12 rolled_back"]
    previous = head(environment, "main")
    third = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert said(log)[-1] == f"after_deploy 127.0.0.11 succeeded {previous}", "GANTRY_PREVIOUS_SHA: what ran"
    assert third.status == DeployStatus.SUCCEEDED


@pytest.mark.slow
def test_a_failing_hook_stops_the_deploy_or_is_noted(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, ssh_hosts: list[SshdHost]
) -> None:
    environment = make_environment(ssh_hosts[:2])
    good = deploy_and_wait(environment, "main", deployer, celery_worker)

    def with_hooks(hooks: dict[str, list[dict[str, object]]]) -> None:
        Environment.objects.filter(pk=environment.pk).update(hooks=hooks)

    with_hooks({"before_switch": [{"command": "echo no maintenance window; exit 2", "once": True}]})
    stopped = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert stopped.status == DeployStatus.FAILED
    assert stopped.reason == (
        "before_switch hook 'echo no maintenance window; exit 2' failed once on 127.0.0.11: exited with status 2; "
        "its last lines: no maintenance window"
    )
    assert all((host_root(environment, i) / "current").readlink().name == str(good.pk) for i in range(2))

    with_hooks({"after_switch": [{"command": "echo cache cold >&2; false"}]})
    noted = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert noted.status == DeployStatus.SUCCEEDED
    assert noted.reason == "; ".join(
        f"after_switch hook 'echo cache cold >&2; false' failed on {host}: exited with status 1; its last lines: "
        "cache cold"
        for host in ("127.0.0.11", "127.0.0.12")
    )

    with_hooks({"after_switch": [{"command": "test -e NOT_THERE", "required": True}]})
    required = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert required.status == DeployStatus.ROLLED_BACK
    assert required.reason.startswith(
        "127.0.0.11: activate failed: after_switch hook 'test -e NOT_THERE' failed on 127.0.0.11: exited with "
        "status 1; it printed nothing; rolled back 127.0.0.11"
    ), required.reason
    assert all((host_root(environment, i) / "current").readlink().name == str(noted.pk) for i in range(2))


HOOKS = """
services:
  shop:
    repo: /srv/git/shop.git
    roles: {{web: {{restart_command: sh bin/restart}}, worker: {{restart_command: sh bin/worker}}}}
    hooks:
      {hooks}
    environments:
      test:
        deploy_path: /srv/shop
        hosts: [{{address: app1.internal}}]
"""


def problems(hooks: str) -> str:
    try:
        catalog_parse(HOOKS.format(hooks=hooks))
    except CatalogError as exc:
        return str(exc)
    return ""


def test_the_catalog_checks_hooks() -> None:
    assert problems("after_switch: [sh bin/warm, {command: sh bin/ping, role: worker, required: true}]") == ""
    assert problems("after_switch: {command: sh bin/ping, role: cron}") == (
        "catalog.yml:7: services.shop.hooks.after_switch[0]: role 'cron' is not declared in test "
        "(declared roles: web, worker)"
    )
    assert problems("before_switch: {command: sh bin/check, required: true}") == (
        "catalog.yml:7: services.shop.hooks.before_switch[0]: a before_ hook always stops the deploy when it fails; "
        "remove required: true"
    )
    assert "runs either once (on the release host) or on the hosts of a role" in problems(
        "after_deploy: {command: x, once: true, role: web}"
    )
    assert problems("after_swtich: x") == (
        "catalog.yml:6: services.shop.hooks: unknown key 'after_swtich'; did you mean 'after_switch'?"
    )
