"""The security review's findings, each tried as an attacker (or a fault) would, and refused."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.models import Environment, Grant, Service

CATALOG = """
services:
  app:
    repo: /srv/git/app.git
    api_tests:
      smoke: {steps: [{name: up, url: "{{base_url}}/healthz"}]}
    environments:
      test:
        deploy_path: /srv/app
        base_url: http://127.0.0.1:9
        hosts: [{address: 10.0.0.1}]
      prod:
        deploy_path: /srv/app
        base_url: http://127.0.0.1:9
        hosts: [{address: 10.0.0.2}]
"""


@pytest.fixture
def app(db: None) -> Service:
    catalog_apply(catalog_parse(CATALOG))
    return Service.objects.get(name="app")


def signed_in(name: str, *, role: str = "") -> Client:
    user = get_user_model().objects.create_user(name, f"{name}@example.com", f"{name}-password-1")
    if role:
        Grant.objects.create(principal=name, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_a_viewer_may_not_refresh_or_run_the_api_tests(app: Service) -> None:
    viewer = signed_in("vera")
    page = viewer.get(reverse("service", args=["app"])).content.decode()
    assert "Run now" not in page and ">Refresh<" not in page

    refresh = viewer.post(reverse("service-refresh", args=["app"]))
    assert refresh.status_code == 403
    assert "vera may not refresh app: that needs the deploy permission" in refresh.content.decode()
    assert Service.objects.get(pk=app.pk).refresh_requested_at is None, "nothing was queued"

    run = viewer.post(reverse("api-tests-run", args=["app", "test"]))
    assert run.status_code == 403
    assert "vera may not deploy to app/test" in run.content.decode()


def test_run_now_needs_the_deploy_permission_of_that_environment(app: Service) -> None:
    tester = signed_in("tess", role="deployer")
    assert tester.post(reverse("api-tests-run", args=["app", "test"])).status_code == 302
    prod = tester.post(reverse("api-tests-run", args=["app", "prod"]))
    assert prod.status_code == 403 and "tess may not deploy to app/prod" in prod.content.decode()


def test_a_second_refresh_soon_after_is_answered_not_queued(app: Service) -> None:
    tester = signed_in("tess", role="deployer")
    first = tester.post(reverse("service-refresh", args=["app"]), follow=True)
    assert "Refreshing app; reload in a few seconds." in first.content.decode()
    asked = Service.objects.get(pk=app.pk).refresh_requested_at
    assert asked is not None

    second = tester.post(reverse("service-refresh", args=["app"]), follow=True)
    assert "Already refreshing app (asked 0 s ago); reload in a few seconds." in second.content.decode()
    assert Service.objects.get(pk=app.pk).refresh_requested_at == asked, "no second sync was queued"


def test_environments_get_their_secret_scope_from_the_catalog(app: Service) -> None:
    test, prod = Environment.objects.filter(service=app).order_by("position")
    assert (test.api_test_repo_secrets, prod.api_test_repo_secrets) == (True, False), "off by default in production"


# --- sign-in brute force ------------------------------------------------------------------------


def wrong_passwords(client: Client, url: str, username: str, times: int) -> list[int]:
    return [client.post(url, {"username": username, "password": f"guess-{n}"}).status_code for n in range(times)]


def test_repeated_wrong_passwords_lock_the_user_out_with_a_clear_message(db: None) -> None:
    get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    attacker = Client(REMOTE_ADDR="203.0.113.7")

    assert wrong_passwords(attacker, reverse("login"), "dana", 4) == [200] * 4, "a few mistakes are just mistakes"
    locked = attacker.post(reverse("login"), {"username": "dana", "password": "guess-5"})
    assert locked.status_code == 429
    assert "After 5 wrong passwords for <b>dana</b> or from this address, signing in is locked for 15 min" in (
        locked.content.decode()
    )

    owner = Client(REMOTE_ADDR="198.51.100.1")  # the real dana, elsewhere, with the right password
    assert owner.post(reverse("login"), {"username": "dana", "password": "dana-password-1"}).status_code == 429
    assert "_auth_user_id" not in owner.session


def test_one_address_trying_many_users_is_locked_out_too(db: None) -> None:
    get_user_model().objects.create_user("olga", "olga@example.com", "olga-password-1")
    attacker = Client(REMOTE_ADDR="203.0.113.8")
    statuses = [
        attacker.post(reverse("login"), {"username": f"user{n}", "password": "123456"}).status_code for n in range(5)
    ]
    assert statuses[-1] == 429
    assert attacker.post(reverse("login"), {"username": "olga", "password": "olga-password-1"}).status_code == 429


def test_the_admin_sign_in_is_covered_and_an_admin_unlocks(db: None) -> None:
    get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1")
    get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    assert wrong_passwords(attacker, reverse("admin:login"), "dana", 5)[-1] == 429

    admin = Client(REMOTE_ADDR="198.51.100.2")
    admin.force_login(get_user_model().objects.get(username="root"))
    attempts = admin.get(reverse("admin:axes_accessattempt_changelist"))
    assert attempts.status_code == 200 and "dana" in attempts.content.decode()
    from axes.models import AccessAttempt

    admin.post(
        reverse("admin:axes_accessattempt_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    owner = Client(REMOTE_ADDR="198.51.100.1")
    assert owner.post(reverse("login"), {"username": "dana", "password": "dana-password-1"}).status_code == 302


def test_a_forged_forwarded_header_buys_no_fresh_attempts(db: None, settings: object) -> None:
    settings.PROXY_COUNT = 1  # one proxy in front: it appends the address it saw
    client = Client(REMOTE_ADDR="10.0.0.1")
    for n in range(5):
        forged = f"198.51.100.{n}, 203.0.113.10"  # the client wrote the left part; the proxy appended its peer
        client.post(reverse("login"), {"username": f"u{n}", "password": "x"}, HTTP_X_FORWARDED_FOR=forged)
    again = client.post(
        reverse("login"), {"username": "u9", "password": "x"}, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.10"
    )
    assert again.status_code == 429


def test_common_and_numeric_passwords_are_refused() -> None:
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    for weak in ("password123", "12345678901"):
        with pytest.raises(ValidationError):
            validate_password(weak)


# --- Slack: every user-controlled string escaped in every text field -----------------------------


def test_a_branch_named_like_a_slack_mention_reaches_slack_escaped(app: Service, settings: object) -> None:
    import json as jsonlib

    from deployer.choices import DeployStatus
    from deployer.lib.refs import branch_name_check
    from deployer.models import Deploy
    from deployer.notify.story import story

    settings.SLACK_SIGNING_SECRET = "s"  # the buttons and their confirm dialogs are in the message
    hostile = "<!channel>"
    assert branch_name_check(hostile) == hostile, "git accepts it, so a branch author can push it"
    test = Environment.objects.get(service=app, name="test")
    Environment.objects.filter(pk=test.pk).update(locked_at=timezone.now(), lock_reason="<!here> <@U123|boss>")
    test.refresh_from_db()
    Deploy.objects.create(environment=test, ref=hostile, sha="a" * 40, status=DeployStatus.SUCCEEDED)
    deploy = Deploy.objects.create(
        environment=test,
        ref=hostile,
        sha="b" * 40,
        previous_sha="a" * 40,
        status=DeployStatus.AWAITING_APPROVAL,
        reason="<https://evil.example|click me> & more",
    )

    text, blocks = story(deploy)
    deploy.status = DeployStatus.SUCCEEDED
    _, live_blocks = story(deploy)  # with Rollback and Unlock buttons (and their dialogs)

    sent = text + jsonlib.dumps(blocks + live_blocks)
    for raw in ("<!channel>", "<!here>", "<@U123", "<https://evil"):
        assert raw not in sent, raw
    assert "&lt;!channel&gt;" in text and "&lt;!here&gt;" in sent and "&amp; more" in sent


# --- served over HTTPS ----------------------------------------------------------------------------


def python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Python in the project's folder with `env`: Gantry's settings as a fresh process reads them."""
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def readme_production_settings() -> dict[str, str]:
    """The production settings block of docs/operations.md, as environment variables (placeholders filled)."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = readme.split("## Production settings", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    values = {}
    for line in block.splitlines():
        name, _, value = line.partition("=")
        value = value.split("  #", 1)[0].strip()
        values[name.strip()] = secrets.token_urlsafe(50) if value.startswith("<") else value
    return values


@pytest.mark.slow
def test_check_deploy_finds_nothing_with_the_readmes_production_settings(tmp_path: Path) -> None:
    # Only the README's settings: nothing the test run itself set (DJANGO_SETTINGS_MODULE, and the browser
    # tests' DJANGO_ALLOW_ASYNC_UNSAFE, which the check rightly refuses).
    env = {"PATH": os.environ["PATH"], **readme_production_settings(), "GANTRY_VAR_DIR": str(tmp_path)}
    done = python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_https_base_url_makes_cookies_secure_and_turns_on_hsts(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "deployer.settings",
        "GANTRY_VAR_DIR": str(tmp_path),
        "GANTRY_BASE_URL": "https://gantry.example.com",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO=https",
    }
    done = python(["-c", f"import django; django.setup(); {code}"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"


# --- Django staff are not Gantry admins -----------------------------------------------------------


def test_staff_with_every_model_permission_cannot_grant_access_or_edit_commands(app: Service) -> None:
    from django.contrib.auth.models import Permission

    staff = get_user_model().objects.create_user("stan", "stan@example.com", "stan-password-1", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())
    client = Client()
    client.force_login(staff)
    test = Environment.objects.get(service=app, name="test")
    for name, args in [
        ("admin:deployer_grant_changelist", []),
        ("admin:deployer_grant_add", []),
        ("admin:deployer_environment_change", [test.pk]),
        ("admin:deployer_service_change", [app.pk]),
        ("admin:deployer_slackidentity_changelist", []),
        ("admin:auth_user_changelist", []),
        ("admin:auth_user_change", [staff.pk]),
        ("admin:auth_group_add", []),
    ]:
        assert client.get(reverse(name, args=args)).status_code == 403, name
    changed = client.post(reverse("admin:deployer_environment_change", args=[test.pk]), {"restart_command": "id"})
    assert changed.status_code == 403
    assert Environment.objects.get(pk=test.pk).restart_command == ""
    assert client.get(reverse("admin:deployer_deploy_changelist")).status_code == 200, "records stay readable"

    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1"))
    assert root.get(reverse("admin:deployer_environment_change", args=[test.pk])).status_code == 200
    assert root.get(reverse("admin:auth_user_changelist")).status_code == 200


# --- the audit log, in the database itself --------------------------------------------------------


def test_the_database_refuses_raw_sql_that_rewrites_the_audit_log(app: Service) -> None:
    from django.db import DatabaseError, connection, transaction

    from deployer.choices import AuditAction
    from deployer.environments.audit import audit_erasure, audit_record
    from deployer.models import AuditEntry

    dana = get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    entry = audit_record(AuditAction.LOCKED, actor=dana, environment=Environment.objects.get(service=app, name="test"))
    columns = [f.column for f in AuditEntry._meta.concrete_fields if f.column != "actor_id"]
    attempts = [f'UPDATE deployer_auditentry SET "{column}" = "{column}" WHERE id = %s' for column in columns]
    attempts += [
        "UPDATE deployer_auditentry SET detail = 'nothing happened' WHERE id = %s",
        "UPDATE deployer_auditentry SET actor_id = (SELECT MAX(id) FROM auth_user) + 1 WHERE id = %s",
        "DELETE FROM deployer_auditentry WHERE id = %s",
    ]
    for sql in attempts:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # this test's own inserts are checked first
            cursor.execute("TRUNCATE deployer_auditentry")
    assert AuditEntry.objects.get(pk=entry.pk).detail == entry.detail

    dana.delete()  # people leave: the entry keeps their name, loses the link
    assert (AuditEntry.objects.get(pk=entry.pk).actor_id, AuditEntry.objects.get(pk=entry.pk).actor_name) == (
        None,
        "dana",
    )
    with audit_erasure(), connection.cursor() as cursor:  # the operator's way round it, deliberately
        cursor.execute("DELETE FROM deployer_auditentry WHERE id = %s", [entry.pk])
    assert not AuditEntry.objects.filter(pk=entry.pk).exists()


# --- what pages show and what is written to disk ----------------------------------------------------


def test_credentials_in_a_repository_url_are_never_shown(db: None) -> None:
    from deployer.integrations.git import GitError

    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    repo: https://ci:ghp_s3cret@git.example.com/acme/app.git\n"
            "    environments:\n      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}\n"
        )
    )
    page = signed_in("vera").get(reverse("service", args=["app"])).content.decode()
    assert "ghp_s3cret" not in page and "https://•••@git.example.com/acme/app.git" in page
    said = str(GitError("commit 1234 is not in https://ci:ghp_s3cret@git.example.com/acme/app.git"))
    assert said == "commit 1234 is not in https://•••@git.example.com/acme/app.git"


def test_a_build_link_from_jenkins_is_only_ever_http(app: Service) -> None:
    from deployer.choices import BuildResult
    from deployer.integrations.jenkins import _parse_job
    from deployer.models import Branch, Build

    parsed = _parse_job("app", {"builds": [{"number": 1, "result": "SUCCESS", "url": "javascript:alert(1)"}]})
    assert [build.url for build in parsed] == [""], "refused as it arrives"
    Branch.objects.create(service=app, name="main", sha="a" * 40)
    Build.objects.create(  # one stored before Gantry checked
        service=app, job="app", number=2, branch="main", sha="a" * 40, result=BuildResult.SUCCESS, url="javascript:x"
    )
    page = signed_in("vera").get(reverse("service", args=["app"])).content.decode()
    assert "javascript:" not in page and "#2" in page


def test_private_files_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    from deployer.integrations.ssh_keys import ed25519_key_write
    from deployer.lib.private_file import private_file_write

    old = os.umask(0)
    try:
        assert private_file_write(tmp_path / "secret_key", b"k1")
        assert not private_file_write(tmp_path / "secret_key", b"k2"), "a second writer leaves it as it is"
        ed25519_key_write(tmp_path / "ssh" / "id_ed25519", "gantry@test")
    finally:
        os.umask(old)
    assert (tmp_path / "secret_key").read_bytes() == b"k1"
    for path in (tmp_path / "secret_key", tmp_path / "ssh" / "id_ed25519"):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert (tmp_path / "ssh").stat().st_mode & 0o777 == 0o700


@pytest.mark.slow
@pytest.mark.one_backend  # a one-box install is SQLite whatever the half
def test_a_one_box_install_keeps_its_database_and_var_dir_private(tmp_path: Path) -> None:
    """Under the common umask 022, var/ would be 0755 and gantry.sqlite3 (API tokens, sessions) 0644."""
    fresh, existing = tmp_path / "fresh" / "var", tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)  # what an earlier Gantry left
    for var in (fresh, existing):
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        done = subprocess.run(
            ["sh", "-c", 'umask 022; exec "$0" manage.py migrate -v0', sys.executable],
            env={**env, "GANTRY_VAR_DIR": str(var)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert var.stat().st_mode & 0o777 == 0o700, var
        for name in ("gantry.sqlite3", "secret_key"):
            assert (var / name).stat().st_mode & 0o777 == 0o600, var / name


def test_api_tokens_are_kept_as_digests_and_only_superusers_handle_them(app: Service) -> None:
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import connection
    from knox.models import AuthToken

    dana = get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    staff = get_user_model().objects.create_user("stan", "stan@example.com", "stan-password-1", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())
    out = StringIO()
    call_command("api_token", "dana", "--legacy", stdout=out)
    key = out.getvalue().strip()
    assert len(key) == 64
    with connection.cursor() as cursor:  # nothing in the database holds the key itself
        cursor.execute("SELECT * FROM knox_authtoken")
        assert key not in repr(cursor.fetchall())
    assert Client(headers={"Authorization": f"Token {key}"}).get("/api/v1/services/").status_code == 200
    wrong = key[:-1] + ("1" if key.endswith("0") else "0")  # one character off
    assert Client(headers={"Authorization": f"Token {wrong}"}).get("/api/v1/services/").status_code == 401

    client = Client()
    client.force_login(staff)
    token = AuthToken.objects.get(user=dana)
    for name, args in [
        ("admin:knox_authtoken_changelist", []),
        ("admin:knox_authtoken_add", []),
        ("admin:knox_authtoken_change", [token.pk]),
        ("admin:deployer_team_changelist", []),
    ]:
        assert client.get(reverse(name, args=args)).status_code == 403, name
    minted = client.post(reverse("admin:knox_authtoken_add"), {"user": dana.pk})
    assert minted.status_code == 403 and AuthToken.objects.count() == 1, "staff cannot mint a token for dana"

    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1"))
    assert root.get(reverse("admin:knox_authtoken_changelist")).status_code == 200
    made = root.post(reverse("admin:knox_authtoken_add"), {"user": dana.pk}, follow=True)
    assert made.status_code == 200 and AuthToken.objects.filter(user=dana).count() == 2
    with pytest.raises(CommandError, match="no active user 'nobody'; make one in the admin first"):
        call_command("api_token", "nobody", "--legacy")
