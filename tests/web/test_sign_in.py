"""Signing in with the team's identity: the full OpenID Connect code flow with PKCE, in headless Chromium,
against a real provider (oidc-provider, run by node). Two people in different groups see and may do what
their group grants; a group change at the provider changes the grant at the next sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import AuditAction, Role
from deployer.environments import team_identity
from deployer.environments.access import access_for
from deployer.models import AuditEntry, Environment, Grant, SlackMessage
from tests.support.catalogs import SMALL_CATALOG
from tests.support.net import free_port
from tests.support.oidc_provider import Provider, oidc_provider

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


@pytest.fixture
def provider(live_server: Any, tmp_path: Path, settings: Any) -> Iterator[Provider]:
    port = free_port("127.0.0.1")
    members = {"ada": ["web-deployers"], "bob": ["readers"]}
    with oidc_provider(tmp_path, port, f"{live_server.url}/oidc/callback/", members) as running:
        settings.OIDC_ISSUER = running.issuer
        settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = running.client_id, running.client_secret
        settings.OIDC_PROVIDER_NAME = "Test IdP"
        settings.OIDC_ALLOWED_DOMAINS = ["example.com"]
        team_identity.discovery_forget()
        yield running
    team_identity.discovery_forget()


def sign_in(browser: Browser, base: str, login: str, *, refused: bool = False) -> tuple[Page, list[str]]:
    """Through the provider, as `login`; the page signed in (or, `refused`, back on the sign-in page), and the
    URLs the browser asked for."""
    context = browser.new_context()
    page = context.new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{base}/")
    page.click("[data-sso]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "anything: the test provider's sign-in page")
    page.click("button[type=submit]")
    if page.locator("button[autofocus]").count():  # the provider's consent page, the first time
        page.click("button[autofocus]")
    if refused:
        expect(page.locator("[role=alert]")).to_contain_text("did not work", timeout=15_000)
    else:
        expect(page.locator("h1")).to_have_text("Services", timeout=15_000)
    return page, asked


def person(login: str) -> Any:
    return get_user_model().objects.get(email=f"{login}@example.com")


def test_people_sign_in_through_the_provider_and_their_groups_decide(
    transactional_db: None, live_server: Any, provider: Provider, browser: Browser, settings: Any
) -> None:
    catalog_apply(catalog_parse(SMALL_CATALOG))
    Grant.objects.create(principal="@web-deployers", role=Role.DEPLOYER)
    environment = Environment.objects.get(name="test")

    page, asked = sign_in(browser, live_server.url, "ada")

    authorize = next(url for url in asked if url.startswith(f"{provider.issuer}/auth?"))
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize, "PKCE"
    assert page.locator("[data-me]").inner_text() == "ada@example.com", "named by the verified e-mail"
    ada = person("ada")
    assert not ada.has_usable_password() and ada.external_identities.get().subject == "ada"
    assert [g.name for g in ada.groups.all()] == ["web-deployers"]
    assert access_for(ada).can_deploy(environment), "her group's grant"

    sign_in(browser, live_server.url, "bob")
    assert not access_for(person("bob")).can_deploy(environment), "readers may look, not deploy"

    provider.groups({"ada": ["readers"]})  # ada moves team at the provider
    sign_in(browser, live_server.url, "ada")
    ada.refresh_from_db()
    assert [g.name for g in ada.groups.all()] == ["readers"]
    assert not access_for(ada).can_deploy(environment), "the grant went with the group, at the next sign-in"
    assert get_user_model().objects.filter(email="ada@example.com").count() == 1, "the same person again"

    settings.OIDC_REQUIRED_GROUP = "staff"  # only staff may come in now
    sign_in(browser, live_server.url, "carol", refused=True)
    assert not get_user_model().objects.filter(email="carol@example.com").exists()

    settings.OIDC_REQUIRED_GROUP = ""
    get_user_model().objects.filter(pk=ada.pk).update(is_active=False)  # ada leaves the company
    page.reload()
    expect(page.locator("h1")).to_have_text("Sign in to Gantry")  # her session ended with her account
    sign_in(browser, live_server.url, "ada", refused=True)
    assert get_user_model().objects.filter(email="ada@example.com").count() == 1, "no second account for her"


def test_a_provider_that_is_down_or_a_forged_callback_never_500s(db: None, settings: Any) -> None:
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_ALLOWED_DOMAINS = "gantry", ["example.com"]
    team_identity.discovery_forget()
    started = Client().get("/oidc/authenticate/")
    assert started.status_code == 302 and started["Location"] == "/accounts/login/?sso=failed"
    assert "did not work" in Client().get(started["Location"]).content.decode()
    get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    form = Client().post("/accounts/login/?code=x&state=y", {"username": "dana", "password": "wrong-password"})
    assert form.status_code == 200, "a password form never reaches the provider"
    team_identity.discovery_forget()


def test_with_passwords_off_only_the_break_glass_admin_uses_one_and_it_is_audited(db: None, settings: Any) -> None:
    settings.LOCAL_PASSWORDS = False
    settings.SLACK_DEFAULT_CHANNEL = "#ops"
    get_user_model().objects.create_user("dana", "dana@example.com", "dana-password-1")
    get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1")

    person = Client().post("/accounts/login/", {"username": "dana", "password": "dana-password-1"})
    assert person.status_code == 200 and "_auth_user_id" not in person.client.session, "a person uses the provider"
    admin = Client()
    signed_in = admin.post("/accounts/login/", {"username": "root", "password": "root-password-1"})
    assert signed_in.status_code == 302, "the break-glass admin still can"
    entry = AuditEntry.objects.get(action=AuditAction.BREAK_GLASS)
    assert entry.actor.username == "root" and "from 127.0.0.1" in entry.detail
    told = SlackMessage.objects.get(kind=SlackMessage.Kind.NOTICE)
    assert told.channel == "#ops" and "root signed in to Gantry with a password" in told.text
