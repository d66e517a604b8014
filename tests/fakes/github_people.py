"""People in the fake GitHub: an OAuth app's web flow (/login/oauth/authorize and /login/oauth/access_token,
as GitHub documents them: https://docs.github.com/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps,
PKCE with S256 included) and what a person's own token reads (GET /user, /user/emails, /user/teams,
/user/memberships/orgs/{org}), in the shapes of GitHub's OpenAPI description (tests/house/test_github_fake_schema.py
checks them).

The browser is "signed in to GitHub" as `browser_login`; authorizing redirects straight back, as GitHub does
for an app the person already authorized.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.server import Request, Response

if TYPE_CHECKING:
    from tests.fakes.github import FakeGitHub

CREATED = "2020-01-01T00:00:00Z"
DOCS = "https://docs.github.com/rest"
OAUTH_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"


@dataclass
class FakePerson:
    login: str
    id: int
    emails: list[dict[str, Any]]
    orgs: set[str] = field(default_factory=set)  # active memberships
    teams: dict[str, list[str]] = field(default_factory=dict)  # org → team slugs


@dataclass
class _Grant:
    login: str
    client_id: str
    redirect_uri: str
    challenge: str


class GitHubPeople:
    def __init__(self, github: FakeGitHub) -> None:
        self.github = github
        self.people: dict[str, FakePerson] = {}
        self.apps: dict[str, str] = {}  # client id → secret
        self.browser_login = ""
        self.codes: dict[str, _Grant] = {}
        self.tokens: dict[str, str] = {}  # token → login
        self.revoked: list[str] = []
        self._ids = itertools.count(5000)
        api = "/api/v3"
        github.route("GET", "/login/oauth/authorize", self._authorize)
        github.route("POST", "/login/oauth/access_token", self._access_token)
        github.route("GET", api + "/user", self._me)
        github.route("GET", api + "/user/emails", self._emails)
        github.route("GET", api + "/user/teams", self._teams)
        github.route("GET", api + "/user/memberships/orgs/([^/]+)", self._membership)
        github.route("DELETE", api + "/applications/([^/]+)/token", self._token_delete)

    # --- arranging the world ---------------------------------------------------

    def reset(self) -> None:
        for known in (self.people, self.apps, self.codes, self.tokens):
            known.clear()
        self.revoked.clear()
        self.browser_login = ""

    def add_app(self, client_id: str, secret: str) -> None:
        self.apps[client_id] = secret

    def add_person(
        self, login: str, email: str, *, org: str = "acme", teams: list[str] | None = None, verified: bool = True
    ) -> FakePerson:
        emails = [{"email": email, "primary": True, "verified": verified, "visibility": "private"}]
        person = FakePerson(login, next(self._ids), emails, {org} if org else set(), {org: list(teams or [])})
        self.people[login] = person
        return person

    def token_owner(self, authorization: str) -> FakePerson | None:
        token = authorization.removeprefix("token ").removeprefix("Bearer ")
        login = self.tokens.get(token)
        return self.people.get(login) if login else None

    # --- the OAuth web flow ------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        query = request.query
        if query.get("client_id") not in self.apps:
            return Response(404, "<h1>Not Found</h1>")
        person = self.people.get(self.browser_login)
        if person is None:
            return Response(200, "<h1>Sign in to GitHub</h1>")
        if query.get("code_challenge_method", "S256") != "S256":
            return Response(400, "<h1>Unsupported code challenge method</h1>")
        code = secrets.token_hex(10)
        self.codes[code] = _Grant(
            person.login, query["client_id"], query.get("redirect_uri", ""), query.get("code_challenge", "")
        )
        back = urlencode({"code": code, "state": query.get("state", "")})
        return Response(302, None, {"Location": f"{query.get('redirect_uri', '')}?{back}"})

    def _access_token(self, request: Request) -> Response:
        form = {key: values[-1] for key, values in parse_qs(request.body.decode()).items()}
        grant = self.codes.pop(form.get("code", ""), None)
        secret = self.apps.get(form.get("client_id", ""))
        if secret is None or not secrets.compare_digest(secret, form.get("client_secret", "")):
            return self._oauth_error(
                "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."
            )
        if grant is None or grant.client_id != form.get("client_id"):
            return self._oauth_error("bad_verification_code", "The code passed is incorrect or expired.")
        if grant.redirect_uri and grant.redirect_uri != form.get("redirect_uri"):
            return self._oauth_error(
                "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL."
            )
        if grant.challenge:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
                return self._oauth_error("bad_verification_code", "The code_verifier does not match the challenge.")
        token = f"gho_{secrets.token_hex(18)}"
        self.tokens[token] = grant.login
        return Response(200, {"access_token": token, "token_type": "bearer", "scope": "read:org,read:user,user:email"})

    def _token_delete(self, request: Request, client_id: str) -> Response:
        """DELETE /applications/{client_id}/token: the app (Basic auth with its id and secret) revokes a token."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        given = base64.b64decode(encoded or b"").decode(errors="replace") if scheme == "Basic" else ""
        if given != f"{client_id}:{self.apps.get(client_id, secrets.token_hex(8))}":
            return Response(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        token = str((request.json() or {}).get("access_token", ""))
        if self.tokens.pop(token, None) is None:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})
        self.revoked.append(token)
        return Response(204)

    def _oauth_error(self, error: str, description: str) -> Response:
        # GitHub answers a bad exchange with 200 and an error in the body.
        return Response(200, {"error": error, "error_description": description, "error_uri": OAUTH_DOCS})

    # --- what a person's token reads -------------------------------------------------

    def _person(self, request: Request) -> FakePerson | None:
        return self.token_owner(request.headers.get("authorization", ""))

    def _me(self, request: Request) -> Response:
        person = self._person(request)
        if person is None:
            return Response(
                401, {"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"}
            )
        return Response(200, self._user_json(person, full=True))

    def _emails(self, request: Request) -> Response:
        person = self._person(request)
        return Response(200, person.emails) if person else Response(401, {"message": "Requires authentication"})

    def _teams(self, request: Request) -> Response:
        person = self._person(request)
        if person is None:
            return Response(401, {"message": "Requires authentication"})
        return Response(200, [self._team_json(org, slug) for org, slugs in person.teams.items() for slug in slugs])

    def _membership(self, request: Request, org: str) -> Response:
        person = self._person(request)
        if person is None:
            return Response(401, {"message": "Requires authentication"})
        if org.lower() not in {o.lower() for o in person.orgs}:
            return Response(
                404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}
            )
        api = self.github.api_url
        return Response(
            200,
            {
                "url": f"{api}/orgs/{org}/memberships/{person.login}",
                "state": "active",
                "role": "member",
                "organization_url": f"{api}/orgs/{org}",
                "organization": self._org_json(org, full=False),
                "user": self._user_json(person, full=False),
            },
        )

    # --- JSON shapes -------------------------------------------------------------------

    def _user_json(self, person: FakePerson, *, full: bool) -> dict[str, Any]:
        simple = {**self.github._user(person.login), "id": person.id}
        if not full:
            return simple
        return {
            **simple,
            "name": person.login.title(),
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": CREATED,
            "updated_at": CREATED,
        }

    def _org_json(self, org: str, *, full: bool) -> dict[str, Any]:
        api = f"{self.github.api_url}/orgs/{org}"
        simple = {
            "login": org,
            "id": 900 + len(org),
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
            "url": api,
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks",
            "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": f"{self.github.url}/avatars/o/{org}",
            "description": None,
        }
        if not full:
            return simple
        return {
            **simple,
            "html_url": f"{self.github.url}/{org}",
            "has_organization_projects": True,
            "has_repository_projects": True,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "type": "Organization",
            "created_at": CREATED,
            "updated_at": CREATED,
            "archived_at": None,
        }

    def _team_json(self, org: str, slug: str) -> dict[str, Any]:
        api = f"{self.github.api_url}/organizations/{900 + len(org)}/team/{abs(hash(slug)) % 10_000}"
        return {
            "id": abs(hash((org, slug))) % 100_000,
            "node_id": "MDQ6VGVhbTE=",
            "url": api,
            "html_url": f"{self.github.url}/orgs/{org}/teams/{slug}",
            "name": slug.replace("-", " ").title(),
            "slug": slug,
            "description": None,
            "privacy": "closed",
            "notification_setting": "notifications_enabled",
            "permission": "pull",
            "members_url": f"{api}/members{{/member}}",
            "repositories_url": f"{api}/repos",
            "type": "organization",
            "parent": None,
            "members_count": 1,
            "repos_count": 0,
            "created_at": CREATED,
            "updated_at": CREATED,
            "organization": self._org_json(org, full=True),
        }
