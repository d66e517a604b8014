"""Secrets per environment (issue: a test host must never receive production's values). Each environment reads
its secrets at every deploy from a source of its own (a 0600 file or a command); the catalog refuses a
non-production environment that takes a secret from where production does; a value copied from production
fails the deploy; a rotated value needs no worker restart and is audited by name. Real sshd hosts, a real
Celery worker reading the files and running the command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from deployer.catalog.load import CatalogError, catalog_parse
from deployer.choices import AuditAction, DeployStatus
from deployer.lib.secrets import SecretSourceError
from deployer.models import AuditEntry, Deploy, DeployHost, DeployLog, Environment
from tests.support.catalogs import MakeEnvironment
from tests.support.deploys import deploy_and_wait, host_root
from tests.support.pages import plan_page
from tests.support.worker import Worker

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

TEST_VALUE = "test-db-pass-1111"
ROTATED = "test-db-pass-2222"
PROD_VALUE = "prod-db-pass-9999"


def secrets_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def catalog(test_secrets: str = "", prod_secrets: str = "") -> str:
    return f"""
services:
  shop:
    repo: /srv/git/shop
    config: {{DATABASE_URL: "postgres://shop:{{{{secret.DB_PASSWORD}}}}@db/shop"}}
    config_secrets: [DB_PASSWORD]
    environments:
      test:
        deploy_path: /srv/shop
        hosts: [{{address: 10.0.0.1}}]
        {test_secrets}
      prod:
        deploy_path: /srv/shop
        hosts: [{{address: 10.0.0.2}}]
        {prod_secrets}
