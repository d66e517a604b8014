"""Personal API tokens: made on the person's page and shown once (only a digest is kept), with an expiry and a
scope; a scoped token deploys where it says and nowhere else, never beyond its owner's grants; revocable,
audited; legacy tokens work until the cut-over date and say so in every answer."""

from __future__ import annotations

import datetime
import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import AuditAction
from deployer.environments.team_identity import provider_person
from deployer.models import AuditEntry, Branch, ExternalIdentity, Grant, PersonalToken, Service

TWO_ENVIRONMENTS = """
teams:
  web: {}
services:
  app:
    team: web
    repo: /srv/git/app.git
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}
      stage: {deploy_path: /srv/app, hosts: [{address: 10.0.0.2}]}
"""


@pytest.fixture
def app(db: None) -> Service:
    catalog_apply(catalog_parse(TWO_ENVIRONMENTS))
    service = Service.objects.get(name="app")
    Branch.objects.create(service=service, name="main", sha="a" * 40, author="Ada", message="tip")
    return service


def make(client: Client, **fields: Any) -> tuple[int, str]:
    """POST the page's form; (status, the token shown, or the error)."""
    data = {"name": "ci", "scope": "deploy", "targets": "app/test", "days": "30", **fields}
    page = client.post(reverse("token-create"), data).content.decode()
    shown = re.search(r'<code id="new-token">([^<]+)</code>', page)
    error = re.search(r'role="alert">([^<]+)<', page)
    status = 200 if shown else 400
    return status, shown.group(1) if shown else (error.group(1) if error else page[:300])


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def deploy(client: Client, environment: str) -> Any:
    body = {"service": "app", "environment": environment, "ref": "main"}
    return client.post("/api/v1/deploys/", body, content_type="application/json")


