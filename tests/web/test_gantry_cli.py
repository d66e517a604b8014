"""The `gantry` command as a person runs it: the installed script, a token made on /me/, Gantry under gunicorn
and a real worker deploying to sshd hosts. It reaches Gantry only through the REST API."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser, User

from deployer.choices import DeployStatus, TokenScope
from deployer.environments.api_tokens import token_create
from deployer.models import AuditEntry, Deploy
from tests.support.catalogs import MakeEnvironment
from tests.support.webserver import WebServer
from tests.support.worker import BASE_DIR, Worker

pytestmark = pytest.mark.slow
GANTRY = str(BASE_DIR / ".venv" / "bin" / "gantry")


@pytest.fixture
def web(transactional_db: None) -> Iterator[WebServer]:
    server = WebServer(workers=1, threads=4).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A person's home: the config `gantry login` writes goes here, nothing of the test's own environment."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def gantry(
    home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(
        [GANTRY, *args], input=stdin, env=clean, capture_output=True, text=True, timeout=180, cwd=home
    )


def token_of(user: AbstractBaseUser, scope: str = TokenScope.DEPLOY, targets: tuple[str, ...] = ("app",)) -> str:
    assert isinstance(user, User)
    return token_create(user, name="laptop", scope=scope, targets=list(targets), days=30)[1]


def test_login_then_deploy_and_wait_streams_the_log_and_exits_by_outcome(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, web: WebServer, home: Path
) -> None:
    make_environment()
    token = token_of(deployer)
    wrong = gantry(home, "login", "--url", web.url, "--with-token", stdin="gantry_not-a-token\n")
    assert wrong.returncode == 4 and "refused the token" in wrong.stderr and "nothing was saved" in wrong.stderr
    signed = gantry(home, "login", "--url", web.url, "--with-token", stdin=token + "\n")
    assert signed.returncode == 0 and f"Signed in to {web.url} as dana" in signed.stdout, signed.stderr
    saved = home / ".config" / "gantry" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600 and json.loads(saved.read_text())["token"] == token

    done = gantry(home, "deploy", "app", "test", "main", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    deploy = Deploy.objects.get()
    assert deploy.status == DeployStatus.SUCCEEDED and deploy.requested_by == deployer
    lines = done.stdout.splitlines()
    assert lines[0] == f"deploy #{deploy.pk}: main ({deploy.sha[:12]}) of app to test, queued"
    assert sum("staging" in line for line in lines) == 3, "each host's progress, streamed"
    assert lines[-1].startswith(f"deploy #{deploy.pk} succeeded in ")

    failed = gantry(home, "deploy", "app", "test", "broken-build", "--wait")
    assert failed.returncode == 1 and "compiler says no" in failed.stdout and "failed" in failed.stderr
    unknown = gantry(home, "deploy", "app", "test", "no-such-branch")
    assert unknown.returncode == 2 and "app has no branch 'no-such-branch'" in unknown.stderr
    elsewhere = gantry(home, "deploy", "app", "prod", "main")
    assert elsewhere.returncode == 2 and "app has no environment 'prod'; it has: test" in elsewhere.stderr

    as_json = gantry(home, "status", "app", "-o", "json")
    assert as_json.returncode == 0
    state = json.loads(as_json.stdout)
    assert state["environments"][0]["current_deploy"] == deploy.pk
    assert [d["status"] for d in state["recent_deploys"]] == ["failed", "succeeded"]
    told = gantry(home, "status", "app")
    assert f"app/test  #{deploy.pk} main ({deploy.sha[:12]}) by dana" in told.stdout


def test_plan_lock_rollback_history_and_a_token_that_may_only_read(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, web: WebServer, home: Path
) -> None:
    make_environment()
    env = {"GANTRY_URL": web.url, "GANTRY_TOKEN": token_of(deployer)}
    planned = gantry(home, "plan", "app", "test", "main", env=env)
    assert planned.returncode == 0 and "allowed now" in planned.stdout, planned.stdout + planned.stderr
    assert gantry(home, "deploy", "app", "test", "main", "--wait", env=env).returncode == 0
    assert gantry(home, "deploy", "app", "test", "feature/shout", "--wait", env=env).returncode == 0

    locked = gantry(home, "lock", "app", "test", "--reason", "incident 7", env=env)
    assert locked.returncode == 0 and "Locked app/test." in locked.stdout
    blocked = gantry(home, "plan", "app", "test", "main", env=env)
    assert blocked.returncode == 2 and "NO lock" in blocked.stdout and "incident 7" in blocked.stdout
    refused = gantry(home, "deploy", "app", "test", "main", env=env)
    assert refused.returncode == 2 and "incident 7" in refused.stderr

    back = gantry(home, "rollback", "app", "test", "--wait", "-o", "json", env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    rollback = json.loads(back.stdout)
    assert (rollback["status"], rollback["trigger"]) == ("succeeded", "rollback")
    assert gantry(home, "unlock", "app", "test", env=env).returncode == 0

    listed = gantry(home, "history", "--action", "locked", "--user", "dana", "-o", "json", env=env)
    assert [(e["who"], e["detail"]) for e in json.loads(listed.stdout)][:1] == [("dana", "incident 7")]
    wrong = gantry(home, "history", "--since", "last tuesday", env=env)
    assert wrong.returncode == 2 and "since" in wrong.stderr

    reader = {**env, "GANTRY_TOKEN": token_of(deployer, TokenScope.READ, ())}
    assert gantry(home, "services", env=reader).returncode == 0
    denied = gantry(home, "lock", "app", "test", "--reason", "x", env=reader)
    assert denied.returncode == 2 and "is read only" in denied.stderr
    assert not AuditEntry.objects.filter(action="locked", detail="x").exists()


def test_gantry_unreachable_or_in_clear_text_is_said_plainly(home: Path) -> None:
    gone = gantry(home, "services", env={"GANTRY_URL": "http://127.0.0.1:9", "GANTRY_TOKEN": "gantry_x"})
    assert gone.returncode == 4 and "cannot reach Gantry at http://127.0.0.1:9" in gone.stderr
    clear = gantry(home, "services", env={"GANTRY_URL": "http://gantry.example.com", "GANTRY_TOKEN": "gantry_x"})
    assert clear.returncode == 4 and "in clear" in clear.stderr
    nothing = gantry(home, "services")
    assert nothing.returncode == 4 and "run gantry login" in nothing.stderr
    helped = gantry(home, "--help")
    assert helped.returncode == 0 and "deploy" in helped.stdout and "Exit codes" in helped.stdout
    completion = gantry(home, "completion", "bash")
    assert completion.returncode == 0 and "_GANTRY_COMPLETE" in completion.stdout


def test_what_a_branch_author_wrote_cannot_drive_the_terminal() -> None:
    from gantry_cli.show import clean, log_line

    line = {"at": "2026-12-07T10:00:00Z", "level": "info", "host": "h1", "message": "ok\x1b]0;pwned\x07\x1b[2J"}
    shown = log_line(line)
    assert "\x1b" not in shown and "\x07" not in shown and "ok" in shown
    assert clean("tab\tstays") == "tab\tstays"