"""


def refusals(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    return [problem.message for problem in caught.value.problems]


def test_the_catalog_refuses_a_test_environment_reading_production_secrets() -> None:
    [shared_variable] = refusals(catalog())
    assert shared_variable == (
        "takes secret DB_PASSWORD from the workers' GANTRY_SECRET_DB_PASSWORD, as production environment shop/prod "
        "does, so its hosts (where any branch's commands run) would get production's value; give it a source of its "
        "own: secrets: {file: /etc/gantry/secrets/shop-test.env} (NAME=value lines, mode 0600) or secrets: "
        "{command: [sops, -d, ...]}; or, if the value is meant to be shared, say so: "
        "secrets: {shared_with_production: [DB_PASSWORD]}"
    )
    same_file = "secrets: {file: /etc/gantry/shop.env}"
    [one_file] = refusals(catalog(test_secrets=same_file, prod_secrets=same_file))
    assert one_file.startswith("takes secret DB_PASSWORD from the same secrets file, as production environment")
    both = "secrets: {file: /etc/gantry/a.env, command: [cat, /etc/gantry/a.env]}"
    assert "secrets come from a file or from a command, not both: drop one" in " ".join(refusals(catalog(both)))

    catalog_parse(catalog(test_secrets="secrets: {file: /etc/gantry/shop-test.env}"))  # its own: fine
    catalog_parse(catalog(test_secrets="secrets: {shared_with_production: [DB_PASSWORD]}"))  # said out loud
    catalog_parse(catalog(prod_secrets="secrets: {command: [sops, -d, /etc/gantry/shop-prod.enc.env]}"))


@pytest.mark.slow
def test_each_environment_reads_its_own_secrets_at_every_deploy(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    tmp_path: Path,
) -> None:
    test_file = secrets_file(tmp_path / "shop-test.env", f"DB_PASSWORD={TEST_VALUE}\n# a comment\n")
    prod_file = secrets_file(tmp_path / "shop-prod.env", f"export DB_PASSWORD='{PROD_VALUE}'\n")
    options = {
        "config": json.dumps({"DATABASE_URL": "postgres://shop:{{secret.DB_PASSWORD}}@db/shop"}),
        "config_secrets": "[DB_PASSWORD]",
        "secrets": f"{{file: {test_file}}}",
        "build_command": '"sh build.sh && echo connecting to $DATABASE_URL"',
    }
    environment = make_environment(options=options)
    Environment.objects.create(  # production, as the catalog would have it: its own file
        service=environment.service,
        name="prod",
        deploy_path="/srv/app",
        production=True,
        config_secrets=["DB_PASSWORD"],
        secrets_file=str(prod_file),
    )
    assert f"DB_PASSWORD from the secrets file {test_file}, read at the deploy" in plan_page(
        deployer_client, "app", "test", "main"
    )

    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    assert env_lines(environment) == {f"DATABASE_URL='postgres://shop:{TEST_VALUE}@db/shop'"}

    secrets_file(test_file, f"DB_PASSWORD={ROTATED}\n")  # rotated: the worker keeps running
    rotated = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert rotated.status == DeployStatus.SUCCEEDED, rotated.reason
    assert env_lines(environment) == {f"DATABASE_URL='postgres://shop:{ROTATED}@db/shop'"}
    [changed] = AuditEntry.objects.filter(action=AuditAction.SECRET_CHANGED)
    assert (changed.service, changed.environment, changed.deploy_id, changed.actor_name) == (
        "app",
        "test",
        rotated.pk,
        "gantry",
    )
    assert changed.detail == (
        f"DB_PASSWORD has a new value in the secrets file {test_file} (noticed by deploy #{rotated.pk}; "
        "no value is kept)"
    )

    secrets_file(test_file, f"DB_PASSWORD={PROD_VALUE}\n")  # someone copied production's value
    copied = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert copied.status == DeployStatus.FAILED
    assert copied.reason == (
        f"secret DB_PASSWORD of app/test has the value production environment app/prod uses for DB_PASSWORD "
        f"(from the secrets file {prod_file}), and test's hosts run any branch's commands with it; give test a "
        f"value of its own in the secrets file {test_file}, or, if sharing is meant, list it: "
        f"secrets: {{shared_with_production: [DB_PASSWORD]}} on environment test (read on worker {copied.worker})"
    )
    assert "@" in copied.worker and ", pid " in copied.worker, "the worker that read them: its node name and pid"
    assert env_lines(environment) == {f"DATABASE_URL='postgres://shop:{ROTATED}@db/shop'"}, "nothing was written"
    assert os.readlink(host_root(environment, 0) / "current") == f"releases/{rotated.pk}"

    secrets_file(test_file, f"DB_PASSWORD={TEST_VALUE}\n", mode=0o644)
    readable = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert readable.reason == (
        f"the secrets file {test_file} may be read or changed by other users (mode 0644, owner uid {os.geteuid()}); "
        f"Gantry reads no secret others can: chown it to the workers' user and chmod 600 {test_file} "
        f"(read on worker {readable.worker})"
    )

    secrets_file(test_file, "OTHER=x\n")  # the secret is missing where this worker reads it
    missing = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert missing.reason == (
        f"config DATABASE_URL of app/test uses secret.DB_PASSWORD, but DB_PASSWORD is not in the secrets file "
        f"{test_file}; add a line DB_PASSWORD=... to {test_file} on every worker (read on worker {missing.worker})"
    )
    page = deployer_client.get(f"/deploys/{missing.pk}/").content.decode()
    assert f"<dt>Worker</dt><dd data-worker>{missing.worker}</dd>" in page

    script = tmp_path / "vault-ish.py"
    script.write_text(f"import json; print(json.dumps({{'DB_PASSWORD': '{TEST_VALUE}', 'OTHER': 'x'}}))\n")
    Environment.objects.filter(pk=environment.pk).update(secrets_file="", secrets_command=["python3", str(script)])
    by_command = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert by_command.status == DeployStatus.SUCCEEDED, by_command.reason
    assert env_lines(environment) == {f"DATABASE_URL='postgres://shop:{TEST_VALUE}@db/shop'"}

    Environment.objects.filter(pk=environment.pk).update(
        secrets_command=["python3", "-c", "raise SystemExit('denied')"]
    )
    refused = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert refused.reason == (
        "the secrets command `python3 -c 'raise SystemExit('\"'\"'denied'\"'\"')'` exited 1; what it printed on "
        f"stderr is in the worker's log (read on worker {refused.worker})"
    )

    stored = json.dumps(
        [list(model.objects.values()) for model in (Deploy, DeployHost, DeployLog, AuditEntry, Environment)],
        default=str,
        ensure_ascii=False,
    )
    for value in (TEST_VALUE, ROTATED, PROD_VALUE):
        assert value not in stored, "no value is kept in any table"
    assert "connecting to postgres://shop:••••@db/shop" in stored, "the log masks what the build printed"


def env_lines(environment: Environment) -> set[str]:
    """The secret lines of shared/.env on every host (one set: every host holds the same)."""
    found = set()
    for index in range(environment.hosts.count()):
        text = (host_root(environment, index) / "shared" / ".env").read_text()
        found |= {line for line in text.splitlines() if line.startswith("DATABASE_URL=")}
    return found


def test_a_secrets_file_is_read_safely_and_its_mistakes_never_print_a_value(tmp_path: Path) -> None:
    from deployer.lib.secrets import SecretSource, SecretSourceError, secrets_read

    token = "sk_live_51HxYzAbCdEf"
    stray = secrets_file(tmp_path / "stray.env", f"DB_PASSWORD=ok-value-1234\n{token}\n")
    with pytest.raises(SecretSourceError) as caught:
        secrets_read(SecretSource(file=str(stray)))
    assert str(caught.value) == (
        f"the secrets file {stray}: entry 2 is not NAME=value with a name of letters, digits and _; fix that line"
    )
    link = tmp_path / "link.env"
    link.symlink_to(secrets_file(tmp_path / "real.env", "DB_PASSWORD=ok-value-1234\n"))
    with pytest.raises(SecretSourceError, match=r"cannot be read on this worker .*not a symlink"):
        secrets_read(SecretSource(file=str(link)))
    assert secrets_read(SecretSource(file=str(tmp_path / "real.env"))).values == {"DB_PASSWORD": "ok-value-1234"}
    with pytest.raises(SecretSourceError, match=r"exited 3; what it printed on stderr is in the worker's log"):
        secrets_read(SecretSource(command=("sh", "-c", f"echo {token} >&2; exit 3")))
    started = time.monotonic()
    with pytest.raises(SecretSourceError, match="ran over 1 s; it was stopped"):
        secrets_read(SecretSource(command=("sh", "-c", "sleep 30 & sleep 30")), timeout=1)
    assert time.monotonic() - started < 5


def test_api_test_runs_of_a_test_environment_refuse_productions_value_too(db: None, tmp_path: Path) -> None:
    """Scheduled and manual runs read the secrets as a deploy does: a value copied from production stops them
    before any request (the test app runs any branch's code)."""
    from deployer.apitests.runs import environment_test
    from deployer.catalog.load import catalog_apply
    from deployer.environments.secret_scope import environment_secrets

    same = "prod-db-pass-9999"
    test_file = secrets_file(tmp_path / "test.env", f"DB_PASSWORD={same}\n")
    prod_file = secrets_file(tmp_path / "prod.env", f"DB_PASSWORD={same}\n")
    catalog_apply(
        catalog_parse(f"""
services:
  shop:
    repo: /srv/git/shop
    api_tests:
      login:
        steps: [{{name: in, url: "{{{{base_url}}}}/login", headers: {{X-Password: "{{{{secret.DB_PASSWORD}}}}"}}}}]
    environments:
      test:
        deploy_path: /srv/shop
        base_url: http://127.0.0.1:9
        api_test_secrets: [DB_PASSWORD]
        secrets: {{file: {test_file}}}
        hosts: [{{address: 10.0.0.1}}]
      prod:
        deploy_path: /srv/shop
        base_url: http://127.0.0.1:9
        api_test_secrets: [DB_PASSWORD]
        secrets: {{file: {prod_file}}}
        hosts: [{{address: 10.0.0.2}}]
""")
    )
    test = Environment.objects.get(name="test")

    [run] = environment_test(test.pk, "manual", read=environment_secrets)

    [step] = run.steps.all()
    assert not run.ok and step.name == "secrets"
    assert "has the value production environment shop/prod uses for DB_PASSWORD" in step.error
    assert same not in step.error


def test_a_value_production_reads_by_command_is_refused_in_test_after_productions_own_read(
    db: None, tmp_path: Path
) -> None:
    """Production's command (vault, sops) never runs for a test deploy: its own reads leave keyed digests of
    its values, and a test environment holding one of them is refused from then on."""
    from deployer.catalog.load import catalog_apply
    from deployer.environments.secret_scope import environment_secrets

    same = "vault-only-9d41c"
    script = tmp_path / "vault-ish.py"
    script.write_text(f"import json; print(json.dumps({{'DB_PASSWORD': '{same}'}}))\n")
    test_file = secrets_file(tmp_path / "test.env", f"DB_PASSWORD={same}\n")
    catalog_apply(
        catalog_parse(f"""
services:
  shop:
    repo: /srv/git/shop
    config_secrets: [DB_PASSWORD]
    environments:
      test:
        deploy_path: /srv/shop
        secrets: {{file: {test_file}}}
        hosts: [{{address: 10.0.0.1}}]
      prod:
        deploy_path: /srv/shop
        secrets: {{command: [python3, {script}]}}
        hosts: [{{address: 10.0.0.2}}]
""")
    )
    test, prod = (Environment.objects.get(name=name) for name in ("test", "prod"))
    environment_secrets(test)  # production has not read its values yet: nothing to compare with

    environment_secrets(prod)
    prod.refresh_from_db()
    assert same not in json.dumps(prod.secret_value_digests), "digests, never the value"
    with pytest.raises(SecretSourceError, match="has a value production environment shop/prod held when its"):
        environment_secrets(test)
    secrets_file(test_file, "DB_PASSWORD=a-test-value-of-its-own\n")
    environment_secrets(test)