def test_a_token_is_made_on_the_persons_page_shown_once_and_kept_as_a_digest(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    status, token = make(deployer_client, name="ci: app deploys")

    assert status == 200 and token.startswith("gantry_")
    stored = AuthToken.objects.get(user=deployer)
    assert token not in {stored.digest, stored.token_key} and stored.token_key == token[:15]
    assert stored.expiry is not None
    assert abs(stored.expiry - stored.created - datetime.timedelta(days=30)) < datetime.timedelta(seconds=5)
    page = deployer_client.get(reverse("me")).content.decode()
    assert token not in page and "ci: app deploys" in page and "app/test" in page
    created = AuditEntry.objects.get(action=AuditAction.TOKEN_CREATED)
    assert created.actor == deployer and token not in created.detail


def test_a_deploy_token_deploys_where_it_says_and_nowhere_else(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    _, token = make(deployer_client)
    client = bearer(token)

    assert client.get("/api/v1/services/").status_code == 200, "reading is in every token's scope"
    assert deploy(client, "test").status_code == 201
    refused = deploy(client, "stage")
    assert refused.status_code == 403
    assert refused.json()["error"] == "token 'ci' may deploy to app/test only, not app/stage"
    used = PersonalToken.objects.get()
    assert used.last_used_from == "127.0.0.1" and used.last_used_at is not None
    assert AuditEntry.objects.filter(action=AuditAction.TOKEN_USED).count() == 1, "one entry per new address"


def test_a_read_only_token_reads_and_changes_nothing(app: Service, deployer_client: Client) -> None:
    _, token = make(deployer_client, scope="read", targets="")
    client = bearer(token)
    assert client.get("/api/v1/deploys/").status_code == 200
    refused = deploy(client, "test")
    assert refused.status_code == 403 and "is read only" in refused.json()["error"]


def test_a_token_never_does_more_than_its_owner_may_now(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    _, token = make(deployer_client, targets="app")
    Grant.objects.filter(principal="dana").delete()  # dana's grant is gone: so is her token's reach
    assert deploy(bearer(token), "test").status_code == 403


def test_the_token_of_someone_who_signs_in_through_a_provider_waits_for_a_fresh_sign_in(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client, settings: Any
) -> None:
    _, token = make(deployer_client, scope="read", targets="")
    identity = ExternalIdentity.objects.create(user=deployer, issuer="https://idp.example.com", subject="dana")
    settings.TOKEN_GROUPS_MINUTES = 60
    long_ago = timezone.now() - datetime.timedelta(minutes=61)

    ExternalIdentity.objects.filter(pk=identity.pk).update(checked_at=long_ago)
    stale = bearer(token).get("/api/v1/services/")
    assert stale.status_code == 401 and "sign in to Gantry in a browser" in stale.json()["error"]

    provider_person("https://idp.example.com", "dana", "dana@example.com", [])  # she signs in again
    assert bearer(token).get("/api/v1/services/").status_code == 200


def test_revoked_and_expired_tokens_stop_at_once(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    _, token = make(deployer_client)
    key = AuthToken.objects.get(user=deployer).token_key
    deployer_client.post(reverse("token-revoke", args=[key]))
    assert bearer(token).get("/api/v1/services/").status_code == 401
    assert AuditEntry.objects.filter(action=AuditAction.TOKEN_REVOKED).exists()

    _, token = make(deployer_client)
    AuthToken.objects.filter(user=deployer).update(expiry=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    assert bearer(token).get("/api/v1/services/").status_code == 401


@pytest.mark.parametrize(
    "fields,said",
    [
        ({"targets": "ap/test"}, "no service 'ap'; did you mean 'app'?"),
        ({"targets": "app/prod"}, "app has no environment 'prod' (it has test, stage)"),
        ({"targets": ""}, "a deploy token names where it deploys"),
        ({"scope": "read", "targets": "app"}, "a read-only token reads what you may read"),
        ({"days": "1000"}, "days:"),
        ({"name": ""}, "name the token"),
    ],
)
def test_a_token_asked_for_wrongly_is_refused_saying_what_to_fix(
    app: Service, deployer_client: Client, fields: dict[str, str], said: str
) -> None:
    status, error = make(deployer_client, **fields)
    assert status == 400 and said in error.replace("&#x27;", "'")
    assert not AuthToken.objects.exists()


def test_no_token_for_where_the_person_may_not_deploy(app: Service, deployer_client: Client) -> None:
    Grant.objects.filter(principal="dana").delete()
    status, error = make(deployer_client)
    assert status == 400 and "you may not deploy to app/test now" in error


def test_legacy_tokens_work_until_the_cut_over_and_say_so(
    app: Service, deployer: AbstractBaseUser, settings: Any
) -> None:
    legacy = Client(headers={"Authorization": f"Token {AuthToken.objects.create(user=deployer)[1]}"})
    settings.LEGACY_TOKENS_UNTIL = datetime.date(2099, 1, 31)

    answer = legacy.get("/api/v1/services/")

    assert answer.status_code == 200
    assert answer["Deprecation"] == "true" and answer["Sunset"].endswith("2099 23:59:59 GMT")
    assert "stops working after 2099-01-31" in answer["X-Gantry-Token-Notice"]
    settings.LEGACY_TOKENS_UNTIL = datetime.date(2020, 1, 31)
    refused = legacy.get("/api/v1/services/")
    assert refused.status_code == 401 and "stopped working after 2020-01-31" in refused.json()["error"]


def test_a_service_token_deploys_to_its_first_environment_and_odd_headers_are_401s(
    app: Service, deployer: AbstractBaseUser, deployer_client: Client
) -> None:
    _, token = make(deployer_client, targets="app")
    body = {"service": "app", "ref": "main"}  # no environment: the service's first
    assert bearer(token).post("/api/v1/deploys/", body, content_type="application/json").status_code == 201
    odd = Client(headers={"Authorization": "Bearer gantry_\xff"}).get("/api/v1/services/")
    assert odd.status_code == 401
    PersonalToken.objects.all().delete()  # a personal token whose scope is gone is no legacy token
    assert bearer(token).get("/api/v1/services/").status_code == 401


def test_the_command_makes_scoped_personal_tokens_as_the_page_does(app: Service, deployer: AbstractBaseUser) -> None:
    out = StringIO()
    call_command("api_token", "dana", "--name", "ci: app", "--deploy", "app/test", "--days", "30", stdout=out)
    token = out.getvalue().strip()

    made = PersonalToken.objects.get(token__user=deployer)
    assert token.startswith("gantry_") and (made.name, made.targets) == ("ci: app", ["app/test"])
    assert deploy(bearer(token), "test").status_code == 201
    assert deploy(bearer(token), "stage").status_code == 403, "only where it says"
    assert AuditEntry.objects.filter(action=AuditAction.TOKEN_CREATED, actor=deployer).exists()

    with pytest.raises(CommandError, match=r"no service 'ap'; did you mean 'app'\?"):
        call_command("api_token", "dana", "--deploy", "ap")
    with pytest.raises(CommandError, match="a token expires after 7, 30, 90, 365 days"):
        call_command("api_token", "dana", "--days", "1000")
