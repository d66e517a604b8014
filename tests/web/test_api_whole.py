"""Every action a page offers is in the API, with the same rules: the log for followers, the plan, reject,
the pause decisions, promote, history with the page's filters, environments, and the browsable docs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import AuditAction, DeployStatus
from deployer.models import AuditEntry, Branch, Deploy, DeployLog, Environment
from tests.support.catalogs import SMALL_CATALOG


def api(user: AbstractBaseUser) -> Client:
    return Client(headers={"Authorization": f"Bearer {AuthToken.objects.create(user=user)[1]}"})


def post(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, body or {}, content_type="application/json")


def test_a_follower_reads_the_log_in_pages_after_the_line_it_has(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.RUNNING)
    for n in range(5):
        DeployLog.objects.create(deploy=deploy, at=timezone.now(), host="10.0.0.1", message=f"step {n}")
    client = api(deployer)
    first = client.get(f"/api/v1/deploys/{deploy.pk}/log/", {"limit": 3}).json()
    assert [line["message"] for line in first["lines"]] == ["step 0", "step 1", "step 2"]
    assert first["more"] is True and first["deploy"]["finished"] is False
    rest = client.get(f"/api/v1/deploys/{deploy.pk}/log/", {"since": first["next"]}).json()
    assert [line["message"] for line in rest["lines"]] == ["step 3", "step 4"] and rest["more"] is False
    empty = client.get(f"/api/v1/deploys/{deploy.pk}/log/", {"since": rest["next"]}).json()
    assert empty["lines"] == [] and empty["next"] == rest["next"]
    bad = client.get(f"/api/v1/deploys/{deploy.pk}/log/", {"since": "-1", "limit": "0"})
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"since", "limit"}
    assert client.get("/api/v1/deploys/999999/log/").status_code == 404


def test_the_plan_says_what_a_deploy_would_do_and_which_rule_stops_it(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    client = api(deployer)
    plan = client.get("/api/v1/services/app/test/plan/", {"ref": "feature/x"})
    assert plan.status_code == 200, plan.content
    body = plan.json()
    assert (body["ref"], body["sha"], body["blocked"]) == ("feature/x", "b" * 40, False)
    assert body["batches"] and {check["label"] for check in body["checks"]} >= {"permission", "lock"}
    post(client, "/api/v1/services/app/test/lock/", {"reason": "incident 42"})
    locked = client.get("/api/v1/services/app/test/plan/", {"ref": "main"}).json()
    lock = next(check for check in locked["checks"] if check["label"] == "lock")
    assert locked["blocked"] is True and lock["ok"] is False and "incident 42" in lock["detail"]
    assert Deploy.objects.count() == 0, "asking changes nothing"

    nothing = client.get("/api/v1/services/app/test/plan/")
    assert nothing.status_code == 400 and "ref=" in nothing.json()["error"]
    unknown = client.get("/api/v1/services/app/test/plan/", {"ref": "nope"})
    assert unknown.status_code == 400 and "app has no branch 'nope'" in unknown.json()["error"]
    first = client.get("/api/v1/services/app/test/plan/", {"promote": "true"})
    assert first.status_code == 400 and "nothing to promote" in first.json()["error"]


def test_a_checklist_is_ticked_through_the_api(db: None, deployer: AbstractBaseUser) -> None:
    catalog_apply(
        catalog_parse(
            SMALL_CATALOG.replace("deploy_path: /srv/app", "deploy_path: /srv/app\n        checklist: [QA signed off]")
        )
    )
    Branch.objects.create(service_id=Environment.objects.get().service_id, name="main", sha="a" * 40)
    client = api(deployer)
    shown = client.get("/api/v1/services/app/test/").json()
    assert shown["checklist"] == ["QA signed off"] and [h["address"] for h in shown["hosts"]] == [
        "10.0.0.1",
        "10.0.0.2",
    ]
    unticked = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main"})
    assert unticked.status_code == 400 and "QA signed off" in unticked.json()["error"]
    ticked = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main", "checklist": ["QA signed off"]})
    assert ticked.status_code == 201, ticked.content


def test_reject_decide_and_promote_follow_the_buttons_rules(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    client = api(deployer)
    Environment.objects.filter(pk=environment.pk).update(require_approval=True)
    waiting = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main"}).json()
    own = post(client, f"/api/v1/deploys/{waiting['id']}/reject/", {"reason": "not today"})
    assert own.status_code == 403 and "a second person must reject it" in own.json()["error"]
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    rejected = post(api(admin), f"/api/v1/deploys/{waiting['id']}/reject/", {"reason": "not today"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "cancelled"
    assert "rejected by root: not today" in rejected.json()["reason"]

    undecidable = post(client, f"/api/v1/deploys/{waiting['id']}/decide/", {"choice": "retry"})
    assert undecidable.status_code == 400 and "not paused" in undecidable.json()["error"]
    nonsense = post(client, f"/api/v1/deploys/{waiting['id']}/decide/", {"choice": "maybe"})
    assert nonsense.status_code == 400 and "choice" in nonsense.json()["fields"]


PROD = """
      prod:
        deploy_path: /srv/app
        require_green_build: false
        hosts: [{address: 10.0.1.1}]
