"""Signing in with GitHub: an OAuth app (GitHub gives people no OpenID Connect ID token), for teams whose
identity is their GitHub organization. Authlib does the OAuth 2.0 code flow with PKCE and state; PyGithub
reads, with the person's own token, who they are (their numeric id: a login can be renamed), their verified
e-mails, their membership of GANTRY_GITHUB_SIGN_IN_ORG and their teams there.

Only active members of the organization come in; their teams become their Django groups at every sign-in,
named `<org>.<team slug>` (`@acme.web-deployers` in the catalog), so grants follow them, as with OpenID
Connect (team_identity.py holds what both share). The person's token serves this sign-in only: it is revoked
at GitHub once read, and never kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import User
from github import Auth, Github, GithubException

from deployer.environments.team_identity import provider_person

logger = logging.getLogger(__name__)

SCOPES = "read:user user:email read:org"
TIMEOUT = 10


@dataclass(frozen=True)
class GitHubPerson:
    """What GitHub said about the person signing in."""

    id: int
    login: str
    email: str  # verified; "" when they have none
    member: bool  # an active member of the organization
    teams: list[str]  # slugs of their teams in the organization


def github_enabled() -> bool:
    return bool(settings.GITHUB_SIGN_IN_ORG and settings.GITHUB_SIGN_IN_CLIENT_ID)


def github_issuer() -> str:
    """How GitHub is named in ExternalIdentity (GitHub Enterprise has its own)."""
    return str(settings.GITHUB_WEB_URL)


def _session(redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        settings.GITHUB_SIGN_IN_CLIENT_ID,
        settings.GITHUB_SIGN_IN_CLIENT_SECRET,
        scope=SCOPES,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_post",  # GitHub reads the secret from the form
    )


def authorization(redirect_uri: str) -> tuple[str, dict[str, str]]:
    """Where to send the browser, and what the callback must find in the session (state, PKCE verifier)."""
    verifier = generate_token(48)
    url, state = _session(redirect_uri).create_authorization_url(
        f"{settings.GITHUB_WEB_URL}/login/oauth/authorize", code_verifier=verifier
    )
    return url, {"state": state, "verifier": verifier, "redirect_uri": redirect_uri}


def github_person(code: str, saved: dict[str, str]) -> GitHubPerson:
    """Trade the code for the person's token, then ask GitHub who they are. Raises what a GitHub that is
    down or odd raises (authlib's OAuthError, requests', PyGithub's)."""
    token: dict[str, Any] = _session(saved["redirect_uri"]).fetch_token(
        f"{settings.GITHUB_WEB_URL}/login/oauth/access_token",
        code=code,
        code_verifier=saved["verifier"],
        timeout=TIMEOUT,
        headers={"Accept": "application/json"},
    )
    try:
        return _person(token["access_token"])
    finally:
        _token_revoke(token["access_token"])


def _person(access_token: str) -> GitHubPerson:
    github = Github(auth=Auth.Token(access_token), base_url=settings.GITHUB_API_URL, timeout=TIMEOUT)
    me = github.get_user()
    org = settings.GITHUB_SIGN_IN_ORG
    try:
        member = me.get_organization_membership(org).state == "active"
    except GithubException as exc:
        if exc.status not in (403, 404):  # 404: not a member (GitHub hides the organization)
            raise
        member = False
    # A team's group is named with its organization (acme.web-deployers): a GitHub team can never take the name
    # of a group from elsewhere (another provider's, one made in the admin) and with it that group's grants.
    teams = [f"{org}.{team.slug}" for team in me.get_teams() if team.organization.login.lower() == org.lower()]
    return GitHubPerson(me.id, me.login, _email(me.get_emails()), member, teams if member else [])


def _token_revoke(access_token: str) -> None:
    """The person's token served this sign-in only: revoke it at GitHub (best effort: it is never kept)."""
    # Reference: https://docs.github.com/rest/apps/oauth-applications#delete-an-app-token
    try:
        requests.delete(
            f"{settings.GITHUB_API_URL}/applications/{settings.GITHUB_SIGN_IN_CLIENT_ID}/token",
            auth=(settings.GITHUB_SIGN_IN_CLIENT_ID, settings.GITHUB_SIGN_IN_CLIENT_SECRET),
            json={"access_token": access_token},
            headers={"Accept": "application/vnd.github+json"},
            timeout=TIMEOUT,
        ).raise_for_status()
    except requests.RequestException as exc:
        logger.warning("could not revoke a sign-in's GitHub token (it expires unused): %s", exc)


def _email(emails: list[Any]) -> str:
    """The verified address to know them by: one in GANTRY_OIDC_ALLOWED_DOMAINS (the work address) when set,
    else their primary one."""
    verified = [entry for entry in emails if entry.verified]
    domains = settings.OIDC_ALLOWED_DOMAINS
    work = [entry.email for entry in verified if entry.email.rsplit("@", 1)[-1].lower() in domains]
    primary = [entry.email for entry in verified if entry.primary]
    return (work or primary or [""])[0]


def github_refusal(person: GitHubPerson) -> str:
    """Why this person may not sign in ("" when they may)."""
    if not person.member:
        return f"{person.login} is not a member of the GitHub organization {settings.GITHUB_SIGN_IN_ORG}"
    if not person.email:
        return f"{person.login} has no verified e-mail on GitHub"
    return ""


class GitHubSignIn(BaseBackend):
    """People signing in with GitHub: only through the callback view, which passes what GitHub said."""

    def authenticate(self, request: Any, github: GitHubPerson | None = None, **kwargs: Any) -> User | None:
        if github is None or not github_enabled() or github_refusal(github):
            return None
        return provider_person(github_issuer(), str(github.id), github.email, github.teams)

    def get_user(self, user_id: Any) -> User | None:
        """A session's user, while the account is active."""
        user: User | None = get_user_model().objects.filter(pk=user_id, is_active=True).first()
        return user
