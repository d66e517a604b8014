"""The REST API: token auth, the same rules as the pages, refusals with the domain's status codes."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from deployer.choices import AuditAction, DeployStatus
from deployer.models import AuditEntry, Deploy, Environment
from tests.support.api import api, post


def test_without_a_token_the_api_says_401(environment: Environment) -> None:
    response = api().get("/api/v1/services/")
    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided."}
    bad = Client(headers={"Authorization": "Token not-a-token"}).get("/api/v1/services/")
    assert bad.status_code == 401 and bad.json()["error"] == "Invalid token."


def test_services_branches_builds_and_deploys_are_listed(environment: Environment, deployer: AbstractBaseUser) -> None:
    client = api(deployer)
    services = client.get("/api/v1/services/").json()
    assert services["count"] == 1
    (app,) = services["results"]
    assert app["name"] == "app" and app["team"] == "web"
    assert app["environments"] == [
        {
            "name": "test",
            "production": False,
            "require_approval": False,
            "locked": False,
            "lock_reason": "",
            "frozen": "",
            "current_deploy": None,
        }
    ]
    branches = client.get("/api/v1/services/app/branches/").json()["results"]
    assert {b["name"] for b in branches} == {"main", "feature/x"}
    assert client.get("/api/v1/services/app/builds/").json()["count"] == 0
    assert client.get("/api/v1/services/nope/branches/").status_code == 404


def test_a_deploy_is_requested_with_the_same_rules_as_the_button(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    client = api(deployer)
    created = post(client, "/api/v1/deploys/", {"service": "app", "ref": "feature/x"})
    assert created.status_code == 201, created.content
    deploy = created.json()
    assert (deploy["service"], deploy["environment"], deploy["status"]) == ("app", "test", "queued")
    assert deploy["sha"] == "b" * 40 and deploy["requested_by"] == "dana"
    assert deploy["url"].endswith(f"/deploys/{deploy['id']}/")

    busy = post(client, "/api/v1/deploys/", {"service": "app", "environment": "test", "ref": "main"})
    assert busy.status_code == 409 and busy.json()["running"] == deploy["id"]
    assert "is busy" in busy.json()["error"]

    unknown = post(client, "/api/v1/deploys/", {"service": "app", "ref": "no-such-branch"})
    assert unknown.status_code == 400 and "app has no branch 'no-such-branch'" in unknown.json()["error"]
    bad = post(client, "/api/v1/deploys/", {"service": "App!", "ref": ""})
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"service", "ref"}
    assert post(client, "/api/v1/deploys/", {"service": "nope", "ref": "main"}).status_code == 404

    listed = client.get("/api/v1/deploys/", {"service": "app", "status": "queued"}).json()
    assert [d["id"] for d in listed["results"]] == [deploy["id"]]
    cancelled = post(client, f"/api/v1/deploys/{deploy['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == DeployStatus.CANCELLED
    again = post(client, f"/api/v1/deploys/{deploy['id']}/cancel")
    assert again.status_code == 400 and "already ended" in again.json()["error"]
    assert AuditEntry.objects.filter(action=AuditAction.CANCELLED, actor_name="dana").exists()


def test_permissions_locks_and_approval_apply(environment: Environment, deployer: AbstractBaseUser) -> None:
    viewer = get_user_model().objects.create_user("vic", "vic@example.com", "pw")
    refused = post(api(viewer), "/api/v1/deploys/", {"service": "app", "ref": "main"})
    assert refused.status_code == 403 and "vic may not deploy to app/test" in refused.json()["error"]

    client = api(deployer)
    locked = post(client, "/api/v1/services/app/test/lock", {"reason": "DB migration", "hours": 2})
    assert locked.status_code == 200 and locked.json()["environments"][0]["locked"] is True
    blocked = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main"})
    assert blocked.status_code == 423 and "DB migration" in blocked.json()["error"]
    assert post(client, "/api/v1/services/app/test/lock", {"reason": ""}).status_code == 400
    unlocked = post(client, "/api/v1/services/app/test/unlock", {"reason": "done"})
    assert unlocked.status_code == 200 and unlocked.json()["environments"][0]["locked"] is False
    live = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.SUCCEEDED)
    answers = [post(client, f"/api/v1/services/app/test/{verb}", {"reason": "x"}).json() for verb in ("lock", "unlock")]
    listed = client.get("/api/v1/services/").json()["results"][0]
    assert [a["environments"][0]["current_deploy"] for a in [*answers, listed]] == [live.pk] * 3, "as the list says"

    Environment.objects.filter(pk=environment.pk).update(require_approval=True)
    waiting = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main"}).json()
    assert waiting["status"] == "awaiting_approval"
    own = post(client, f"/api/v1/deploys/{waiting['id']}/approve")
    assert own.status_code == 403 and "a second person must approve it" in own.json()["error"]
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    approved = post(api(admin), f"/api/v1/deploys/{waiting['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "queued"

    nothing = post(client, "/api/v1/services/app/test/rollback")
    assert nothing.status_code == 400 and "has no earlier release kept on its hosts" in nothing.json()["error"]


def test_nothing_can_be_changed_or_deleted_that_the_api_does_not_offer(
    environment: Environment, deployer: AbstractBaseUser
) -> None:
    client = api(deployer)
    deploy = post(client, "/api/v1/deploys/", {"service": "app", "ref": "main"}).json()
    url = f"/api/v1/deploys/{deploy['id']}/"
    assert client.delete(url).status_code == 405
    assert client.patch(url, {"status": "succeeded"}, content_type="application/json").status_code == 405
    assert client.put(url, {"status": "succeeded"}, content_type="application/json").status_code == 405
    assert Deploy.objects.get(pk=deploy["id"]).status == DeployStatus.QUEUED
    assert client.get("/api/v1/audit/").status_code == 404
    entries = AuditEntry.objects.count()
    assert client.delete("/api/v1/deploys/").status_code == 405 and AuditEntry.objects.count() == entries


def test_the_session_needs_csrf_for_changes(environment: Environment, deployer: AbstractBaseUser) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(deployer)
    assert browser.get("/api/v1/services/").status_code == 200
    assert post(browser, "/api/v1/deploys/", {"service": "app", "ref": "main"}).status_code == 403


def test_the_openapi_schema_is_published(db: None) -> None:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "Gantry API"
    for path in ("/api/v1/services/", "/api/v1/deploys/", "/api/v1/deploys/{id}/approve/"):
        assert path in schema["paths"], path
    scheme = schema["components"]["securitySchemes"]["gantryToken"]
    assert scheme["scheme"] == "bearer", "the schema says how to send a token"


def test_a_nul_byte_in_a_filter_is_a_400_not_a_database_error(
    environment: Environment, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    """PostgreSQL refuses NUL in text: such a filter must never reach the database."""
    refused = api(deployer).get("/api/v1/deploys/", {"service": "app\x00"})
    assert refused.status_code == 400
    assert "service" in refused.json()["error"]
    assert api(deployer).get("/api/v1/deploys/", {"service": "app", "environment": "test"}).status_code == 200
    assert deployer_client.get("/services/app/", {"q": "ma\x00in"}).status_code == 200