"""


def test_promote_ships_what_runs_in_the_environment_before(
    db: None, deployer: AbstractBaseUser, dana_deploys_to_prod: None
) -> None:
    catalog_apply(catalog_parse(SMALL_CATALOG.rstrip("\n") + PROD))
    test = Environment.objects.get(name="test")
    client = api(deployer)
    nothing = post(client, "/api/v1/services/app/prod/promote/")
    assert nothing.status_code == 400 and "nothing runs in test yet" in nothing.json()["error"]
    shipped = Deploy.objects.create(environment=test, ref="main", sha="c" * 40, status=DeployStatus.SUCCEEDED)
    plan = client.get("/api/v1/services/app/prod/plan/", {"promote": "1"}).json()
    assert (plan["sha"], plan["promoted_from"]) == (shipped.sha, shipped.pk)
    moved = post(client, "/api/v1/services/app/prod/promote/", {"expected_sha": "d" * 40})
    assert moved.status_code == 400 and "since you looked at the plan" in moved.json()["error"]
    promoted = post(client, "/api/v1/services/app/prod/promote/", {"expected_sha": shipped.sha})
    assert promoted.status_code == 201, promoted.content
    assert (promoted.json()["sha"], promoted.json()["trigger"], promoted.json()["environment"]) == (
        shipped.sha,
        "promote",
        "prod",
    )


def test_history_has_the_pages_filters_and_documents_them(environment: Environment, deployer: AbstractBaseUser) -> None:
    client = api(deployer)
    post(client, "/api/v1/services/app/test/lock/", {"reason": "freeze for the audit"})
    post(client, "/api/v1/services/app/test/unlock/")
    entries = client.get("/api/v1/history/", {"action": AuditAction.LOCKED}).json()
    assert [(e["who"], e["action"], e["service"]) for e in entries["results"]] == [("dana", "locked", "app")]
    assert AuditEntry.objects.count() == 2
    wrong = client.get("/api/v1/history/", {"action": "exploded", "since": "yesterday"})
    assert wrong.status_code == 400 and set(wrong.json()["fields"]) == {"action", "since"}
    schema = Client().get("/api/schema/?format=json").json()
    documented = {p["name"] for p in schema["paths"]["/api/v1/history/"]["get"]["parameters"]}
    assert {"service", "team", "environment", "user", "action", "outcome", "since", "until"} <= documented


def test_every_route_ends_in_a_slash_and_the_old_spellings_still_answer(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    assert all(path.endswith("/") for path in schema["paths"]), [p for p in schema["paths"] if not p.endswith("/")]
    client = api(deployer)
    assert post(client, "/api/v1/services/app/test/lock", {"reason": "old spelling"}).status_code == 200
    assert post(client, "/api/v1/services/app/test/unlock/", {"reason": "new one"}).status_code == 200


def test_the_docs_are_served_from_here(db: None) -> None:
    client = Client()
    for page in ("/api/docs/", "/api/docs/swagger/"):
        html = client.get(page).content.decode()
        assert "/api/schema/" in html and "cdn" not in html.lower(), page
    redoc = client.get("/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js")
    assert redoc.status_code == 200


def test_a_token_neither_refreshes_another_service_nor_deploys_through_a_lock(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    from deployer.environments.api_tokens import token_create

    other = "  other:\n    team: web\n    repo: /srv/git/o.git\n    environments:\n      test:\n"
    catalog_apply(
        catalog_parse(SMALL_CATALOG + other + "        deploy_path: /srv/o\n        hosts: [{address: 10.0.0.9}]\n")
    )
    text = token_create(deployer, name="ci", scope="deploy", targets=["other"], days=30)[1]  # type: ignore[arg-type]
    scoped = Client(headers={"Authorization": f"Bearer {text}"})
    aimed = post(scoped, "/api/v1/services/app/refresh/", {"service": "other"})
    assert aimed.status_code == 403, "the URL names the service, whatever the body says"

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = api(admin)
    post(client, "/api/v1/services/app/test/lock/", {"reason": "incident"})
    through = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main", "override_lock": True})
    assert through.status_code == 403 and "not a token" in through.json()["error"]
    browser = Client()
    browser.force_login(admin)
    assert (
        post(browser, "/api/v1/deploys/", {"service": "app", "ref": "main", "override_lock": True}).status_code == 201
    )
