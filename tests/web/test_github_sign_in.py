"""Signing in with GitHub: the OAuth web flow with PKCE in headless Chromium against the fake GitHub (which
speaks GitHub's OAuth endpoints and the API a person's token reads). Members of the organization come in;
their teams are their groups, refreshed at each sign-in; others are refused, and nothing 500s."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import Role
from deployer.environments.access import access_for
from deployer.models import Environment, Grant
from tests.fakes.github import FakeGitHub
from tests.support.catalogs import SMALL_CATALOG

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


@pytest.fixture
def github_app(github: FakeGitHub, settings: Any) -> FakeGitHub:
    github.people.add_app("gantry-app", "app-secret")
    settings.GITHUB_SIGN_IN_ORG = "acme"
    settings.GITHUB_SIGN_IN_CLIENT_ID, settings.GITHUB_SIGN_IN_CLIENT_SECRET = "gantry-app", "app-secret"
    return github


def sign_in(browser: Browser, base: str, github: FakeGitHub, login: str, *, refused: bool = False) -> Page:
    github.people.browser_login = login  # who is signed in to GitHub in this browser
    page = browser.new_context().new_page()
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{base}/")
    page.click("[data-github-sign-in]")
    if refused:
        expect(page.locator("[role=alert]")).to_contain_text("Signing in with GitHub did not work", timeout=15_000)
    else:
        expect(page.locator("h1")).to_have_text("Services", timeout=15_000)
    authorize = next(url for url in asked if "/login/oauth/authorize?" in url)
    assert "code_challenge_method=S256" in authorize and "state=" in authorize, "PKCE and state"
    return page


def test_members_sign_in_with_github_and_their_teams_decide(
    transactional_db: None, live_server: Any, github_app: FakeGitHub, browser: Browser
) -> None:
    catalog_apply(catalog_parse(SMALL_CATALOG))
    Grant.objects.create(principal="@acme.web-deployers", role=Role.DEPLOYER)
    Grant.objects.create(principal="@readers", role=Role.DEPLOYER)  # a group from elsewhere (OIDC, the admin)
    environment = Environment.objects.get(name="test")
    ada = github_app.people.add_person("ada", "ada@example.com", teams=["web-deployers"])
    github_app.people.add_person("mallory", "mallory@example.com", org="")  # not in acme
    github_app.people.add_person("eve", "eve@example.com", verified=False)

    page = sign_in(browser, live_server.url, github_app, "ada")

    assert page.locator("[data-me]").inner_text() == "ada@example.com", "named by the verified e-mail"
    user = get_user_model().objects.get(email="ada@example.com")
    assert user.external_identities.get().subject == str(ada.id), "known by GitHub's id, not the login"
    assert [g.name for g in user.groups.all()] == ["acme.web-deployers"], "a team's group names its organization"
    assert access_for(user).can_deploy(environment)
    assert len(github_app.people.revoked) == 1 and not github_app.people.tokens, "her token revoked once read"

    ada.teams["acme"] = ["readers"]  # ada changes team at GitHub (a team named like a group from elsewhere)
    sign_in(browser, live_server.url, github_app, "ada")
    user.refresh_from_db()
    assert [g.name for g in user.groups.all()] == ["acme.readers"], "a GitHub team never takes another's group"
    assert not access_for(user).can_deploy(environment)
    assert get_user_model().objects.filter(email="ada@example.com").count() == 1

    sign_in(browser, live_server.url, github_app, "mallory", refused=True)
    sign_in(browser, live_server.url, github_app, "eve", refused=True)
    assert not get_user_model().objects.filter(email__in=["mallory@example.com", "eve@example.com"]).exists()


def test_a_forged_or_replayed_callback_and_a_github_that_is_down_never_500(
    db: None, github_app: FakeGitHub, settings: Any
) -> None:
    github_app.people.add_person("ada", "ada@example.com")
    client = Client()
    assert client.get("/sso/github/callback?code=x&state=y")["Location"] == "/accounts/login/?github=failed"

    started = client.get("/sso/github/?next=https://evil.example.com/")
    state = dict(part.split("=", 1) for part in started["Location"].split("?", 1)[1].split("&"))["state"]
    forged = client.get(f"/sso/github/callback?code=not-a-code&state={state}")
    assert forged["Location"] == "/accounts/login/?github=failed", "GitHub refused the code"

    client.get("/sso/github/")
    github_app.fail("/login/oauth/access_token", status=502)
    github_app.people.browser_login = "ada"
    saved = client.session["github_sign_in"]
    down = client.get(f"/sso/github/callback?code=whatever&state={saved['state']}")
    assert down.status_code == 302 and down["Location"] == "/accounts/login/?github=failed"
    assert not get_user_model().objects.exists()
    assert "Signing in with GitHub did not work" in client.get(down["Location"]).content.decode()


def test_without_an_organization_github_sign_in_is_off(db: None, settings: Any) -> None:
    settings.GITHUB_SIGN_IN_ORG = ""
    assert Client().get("/sso/github/").status_code == 404
    assert "data-github-sign-in" not in Client().get("/accounts/login/").content.decode()
